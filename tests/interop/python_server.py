"""An echo server in Python's websockets (Debian's python3-websockets, 10.4), the peer of
our client (tests/interop/client.cpp). Listens on 127.0.0.1 and a free port and prints
`listening on ws://127.0.0.1:PORT/`; with --cert and --key (PEM: the certificate chain and
its key), serves wss:// instead and prints `listening on wss://127.0.0.1:PORT/`. Every message comes back with its type, except these
text commands (the same as node_server.mjs; README.md):

  fragmented:binary:COUNT:SIZE    a binary message of SIZE pattern bytes in COUNT frames
  fragmented:text:COUNT:REPEATS   TEXT_UNIT x REPEATS in COUNT frames, split between
                                  characters (websockets encodes each str fragment alone)
  ping:PAYLOAD                    pings; answers `pong:PAYLOAD` when the pong came, else `no-pong`
  close:CODE:REASON               closes with CODE and REASON
  drop                            ends TCP without a close frame
  extensions                      answers `extensions:NAMES`, the extensions agreed on

permessage-deflate is accepted when offered (websockets' default), and then every message
compressed.

  /usr/bin/python3 tests/interop/python_server.py [--cert CHAIN.pem --key KEY.pem]
"""

import argparse
import asyncio
import re
import ssl
import sys

import websockets

TEXT_UNIT = "Hé€𝄞!"
LONGEST_COMMAND = 256  # a longer text message is always echoed


def pattern_bytes(size):
    """Byte i is i % 251, as in ws.mjs and client.cpp."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def split(whole, count):
    """`whole` in `count` consecutive pieces of nearly equal size (some may be empty)."""
    return [whole[k * len(whole) // count:(k + 1) * len(whole) // count] for k in range(count)]


async def command(ws, text):
    """Runs `text` when it is a command; False when it is a message to echo."""
    if m := re.fullmatch(r"fragmented:(binary|text):(\d+):(\d+)", text):
        count, size = int(m[2]), int(m[3])
        whole = pattern_bytes(size) if m[1] == "binary" else TEXT_UNIT * size
        # An iterable is sent as fragments: each item one frame, then an empty final one.
        await ws.send(split(whole, count))
    elif m := re.fullmatch(r"ping:(.*)", text, re.S):
        pong = await ws.ping(m[1])
        try:
            await asyncio.wait_for(pong, 5)
            await ws.send(f"pong:{m[1]}")
        except asyncio.TimeoutError:
            await ws.send("no-pong")
    elif m := re.fullmatch(r"close:(\d+):(.*)", text, re.S):
        await ws.close(int(m[1]), m[2])
    elif text == "drop":
        ws.transport.abort()  # no close frame: the peer sees TCP end
    elif text == "extensions":
        await ws.send("extensions:" + ",".join(extension.name for extension in ws.extensions))
    else:
        return False
    return True


async def handler(ws):
    try:
        async for message in ws:
            if isinstance(message, str) and len(message) < LONGEST_COMMAND and await command(ws, message):
                continue
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass  # dropped connections are part of the tests


async def main():
    parser = argparse.ArgumentParser(description="An echo server for interop-client.")
    parser.add_argument("--cert", help="serve wss:// with this certificate chain (PEM)")
    parser.add_argument("--key", help="the private key of --cert (PEM)")
    args = parser.parse_args()
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    scheme = "wss" if context else "ws"
    # No heartbeat pings: only the ping command pings. 16 MiB messages and then some.
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=64 << 20,
                                ping_interval=None, ssl=context) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on {scheme}://127.0.0.1:{port}/", flush=True)
        await asyncio.Future()  # until killed


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
