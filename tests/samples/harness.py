"""What the sample tests share: running a sample binary, running test cases, and a raw
WebSocket client.

The raw client writes and reads frames by hand (RFC 6455), for what Python's
`websockets` cannot express: a client that never answers pings, a request head sent a
byte at a time, reading the single fragments of a relayed stream, a frame written in
two halves, and watching the server close TCP.

Only `ws_connect` and `refusal_status` need Python's websockets (which they import);
the rest is the standard library.
"""

import asyncio
import base64
import hashlib
import os
import re
import signal
import socket
import struct
import sys
import traceback
from collections import namedtuple
from urllib.parse import urlsplit

# A case that runs longer than this is stuck: it fails instead of hanging the suite.
CASE_TIMEOUT = 120
# How long a sample may take to print its line, and to exit once asked to stop.
START_TIMEOUT = 30
STOP_TIMEOUT = 10

KIB = 1024
MIB = 1024 * 1024

# ---- test cases ----


def run_cases(cases, *args):
    """Runs each `async def case(*args)` in a fresh event loop, prints `ok NAME` or
    `FAIL NAME` (with the traceback on stderr) for each, and exits 1 when any failed.
    Case names given on the command line after the sample's path select a subset."""
    wanted = set(sys.argv[2:])
    selected = [c for c in cases if not wanted or c.__name__ in wanted]
    failed = [c.__name__ for c in selected if not run_case(c, args)]
    print(f"{len(selected) - len(failed)} passed, {len(failed)} failed", flush=True)
    sys.exit(1 if failed else 0)


def run_case(case, args):
    try:
        asyncio.run(asyncio.wait_for(case(*args), CASE_TIMEOUT))
    except Exception:  # a failed case must not stop the others
        print(f"FAIL {case.__name__}", flush=True)
        traceback.print_exc()
        sys.stderr.flush()
        return False
    print(f"ok   {case.__name__}", flush=True)
    return True


def executable_from_argv():
    """The sample binary: the first command-line argument."""
    if len(sys.argv) < 2 or not os.access(sys.argv[1], os.X_OK):
        sys.exit(f"usage: {sys.argv[0]} PATH_TO_SAMPLE [CASE...]")
    return sys.argv[1]


def check_equal(actual, expected, what):
    """assert actual == expected, saying what differed without dumping megabytes."""
    if actual != expected:
        raise AssertionError(f"{what}: got {abbreviate(actual)}, expected {abbreviate(expected)}")


