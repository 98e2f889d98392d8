"""Interop: Python's websockets (Debian's python3-websockets, which only /usr/bin/python3
sees) as a client of our server, through samples/echo; over wss:// too when the
environment names MAKE_CERTIFICATES (tests/make_certificates.cpp).

    /usr/bin/python3 tests/interop/python_client.py PATH_TO_ECHO [CASE...]
"""

import asyncio
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile

# The harness (running the sample, the cases) lives with the sample tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples"))

from harness import (  # noqa: E402
    KIB, MIB, Sample, bytes_of_size, check_equal, close_all, executable_from_argv, roundtrip,
    run_cases, text_of_size, within, ws_connect)

# Around each length encoding's edges (7-bit, 16-bit, 64-bit), up to echo's default
# --max-message-size of 16 MiB.
SIZES = [0, 1, 125, 126, 127, 65535, 65536, MIB, 16 * MIB]


async def echo_every_size(server, **options):
    async with ws_connect(server.url, **options) as ws:
        for size in SIZES:
            await roundtrip(ws, text_of_size(size))
            await roundtrip(ws, bytes_of_size(size))


async def text_and_binary_of_every_size(echo):
    async with Sample(echo) as server:
        await echo_every_size(server, compression=None)


async def every_size_with_deflate_offered(echo):
    # websockets offers permessage-deflate by default: whether the server takes it or
    # declines it, every message must come back intact.
    async with Sample(echo) as server:
        await echo_every_size(server)


async def trickled_fragments():
    """A binary message whose fragments come a little apart, over an async iterator."""
    for size in (1, 0, 125, 126, 65536, 3):
        await asyncio.sleep(0.01)
        yield bytes_of_size(size)


async def fragmented_messages(echo):
    # websockets sends an iterable (or async iterable) as one fragment per item.
    text_fragments = ["a", "", "\u20ac" * 42, "\U0001F600", "z" * 70000]
    binary_fragments = [bytes_of_size(n) for n in (0, 1, 125, 126, 127, 65535, 65536, 0)]
    many_fragments = [b"%d," % i for i in range(1000)]
    async with Sample(echo) as server, ws_connect(server.url) as ws:
        await ws.send(text_fragments)
        check_equal(await ws.recv(), "".join(text_fragments), "fragmented text")
        for fragments in (binary_fragments, many_fragments):
            await ws.send(fragments)
            check_equal(await ws.recv(), b"".join(fragments), f"{len(fragments)} binary fragments")
        await ws.send(trickled_fragments())
        expected = b"".join([f async for f in trickled_fragments()])
        check_equal(await ws.recv(), expected, "fragments sent over time")


async def pings_get_pongs(echo):
    async with Sample(echo) as server, ws_connect(server.url) as ws:
        for payload in (b"", b"x", bytes_of_size(125)):
            pong = await ws.ping(payload)  # completes when the pong with this payload comes
            await within(20, pong, f"no pong for a {len(payload)}-byte ping")
        pongs = [await ws.ping(b"ping %d" % i) for i in range(10)]  # before any pong
        await within(20, asyncio.gather(*pongs), "not every ping of a burst got its pong")
        await roundtrip(ws, "messages still flow")


async def client_close_codes_are_echoed(echo):
    async with Sample(echo) as server:
        for code, reason in ((1000, "bye"), (1000, ""), (1001, "going away"), (4000, "app-defined"),
                             (3000, "x" * 123)):
            ws = await ws_connect(server.url)
            await roundtrip(ws, "before closing")
            await ws.close(code, reason)  # returns once the handshake and TCP are done
            check_equal(ws.close_rcvd and ws.close_rcvd.code, code, f"code the server answered {code} with")
        async with ws_connect(server.url) as ws:
            await roundtrip(ws, "the server still serves")


async def stopped_server_closes_with_1001(echo):
    async with Sample(echo) as server:
        clients = [await ws_connect(server.url) for _ in range(3)]
        await roundtrip(clients[0], "open")
        check_equal(await server.stop(signal.SIGTERM), 0, "exit code after SIGTERM")
        for ws in clients:
            await within(20, ws.wait_closed(), "a client still open after the server stopped")
            check_equal(ws.close_code, 1001, "close code when the server stops")


async def echo_from(url, n):
    """One client: connects, echoes a few messages of its own, closes."""
    async with ws_connect(url) as ws:
        for round_ in range(3):
            await roundtrip(ws, f"client {n} round {round_}")
        await roundtrip(ws, bytes_of_size(n * KIB // 10))


async def many_concurrent_connections(echo):
    count = 200
    async with Sample(echo, "--max-connections", "300") as server:
        # All connected at once before any closes: the server holds 200 sockets.
        clients = await asyncio.gather(*(ws_connect(server.url) for _ in range(count)))
        await asyncio.gather(*(roundtrip(ws, f"held {n}") for n, ws in enumerate(clients)))
        await close_all(*clients)
        await asyncio.gather(*(echo_from(server.url, n) for n in range(count)))


class TestCertificates:
    """A fresh test CA and a certificate it signs for localhost, removed afterwards."""

    def __enter__(self):
        tool = os.environ.get("MAKE_CERTIFICATES")
        if not tool:
            raise AssertionError("MAKE_CERTIFICATES names no program: cannot test wss://")
        self.dir = tempfile.mkdtemp(prefix="websockets-interop-tls-")
        subprocess.run([tool, self.dir], check=True, stdout=subprocess.DEVNULL)
        self.chain = os.path.join(self.dir, "chain.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.trusting = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)


async def over_tls_with_deflate(echo):
    with TestCertificates() as tls:
        async with Sample(echo, "--cert", tls.chain, "--key", tls.key, "--deflate",
                          url="wss://localhost:0/") as server:
            check_equal(server.url.startswith("wss://localhost:"), True, f"the url {server.url}")
            async with ws_connect(server.url, ssl=tls.trusting) as ws:
                agreed = ws.response_headers.get("Sec-WebSocket-Extensions", "")
                check_equal(agreed.startswith("permessage-deflate"), True, f"extensions agreed: {agreed!r}")
                for size in SIZES:
                    await roundtrip(ws, text_of_size(size))
                    await roundtrip(ws, bytes_of_size(size))
                fragments = [bytes_of_size(n) for n in (0, 1, 70000, 125, 0)]
                await ws.send(fragments)
                check_equal(await ws.recv(), b"".join(fragments), "fragmented binary over TLS")
                pong = await ws.ping(b"over tls")
                await within(20, pong, "no pong over TLS")
                await ws.close(4001, "tls done")
                check_equal(ws.close_code, 4001, "close code echoed over TLS")
            # Without the test CA, Python's own verification refuses the certificate.
            try:
                async with ws_connect(server.url, ssl=ssl.create_default_context()):
                    raise AssertionError("a certificate from an unknown CA was accepted")
            except ssl.SSLCertVerificationError:
                pass


CASES = [
    text_and_binary_of_every_size,
    every_size_with_deflate_offered,
    fragmented_messages,
    pings_get_pongs,
    client_close_codes_are_echoed,
    stopped_server_closes_with_1001,
    many_concurrent_connections,
    over_tls_with_deflate,
]

if __name__ == "__main__":
    run_cases(CASES, executable_from_argv())
