"""samples/echo driven from outside: by Python's websockets (Debian's python3-websockets,
which only /usr/bin/python3 sees) and by the harness's raw client.

    /usr/bin/python3 tests/samples/echo.py PATH_TO_ECHO [CASE...]
"""

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from harness import (  # noqa: E402
    MIB, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, RawClient, Sample, abbreviate, bytes_of_size,
    check_equal, close_all, encode_frame, executable_from_argv, parse_close, refusal_status,
    roundtrip, run_cases, run_command, text_of_size, within, ws_connect)

SIZES = [0, 1, 125, 126, 65535, 65536, MIB]
FLAGS = ["--url", "--max-connections", "--timeout", "--max-message-size", "--handshake-timeout",
         "--close-timeout", "--max-queued-bytes", "--overflow", "--broadcast", "--redis", "--stats", "--cert",
         "--key", "--help"]

# ---- arguments and the printed line ----


async def help_names_every_flag(echo):
    code, out, _ = await run_command(echo, "--help")
    check_equal(code, 0, "exit code of --help")
    missing = [flag for flag in FLAGS if flag not in out]
    check_equal(missing, [], "flags missing from --help")
    assert "ws://localhost:3000" in out, "--help does not give the default url"


async def bad_arguments_exit_nonzero(echo):
    for args in (["--nope"], ["--timeout", "soon"], ["--max-connections"],
                 ["--max-connections", "0"], ["--url", "http://127.0.0.1:0/"],
                 ["--overflow", "sometimes"], ["--max-queued-bytes", "0"],
                 ["--redis", "redis://127.0.0.1:1"], ["--broadcast", "--redis", "http://127.0.0.1/"]):
        code, out, err = await run_command(echo, *args)
        assert code != 0, f"{args}: exit code 0"
        assert err.strip(), f"{args}: nothing on stderr says why"
        assert "listening" not in out, f"{args}: it listened anyway"


async def prints_the_real_port(echo):
    async with Sample(echo) as server:
        match = re.fullmatch(r"echo: listening on ws://127\.0\.0\.1:(\d+)/", server.line)
        assert match, f"unexpected first line {server.line!r}"
        assert int(match[1]) != 0, "printed port 0, not the port bound"
        async with ws_connect(server.url) as ws:
            await roundtrip(ws, "the printed url works")


async def url_path_is_the_only_websocket_path(echo):
    async with Sample(echo, url="ws://127.0.0.1:0/echo") as server:
        assert server.line.endswith("/echo"), f"path missing from {server.line!r}"
        async with ws_connect(server.url) as ws:
            await roundtrip(ws, "at /echo")
        check_equal(await refusal_status(server.at("/")), 404, "status of an upgrade at another path")

# ---- echo ----


async def echoes_text_of_every_size(echo):
    async with Sample(echo) as server, ws_connect(server.url) as ws:
        for size in SIZES:
            await roundtrip(ws, text_of_size(size))


async def echoes_binary_of_every_size(echo):
    async with Sample(echo) as server, ws_connect(server.url) as ws:
        for size in SIZES:
            await roundtrip(ws, bytes_of_size(size))


async def echoes_fragmented_messages_whole(echo):
    # websockets sends an iterable as one fragment per item.
    async with Sample(echo) as server, ws_connect(server.url) as ws:
        await ws.send(["frag", "", "mented ", "\u20ac text"])
        check_equal(await ws.recv(), "fragmented \u20ac text", "fragmented text echoed")
        chunks = [bytes_of_size(70000), b"", b"\x00", bytes_of_size(300)]
        await ws.send(chunks)
        check_equal(await ws.recv(), b"".join(chunks), "fragmented binary echoed")


async def echoes_many_messages_in_order(echo):
    messages = [text_of_size(i) if i % 2 else bytes_of_size(i) for i in range(200)]
    async with Sample(echo) as server, ws_connect(server.url) as ws:
        for m in messages:  # all sent before any is read
            await ws.send(m)
        for i, m in enumerate(messages):
            check_equal(await ws.recv(), m, f"message {i}")


async def echo_keeps_the_opcode_on_the_wire(echo):
    async with Sample(echo) as server:
        client = await RawClient.connect(server.url)
        for opcode, payload in ((OP_TEXT, "t\u00e9xt".encode()), (OP_BINARY, b"\x00\xffbin"),
                                (OP_TEXT, b""), (OP_BINARY, b"")):
            await client.send_frame(opcode, payload)
            check_equal(await client.read_message(), (opcode, payload), "echoed frame")
        await client.close()


async def echo_goes_to_the_sender_only(echo):
    async with Sample(echo) as server, ws_connect(server.url) as alice, ws_connect(server.url) as bob:
        await alice.send("for alice only")
        check_equal(await alice.recv(), "for alice only", "alice's echo")
        # bob's first message back is his own: alice's never reached him.
        await roundtrip(bob, "bob's own")

# ---- --broadcast ----


def whole(message):
    """What a message sent as fragments (a list) is once reassembled."""
    if not isinstance(message, list):
        return message
    return message[0][:0].join(message)