async def within(seconds, awaitable, what):
    """Awaits, failing with `what` after `seconds`: a guard against hanging on a server
    that misbehaves, far longer than the wait should take, not a speed check."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what} (nothing after {seconds} s)") from None


def abbreviate(value):
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:160]}... ({len(value)} long)"


def text_of_size(n):
    """Text of exactly `n` UTF-8 bytes, mostly 3-byte characters."""
    return "\u20ac" * (n // 3) + "a" * (n % 3)


def bytes_of_size(n):
    """`n` bytes with every byte value in them."""
    return (bytes(range(256)) * (n // 256 + 1))[:n]


# ---- Python's websockets ----


def ws_connect(url, **options):
    """Python's `websockets` client (import it with /usr/bin/python3), without a limit on
    message size and without pings of its own (which would be traffic for the idle
    timeout); `options` override those."""
    import websockets  # here: the raw parts of this module need only the standard library

    return websockets.connect(url, **{"max_size": None, "ping_interval": None, **options})


async def refusal_status(url):
    """The HTTP status of an upgrade to `url` that the server must refuse."""
    import websockets

    try:
        async with ws_connect(url):
            raise AssertionError(f"an upgrade to {url} was accepted")
    except websockets.InvalidStatusCode as refused:
        return refused.status_code


async def roundtrip(ws, message):
    """Sends `message` and checks that the next message received is the same, of the
    same type (str for text, bytes for binary)."""
    await ws.send(message)
    check_equal(await ws.recv(), message, "echoed message")


async def send_whole(ws, data):
    await ws.send(data)  # one frame


async def send_fragmented(ws, data, fragment=100 * KIB):
    """`data` as one message in frames of `fragment` bytes."""
    await ws.send([data[i:i + fragment] for i in range(0, len(data), fragment)])


async def close_all(*connections):
    for ws in connections:
        await ws.close()


# ---- running a sample ----


async def run_command(executable, *args):
    """Runs the sample to completion (e.g. `--help`): (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()  # e.g. a bad argument that started a server instead of failing
        await proc.wait()
        raise AssertionError(f"{executable} {' '.join(args)} did not exit") from None
    return proc.returncode, out.decode(), err.decode()


class Sample:
    """A sample server on a free port, for one `async with`:

        async with Sample(echo, "--broadcast") as server:
            ... server.url ...

    It listens on `ws://127.0.0.1:0/` unless `url` says otherwise. The url is read from
    the line the sample prints once it accepts connections (the last `ws://...` in it).
    Leaving the block stops the sample with SIGTERM, then SIGKILL, also on failure.
    With `capture_stderr`, what it writes to stderr is kept, a line at a time, in
    `stderr_lines` (and copied to ours); `stderr_line(pattern)` waits for one."""

    def __init__(self, executable, *args, url="ws://127.0.0.1:0/", capture_stderr=False):
        self.command = [executable, *(["--url", url] if url else []), *args]
        self.proc = None
        self.line = None  # what it printed first
        self.url = None   # the WebSocket url from that line
        self.capture_stderr = capture_stderr
        self.stderr_lines = []
        self.stderr_changed = asyncio.Event()
        self.stderr_task = None

    async def __aenter__(self):
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if self.capture_stderr else None)
        if self.capture_stderr:
            self.stderr_task = asyncio.create_task(self.read_stderr())
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT)
            self.line = raw.decode().rstrip("\n")
            urls = re.findall(r"wss?://[^\s)]+", self.line)
            if not urls:
                raise AssertionError(f"{self.command}: no ws:// or wss:// url in its first line {self.line!r} "
                                     f"(exit code {self.proc.returncode})")
            self.url = urls[-1]
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    async def read_stderr(self):
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip("\n")
            print(f"  {os.path.basename(self.command[0])} stderr: {text}", file=sys.stderr, flush=True)
            self.stderr_lines.append(text)
            self.stderr_changed.set()

    async def stderr_line(self, pattern, seconds=20, after=0):
        """The first line of stderr from `after` on (an index into `stderr_lines`) that
        matches the regular expression `pattern`: (its index, the line)."""
        async def wait():
            seen = after
            while True:
                for i in range(seen, len(self.stderr_lines)):
                    if re.search(pattern, self.stderr_lines[i]):
                        return i, self.stderr_lines[i]
                seen = len(self.stderr_lines)
                self.stderr_changed.clear()
                await self.stderr_changed.wait()
        return await within(seconds, wait(), f"{self.command[0]} printed no line like {pattern!r} on stderr")

    @property
    def host(self):
        return urlsplit(self.url).hostname

    @property
    def port(self):
        return urlsplit(self.url).port

    def at(self, path):
        """The server's url with another path."""
        return f"ws://{self.host}:{self.port}{path}"

    async def stop(self, sig=signal.SIGTERM):
        """Asks the sample to stop with `sig`, kills it if it does not exit in time, and
        returns its exit code (negative: killed by that signal)."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.stderr_task:
            await self.stderr_task  # to EOF: it exited
        return self.proc.returncode


# ---- HTTP ----


async def read_http_head(reader):
    """Reads a response head: (status, {lower-case name: value})."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in filter(None, lines):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


async def http_get(host, port, path, headers=()):
    """A plain HTTP GET: (status, headers, body); the server closes the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        request += "".join(f"{name}: {value}\r\n" for name, value in headers)
        writer.write((request + "\r\n").encode())
        status, response_headers = await read_http_head(reader)
        body = await reader.read()  # to EOF: the server closes after its response
        return status, response_headers, body
    finally:
        writer.close()


# ---- a raw WebSocket client ----

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

Frame = namedtuple("Frame", "fin opcode payload")

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(host, port, path, key):
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def mask(payload, key):
    """XORs `payload` with the 4-byte `key` repeated, as one big integer (fast even for
    megabytes, unlike a loop over bytes)."""
    if not payload:
        return b""
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def encode_frame(opcode, payload=b"", fin=True):
    """A client frame: always masked, as RFC 6455 section 5.3 requires."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    key = os.urandom(4)
    return header + key + mask(payload, key)


