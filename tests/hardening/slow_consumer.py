"""A slow consumer among fast ones, against `samples/echo --broadcast`: the fast ones get
every byte in order, the slow one is closed with 1008 (or, with --overflow drop, loses
messages and stays open), and the server's memory stays bounded by --max-queued-bytes
whatever the volume. Clients that vanish with a TCP reset while the server writes to
them, or in the middle of their own big frame, never take the server down.

    /usr/bin/python3 tests/hardening/slow_consumer.py PATH_TO_ECHO [--mebibytes N] [CASE...]

--mebibytes is what the sender pushes in the close-policy case (400 by default; the
drop-policy case pushes a quarter of it). It prints the figures it measured.
"""

import asyncio
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    KIB, MIB, MemoryWatch, close_cleanly, memory, mib, read_until_close, sanitized, stats,
    stop_with_stats, take_option, wait_until)
from harness import (  # noqa: E402
    OP_BINARY, RawClient, Sample, check_equal, encode_frame, executable_from_argv, roundtrip,
    run_cases, within, ws_connect)

MEBIBYTES = take_option("--mebibytes", 400)

# Just under the 64 KiB stream threshold: whole messages, one frame each, which the
# drop policy may drop (a streamed one cannot be dropped alone).
MESSAGE = 64 * KIB - 1
FRAME = MESSAGE + 10  # as the server sends it: 2 + 8 bytes of head, unmasked
QUEUE = MIB           # --max-queued-bytes
# Messages the sender may have ahead of the slowest fast receiver. Every byte the
# server holds for a fast receiver is one it has not received yet, so its queue stays
# below WINDOW frames, well under QUEUE: the fast ones never overflow.
WINDOW = 8
assert (WINDOW - 1) * FRAME < QUEUE
FAST = 4          # fast receivers, besides the sender (which gets its own messages too)
EVENT_QUEUE = 64  # the server's default event_queue: messages it may hold read, not sent
SLACK = 8 * MIB   # allocator and bookkeeping