async def broadcast_reaches_everyone_sender_included(echo):
    messages = ["hello all", b"\x00\x01\x02", ["frag", "mented"], bytes_of_size(MIB),
                [bytes_of_size(100000), bytes_of_size(5)]]
    async with Sample(echo, "--broadcast") as server:
        clients = [await ws_connect(server.url) for _ in range(3)]
        for i, message in enumerate(messages):
            sender = clients[i % len(clients)]
            await sender.send(message)
            for n, ws in enumerate(clients):
                check_equal(await ws.recv(), whole(message), f"message {i} at client {n}")
        await close_all(*clients)


async def connect_raw_clients(server, count):
    return [await RawClient.connect(server.url) for _ in range(count)]


async def broadcast_relays_fragments_as_they_arrive(echo):
    async with Sample(echo, "--broadcast") as server:
        clients = await connect_raw_clients(server, 3)
        sender = clients[0]
        for opcode, first, last in ((OP_TEXT, "stream \u20ac".encode(), b" ended"),
                                    (OP_BINARY, b"\x00\x01", b"\xfe\xff")):
            await sender.send_frame(opcode, first, fin=False)
            starts = (c.read_stream_start(opcode, len(first)) for c in clients)
            heads = await within(20, asyncio.gather(*starts),
                                 "the first fragment was not relayed before the last one was sent")
            await sender.send_frame(OP_CONT, last, fin=True)
            for n, (client, head) in enumerate(zip(clients, heads)):
                check_equal(head + await client.read_stream_rest(), first + last, f"stream at client {n}")
        await close_all(*clients)


async def broadcast_relays_a_big_frame_as_it_arrives(echo):
    data = bytes_of_size(MIB)
    frame = encode_frame(OP_BINARY, data)
    half = len(frame) // 2
    async with Sample(echo, "--broadcast") as server:
        clients = await connect_raw_clients(server, 3)
        sender = clients[0]
        sender.writer.write(frame[:half])  # one frame, its second half not sent yet
        _, *heads = await within(
            20, asyncio.gather(sender.writer.drain(), *(c.read_stream_start(OP_BINARY, 1) for c in clients)),
            "nothing of a big frame was relayed before its end was sent")
        await sender.send_bytes(frame[half:])
        rests = await asyncio.gather(*(c.read_stream_rest() for c in clients))
        for n, (head, rest) in enumerate(zip(heads, rests)):
            check_equal(head + rest, data, f"big frame at client {n}")
        await close_all(*clients)