def parse_close(payload):
    """(code, reason) of a close frame; (1005, "") when it has no code."""
    if not payload:
        return 1005, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


class RawClient:
    """One TCP connection speaking WebSocket by hand."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open_tcp(cls, url, rcvbuf=None):
        """A TCP connection to the server, nothing sent yet. `rcvbuf` sets SO_RCVBUF
        before connecting (the window the server sees): a small one fills quickly."""
        parts = urlsplit(url)
        if rcvbuf is None:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            return cls(reader, writer)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    @classmethod
    async def connect(cls, url, rcvbuf=None):
        """Opens TCP and completes the opening handshake, checking the server's answer."""
        client = await cls.open_tcp(url, rcvbuf)
        parts = urlsplit(url)
        key = base64.b64encode(os.urandom(16)).decode()
        await client.send_bytes(upgrade_request(parts.hostname, parts.port, parts.path or "/", key))
        status, headers = await read_http_head(client.reader)
        check_equal(status, 101, "upgrade status")
        check_equal(headers.get("sec-websocket-accept"), accept_key(key), "Sec-WebSocket-Accept")
        return client

    async def send_bytes(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, message):
        """Like websockets' `send`: a str as a text frame, bytes as a binary frame."""
        if isinstance(message, str):
            await self.send_frame(OP_TEXT, message.encode())
        else:
            await self.send_frame(OP_BINARY, message)

    async def send_frame(self, opcode, payload=b"", fin=True):
        await self.send_bytes(encode_frame(opcode, payload, fin))

    async def read_frame(self):
        """The next frame from the server, which must not be masked."""
        first, second = await self.reader.readexactly(2)
        if second & 0x80:
            raise AssertionError("the server masked a frame")
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return Frame(bool(first & 0x80), first & 0x0F, await self.reader.readexactly(n))

    async def read_data_frame(self):
        """The next text, binary or continuation frame; answers pings on the way, the
        way a well-behaved client does."""
        while True:
            frame = await self.read_frame()
            if frame.opcode == OP_PING:
                await self.send_frame(OP_PONG, frame.payload)
            elif frame.opcode != OP_PONG:
                if frame.opcode == OP_CLOSE:
                    raise AssertionError(f"closed: {parse_close(frame.payload)}")
                return frame

    async def read_message(self):
        """A whole message, reassembled: (opcode, payload)."""
        first = await self.read_data_frame()
        payload = bytearray(first.payload)
        frame = first
        while not frame.fin:
            frame = await self.read_data_frame()
            check_equal(frame.opcode, OP_CONT, "opcode of a continuation frame")
            payload += frame.payload
        return first.opcode, bytes(payload)

    async def read_stream_start(self, opcode, at_least):
        """Reads the first frames of a relayed stream, `at_least` bytes of it, while its
        sender still holds back the end: none of them may be final. Returns the bytes."""
        received = b""
        expected_opcode = opcode
        while len(received) < at_least:
            frame = await self.read_data_frame()
            check_equal(frame.opcode, expected_opcode, "opcode of a relayed fragment")
            assert not frame.fin, "the relay ended before the sender sent the end"
            received += frame.payload
            expected_opcode = OP_CONT
        return received

    async def read_stream_rest(self):
        """Reads the continuation frames of a relayed stream up to the final one."""
        received = b""
        while True:
            frame = await self.read_data_frame()
            check_equal(frame.opcode, OP_CONT, "opcode of a relayed continuation")
            received += frame.payload
            if frame.fin:
                return received

    async def wait_for_tcp_close(self):
        """Returns once the server has closed TCP, reading (and dropping) everything up
        to EOF."""
        try:
            while await self.reader.read(64 * KIB):
                pass
        except ConnectionError:
            pass  # a reset is a close too

    def reset(self):
        """Drops the connection with a TCP reset (SO_LINGER 0): the peer's pending
        writes fail at once."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self):
        """Closes TCP, without a closing handshake."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass  # the server was first