PATTERN = bytes(range(256)) * (MESSAGE // 256 + 2)


def payload(i):
    """Message i: its index, then the byte pattern from an offset of its own."""
    offset = i * 7 % 256
    return struct.pack("!Q", i) + PATTERN[offset:offset + MESSAGE - 8]


def index_of(data):
    return struct.unpack("!Q", data[:8])[0] if len(data) >= 8 else None


def check_message(data, i, who):
    expected = payload(i)
    if data == expected:
        return
    where = next((k for k, (a, b) in enumerate(zip(data, expected)) if a != b), min(len(data), len(expected)))
    raise AssertionError(f"{who}, message {i}: {len(data)} bytes (index {index_of(data)}), expected "
                         f"{len(expected)}; first difference at byte {where}")


def echo_arguments(policy):
    # A long close timeout: the slow client's close frame waits behind what it has not
    # read until it reads again, and must still be there then.
    return ["--broadcast", "--stats", "--max-connections", "64", "--max-queued-bytes", str(QUEUE),
            "--overflow", policy, "--close-timeout", "600000"]


async def push_through(server, total):
    """Connects a slow client (small SO_RCVBUF, never reads), FAST fast receivers and a
    sender; the sender sends `total` messages, paced by the slowest fast receiver, and
    every fast receiver (the sender too) must get each exactly, in order. Returns (the
    slow client, the receivers, figures)."""
    pid = server.proc.pid
    slow = await RawClient.connect(server.url, rcvbuf=4 * KIB)
    slow.writer.transport.pause_reading()  # not a byte more after the handshake
    receivers = [await RawClient.connect(server.url) for _ in range(FAST + 1)]
    sender = receivers[-1]
    baseline = memory(pid)[0]
    watch = MemoryWatch(pid).start()
    progress = [0] * len(receivers)
    advanced = asyncio.Event()

    async def receive(n, client):
        for i in range(total):
            opcode, data = await client.read_message()
            check_equal(opcode, OP_BINARY, f"receiver {n}: opcode of message {i}")
            check_message(data, i, f"receiver {n}")
            progress[n] = i + 1
            advanced.set()

    async def send():
        for i in range(total):
            while min(progress) <= i - WINDOW:
                advanced.clear()
                await advanced.wait()
            await sender.send_frame(OP_BINARY, payload(i))

    tasks = [asyncio.create_task(send())] + [asyncio.create_task(receive(n, c)) for n, c in enumerate(receivers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    peak = await watch.stop()
    sockets = len(receivers) + 1
    figures = {
        "messages": total,
        "delivered": total * MESSAGE * len(receivers),
        "baseline": baseline,
        "peak": peak,
        "bound": sockets * (QUEUE + FRAME) + EVENT_QUEUE * MESSAGE + SLACK,
        "samples": watch.samples,
    }
    return slow, receivers, figures


def check_memory(echo, figures, what):
    grown = figures["peak"] - figures["baseline"]
    print(f"  {what}: {figures['messages']} messages of {MESSAGE} bytes to {FAST + 1} receivers, "
          f"{mib(figures['delivered'])} delivered exactly; server RSS {mib(figures['baseline'])} before, "
          f"peak {mib(figures['peak'])} (+{mib(grown)}, bound +{mib(figures['bound'])}, "
          f"{figures['samples']} samples)", flush=True)
    if sanitized(echo):
        print("  (sanitized build: its memory figures are not checked)", flush=True)
    elif grown > figures["bound"]:
        raise AssertionError(f"the server grew by {mib(grown)}, past its bound of {mib(figures['bound'])}")


async def close_all_cleanly(clients):
    for n, client in enumerate(clients):
        check_equal(await close_cleanly(client), 1000, f"the server's answer to receiver {n}'s close")


async def slow_consumer_is_closed_with_1008(echo):
    total = MEBIBYTES * MIB // MESSAGE
    async with Sample(echo, *echo_arguments("close")) as server:
        slow, receivers, figures = await push_through(server, total)
        check_memory(echo, figures, "close policy")
        # Now the slow client reads: what was being written to it when its queue
        # overflowed (whole messages from the first, in order), then our close.
        got = []

        def on_data(frame):
            check_equal(frame.fin, True, "a queued message's frame is whole")
            check_message(frame.payload, len(got), "slow client")
            got.append(len(frame.payload))

        slow.writer.transport.resume_reading()
        code, reason = await within(120, read_until_close(slow, on_data), "the slow client was never closed")
        check_equal(code, 1008, "the slow client's close code")
        print(f"  slow client: {len(got)} messages ({mib(sum(got))}) before close {code} {reason!r}", flush=True)
        counted = await stats(server)
        check_equal(counted["closes"], {1008: 1}, "the server's close events so far")
        check_equal(counted["open"], FAST + 1, "sockets still open")
        await close_all_cleanly(receivers)
        final = await stop_with_stats(server)
    check_equal((final["opened"], final["closed"]), (FAST + 2, FAST + 2), "opened and closed")
    check_equal(final["closes"], {1000: FAST + 1, 1008: 1}, "close events by code")


async def slow_consumer_loses_messages_with_overflow_drop(echo):
    total = max(MEBIBYTES // 4, 16) * MIB // MESSAGE
    async with Sample(echo, *echo_arguments("drop")) as server:
        slow, receivers, figures = await push_through(server, total)
        check_memory(echo, figures, "drop policy")
        counted = await stats(server)
        dropped = counted["dropped"]
        assert 0 < dropped < total, f"{dropped} of {total} messages dropped for the slow client"
        check_equal(counted["closes"], {}, "close events: the slow client is still open")
        # The slow client gets every message that was not dropped, whole and in order.
        slow.writer.transport.resume_reading()
        last = -1
        for n in range(total - dropped):
            opcode, data = await within(120, slow.read_message(), f"the slow client's message {n} never came")
            check_equal(opcode, OP_BINARY, "opcode")
            i = index_of(data)
            assert i is not None and last < i < total, f"slow client: message {i} after {last}"
            check_message(data, i, "slow client")
            last = i
        print(f"  slow client: {total - dropped} messages, {dropped} dropped", flush=True)
        check_equal(await close_cleanly(slow), 1000, "the server's answer to the slow client's close")
        await close_all_cleanly(receivers)
        final = await stop_with_stats(server)
    check_equal((final["opened"], final["closed"]), (FAST + 2, FAST + 2), "opened and closed")
    check_equal(final["closes"], {1000: FAST + 2}, "close events by code")
    check_equal(final["dropped"], dropped, "messages dropped")


async def vanishing_clients_never_kill_the_server(echo):
    big = MIB  # past the stream threshold: relayed as a stream to every client
    count = 24
    async with Sample(echo, "--broadcast", "--stats", "--max-queued-bytes", str(64 * MIB)) as server:
        # Readers that stop reading, so that the server is in the middle of writing
        # megabytes to each when they go.
        vanishing = [await RawClient.connect(server.url, rcvbuf=4 * KIB) for _ in range(4)]
        for client in vanishing:
            client.writer.transport.pause_reading()
        sender = await RawClient.connect(server.url)
        for i in range(count):
            data = payload(i)[:8] + os.urandom(big - 8)
            await sender.send_frame(OP_BINARY, data)
            check_equal(await sender.read_message(), (OP_BINARY, data), f"message {i} back to its sender")
        # Two reset, two close with unread data (which resets too).
        vanishing[0].reset()
        vanishing[1].reset()
        await vanishing[2].close()
        await vanishing[3].close()
        # And one vanishes in the middle of its own big frame.
        frame = encode_frame(OP_BINARY, os.urandom(big))
        half = await RawClient.connect(server.url)
        await half.send_bytes(frame[:len(frame) // 2])
        half.reset()

        async def all_gone():
            counted = await stats(server)
            return counted if counted["closed"] == 5 else None

        counted = await wait_until("the vanished clients were never closed", all_gone)
        check_equal(counted["closes"], {1006: 5}, "close events of the vanished clients")
        assert server.proc.returncode is None, f"the server died: exit code {server.proc.returncode}"
        async with ws_connect(server.url) as fresh:
            await roundtrip(fresh, "still serving")
        check_equal(await close_cleanly(sender), 1000, "the server's answer to the sender's close")
        final = await stop_with_stats(server)
    check_equal((final["opened"], final["closed"]), (7, 7), "opened and closed")
    print(f"  vanished: 5 clients ({count} MiB queued for 4 of them), server alive: {final}", flush=True)


if __name__ == "__main__":
    run_cases([slow_consumer_is_closed_with_1008, slow_consumer_loses_messages_with_overflow_drop,
               vanishing_clients_never_kill_the_server], executable_from_argv())
