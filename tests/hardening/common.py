"""What the hardening tests share, on top of tests/samples/harness.py (which starts
samples/echo and speaks WebSocket by hand): the server's own figures read from /proc,
its --stats counters, the command-line knobs, and closing handshakes done by hand.

Nothing here measures speed: waits are guards against a server that hangs.
"""

import asyncio
import os
import re
import resource
import signal
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples"))

import harness  # noqa: E402
from harness import KIB, MIB, OP_CLOSE, OP_PING, OP_PONG, parse_close  # noqa: E402

# The big cases move hundreds of megabytes through Python and, in the sanitized build,
# an instrumented server: a generous guard against a hang, not a speed check.
harness.CASE_TIMEOUT = 600

# ---- command line ----


def take_option(name, default, convert=int):
    """Removes `--name VALUE` (or `--name=VALUE`) from sys.argv and returns VALUE
    converted, or `default`; what is left is harness.run_cases' (the sample, cases)."""
    for i, arg in enumerate(sys.argv):
        if arg == name and i + 1 < len(sys.argv):
            value = sys.argv[i + 1]
            del sys.argv[i:i + 2]
            return convert(value)
        if arg.startswith(name + "="):
            del sys.argv[i]
            return convert(arg.split("=", 1)[1])
    return default


# ---- the server process, seen from /proc ----


def memory(pid):
    """(VmRSS, VmHWM) of the process in bytes: resident now, and the most ever."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return tuple(int(fields[name].split()[0]) * KIB for name in ("VmRSS", "VmHWM"))


def descriptors(pid):
    """How many file descriptors the process holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def sanitized(executable):
    """True for a build with AddressSanitizer, whose memory figures (shadow memory, the
    quarantine of freed blocks) say nothing about the library's."""
    with open(executable, "rb") as f:
        return b"__asan_init" in f.read()


def raise_descriptor_limit(at_least):
    """Raises this process's soft RLIMIT_NOFILE to its hard limit (the server, spawned
    later, inherits it); fails when even that is below `at_least`."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < at_least:
        raise AssertionError(f"the hard limit on open files is {hard}, below the {at_least} needed")
    return hard


class MemoryWatch:
    """Samples the server's VmRSS in the background while a run goes on; `stop()`
    returns the peak: the largest of the samples and of VmHWM (which the kernel keeps,
    so nothing between two samples is missed)."""

    def __init__(self, pid, every=0.02):
        self.pid = pid
        self.every = every
        self.samples = 0
        self.peak_rss = 0
        self.task = None

    def start(self):
        self.task = asyncio.create_task(self.run())
        return self

    async def run(self):
        while True:
            self.peak_rss = max(self.peak_rss, memory(self.pid)[0])
            self.samples += 1
            await asyncio.sleep(self.every)

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        return max(self.peak_rss, memory(self.pid)[1])


# ---- --stats ----

STATS = re.compile(r"echo: stats opened=(\d+) closed=(\d+) open=(\d+) errors=(\d+) dropped=(\d+) closes=(\S*)")


def parse_stats(line):
    """{'opened': N, ..., 'closes': {code: N}} from a line samples/echo --stats prints."""
    match = STATS.fullmatch(line.strip())
    if not match:
        raise AssertionError(f"not a stats line: {line!r}")
    names = ("opened", "closed", "open", "errors", "dropped")
    stats = {name: int(value) for name, value in zip(names, match.groups())}
    stats["closes"] = {int(code): int(n) for code, n in
                       (item.split(":") for item in match[6].split(",") if item)}
    return stats


async def next_stats(server):
    """The next stats line on the server's standard output."""
    while True:
        line = await harness.within(60, server.proc.stdout.readline(), "no stats line from the server")
        if not line:
            raise AssertionError(f"the server's output ended (exit code {server.proc.returncode})")
        if line.startswith(b"echo: stats"):
            return parse_stats(line.decode())


async def stats(server):
    """The counters of a running `samples/echo --stats` (it prints them on SIGUSR1)."""
    if server.proc.returncode is not None:
        raise AssertionError(f"the server is gone (exit code {server.proc.returncode})")
    server.proc.send_signal(signal.SIGUSR1)
    return await next_stats(server)


async def stop_with_stats(server):
    """Stops the server with SIGTERM; checks that it exited with 0 and returns the
    counters it printed on the way out."""
    code = await server.stop()
    harness.check_equal(code, 0, "the server's exit code")
    rest = await server.proc.stdout.read()
    lines = [line for line in rest.decode().splitlines() if line.startswith("echo: stats")]
    if not lines:
        raise AssertionError("no stats line on exit")
    return parse_stats(lines[-1])


async def wait_until(what, condition, seconds=120, every=0.1):
    """Polls the awaitable-returning `condition()` until it gives a true value, which it
    returns; fails with `what` after `seconds` (a hang, not slowness)."""
    async def poll():
        while True:
            value = await condition()
            if value:
                return value
            await asyncio.sleep(every)
    return await harness.within(seconds, poll(), what)


# ---- closing handshakes by hand ----


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


async def close_cleanly(client, code=1000):
    """Our close frame, then frames up to the server's answer (skipping data still on its
    way; answering pings), then the server's TCP close. Returns the answer's code."""
    await client.send_frame(OP_CLOSE, close_payload(code))
    while True:
        frame = await client.read_frame()
        if frame.opcode == OP_CLOSE:
            break
    await client.wait_for_tcp_close()
    await client.close()
    return parse_close(frame.payload)[0]


async def read_until_close(client, on_data):
    """Reads frames (passing each data frame to `on_data`) until the server's close
    frame, answers it with the same code and waits for the TCP close. Returns the
    server's (code, reason)."""
    while True:
        frame = await client.read_frame()
        if frame.opcode == OP_CLOSE:
            break
        if frame.opcode == OP_PING:
            await client.send_frame(OP_PONG, frame.payload)
        elif frame.opcode != OP_PONG:
            on_data(frame)
    code, reason = parse_close(frame.payload)
    await client.send_frame(OP_CLOSE, close_payload(code))
    await client.wait_for_tcp_close()
    await client.close()
    return code, reason


def mib(n):
    return f"{n / MIB:.1f} MiB"