# ---- two echoes joined through Redis ----


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence."""

    async def __aenter__(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="echo-redis-")
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", self.dir, stdout=asyncio.subprocess.DEVNULL)
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return self
            except OSError:
                await asyncio.sleep(0.025)
        raise AssertionError("redis-server did not start")

    async def __aexit__(self, *exc):
        self.proc.kill()
        await self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/echo-test"


async def until_linked(sender, others):
    """Sends probes from `sender` until every one of `others` hears one (both echoes
    have joined the channel), then a marker, and reads everyone up to it."""
    for n in range(200):
        await sender.send(f"probe {n}")
        try:
            await asyncio.gather(*(asyncio.wait_for(ws.recv(), 0.05) for ws in others))
            break
        except asyncio.TimeoutError:
            continue
    else:
        raise AssertionError("the echoes never relayed to each other")
    await sender.send("linked")
    for ws in [sender, *others]:
        while await within(10, ws.recv(), "the marker") != "linked":
            pass


async def redis_joins_two_broadcasting_echoes(echo):
    if shutil.which("redis-server") is None:
        raise AssertionError("redis-server is not installed (tests/debian-packages.sh installs it)")
    async with RedisServer() as redis, \
            Sample(echo, "--broadcast", "--redis", redis.url) as one, \
            Sample(echo, "--broadcast", "--redis", redis.url) as two:
        a, b = await ws_connect(one.url), await ws_connect(two.url)
        await until_linked(a, [b])
        messages = ["hello both", bytes(range(256)), bytes_of_size(MIB), ["frag", "mented"],
                    [bytes_of_size(100000), bytes_of_size(5)]]
        for i, message in enumerate(messages):
            sender = (a, b)[i % 2]
            await sender.send(message)
            for name, ws in (("one", a), ("two", b)):
                check_equal(await within(10, ws.recv(), f"message {i} at {name}"), whole(message),
                            f"message {i} at the client of echo {name}")
        # Once each: nothing more is on its way.
        for ws in (a, b):
            try:
                extra = await asyncio.wait_for(ws.recv(), 0.3)
                raise AssertionError(f"a message arrived twice: {abbreviate(extra)}")
            except asyncio.TimeoutError:
                pass
        await close_all(a, b)

# ---- limits ----


async def max_connections_refuses_with_503(echo):
    async with Sample(echo, "--max-connections", "2") as server:
        first = await ws_connect(server.url)
        second = await ws_connect(server.url)
        check_equal(await refusal_status(server.url), 503, "status over --max-connections")
        await roundtrip(second, "still served")
        await first.close()  # returns once the server closed TCP: the slot is free
        async with ws_connect(server.url) as third:
            await roundtrip(third, "in the freed slot")
        await second.close()


async def idle_client_is_pinged_then_closed(echo):
    async with Sample(echo, "--timeout", "300") as server:
        client = await RawClient.connect(server.url)
        # This client never answers anything. The default timeout is 600 s, so 20 s
        # guards only against a server that ignores --timeout.
        ping = await within(20, client.read_frame(), "no ping on an idle connection")
        check_equal(ping.opcode, OP_PING, "first frame to an idle client")
        close = await within(20, client.read_frame(), "no close after an unanswered ping")
        check_equal(close.opcode, OP_CLOSE, "frame after an unanswered ping")
        check_equal(parse_close(close.payload)[0], 1001, "close code of an idle timeout")
        await within(20, client.wait_for_tcp_close(), "TCP still open after the idle close")
        await client.close()


class CountingPongs(websockets.WebSocketClientProtocol):
    """websockets' client, counting the pongs it answers the server's pings with."""

    pongs = 0

    async def pong(self, data=b""):
        self.pongs += 1
        await super().pong(data)


async def live_client_stays_past_timeouts(echo):
    async with Sample(echo, "--timeout", "300") as server:
        async with ws_connect(server.url, create_protocol=CountingPongs) as ws:
            # Silent but answering pings: three pings are at least three timeouts.
            async def three_pings():
                while ws.pongs < 3:
                    await asyncio.sleep(0.05)
            await within(30, three_pings(), "the server stopped pinging")
            assert ws.open, f"closed with {ws.close_code} although it answered every ping"
            await roundtrip(ws, "still here")


async def max_message_size_closes_with_1009(echo):
    limit = 1000
    oversized = [bytes_of_size(limit + 1), text_of_size(limit + 1), [bytes_of_size(600), bytes_of_size(600)]]
    async with Sample(echo, "--max-message-size", str(limit)) as server:
        async with ws_connect(server.url) as ws:
            await roundtrip(ws, bytes_of_size(limit))
            await ws.send([bytes_of_size(500), bytes_of_size(500)])  # two fragments
            check_equal(await ws.recv(), bytes_of_size(500) * 2, "fragmented message at the limit")
        for message in oversized:
            async with ws_connect(server.url) as ws:
                await ws.send(message)
                try:
                    await ws.recv()
                    raise AssertionError("a message past --max-message-size was echoed")
                except websockets.ConnectionClosedError as closed:
                    check_equal(closed.rcvd and closed.rcvd.code, 1009, "close code past the limit")


def endless_request_head(server):
    """A request head that never ends: a request line, then header lines forever."""
    yield f"GET / HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n".encode()
    while True:
        yield b"X-Slow: 1\r\n"


async def trickle_until_closed(client, head):
    """Sends `head` a byte at a time until the server closes TCP."""
    closed = asyncio.ensure_future(client.wait_for_tcp_close())
    try:
        for chunk in head:
            for byte in chunk:
                if closed.done():
                    return
                try:
                    await client.send_bytes(bytes([byte]))
                except ConnectionError:
                    return
                await asyncio.sleep(0.02)
    finally:
        closed.cancel()


async def handshake_timeout_drops_a_trickling_client(echo):
    async with Sample(echo, "--handshake-timeout", "300") as server:
        async with ws_connect(server.url) as ws:
            await roundtrip(ws, "a prompt client gets in")
        client = await RawClient.open_tcp(server.url)
        # 8 s is under the default handshake timeout (10 s): a server that ignored the
        # flag, or restarted its clock on every byte, fails here.
        await within(8, trickle_until_closed(client, endless_request_head(server)),
                     "a client trickling its request head was not dropped")
        await client.close()

# ---- stopping ----


async def sigint_closes_clients_with_1001(echo):
    async with Sample(echo) as server:
        clients = [await ws_connect(server.url) for _ in range(2)]
        check_equal(await server.stop(signal.SIGINT), 0, "exit code after SIGINT")
        for ws in clients:
            await within(20, ws.wait_closed(), "a client still open after the server stopped")
            check_equal(ws.close_code, 1001, "close code when the server stops")


CASES = [
    help_names_every_flag,
    bad_arguments_exit_nonzero,
    prints_the_real_port,
    url_path_is_the_only_websocket_path,
    echoes_text_of_every_size,
    echoes_binary_of_every_size,
    echoes_fragmented_messages_whole,
    echoes_many_messages_in_order,
    echo_keeps_the_opcode_on_the_wire,
    echo_goes_to_the_sender_only,
    broadcast_reaches_everyone_sender_included,
    broadcast_relays_fragments_as_they_arrive,
    broadcast_relays_a_big_frame_as_it_arrives,
    redis_joins_two_broadcasting_echoes,
    max_connections_refuses_with_503,
    idle_client_is_pinged_then_closed,
    live_client_stays_past_timeouts,
    max_message_size_closes_with_1009,
    handshake_timeout_drops_a_trickling_client,
    sigint_closes_clients_with_1001,
]

if __name__ == "__main__":
    run_cases(CASES, executable_from_argv())
