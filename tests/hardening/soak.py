"""A soak of `samples/echo --broadcast`: for a while, all at once, crowds of connections
opening and closing cleanly, clients that drop in the middle of their handshake or of a
frame, clients that send garbage after their handshake, and clients broadcasting while
others check they receive every message in order. Afterwards the server holds as many
descriptors as before, about as much memory, still serves, and its own counters
(--stats) say that every socket that opened closed exactly once, with the code each kind
of client deserved.

    /usr/bin/python3 tests/hardening/soak.py PATH_TO_ECHO [--seconds N] [--crowd N]

--seconds is how long the abuse lasts (60 by default), --crowd how many connections a
crowd holds at once (1000). It prints the figures it measured.
"""

import asyncio
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    MIB, close_cleanly, descriptors, memory, mib, raise_descriptor_limit, sanitized, stats,
    stop_with_stats, take_option, wait_until)
from harness import (  # noqa: E402
    OP_BINARY, OP_CLOSE, OP_TEXT, RawClient, Sample, check_equal, encode_frame,
    executable_from_argv, parse_close, roundtrip, run_cases, upgrade_request, within, ws_connect)

SECONDS = take_option("--seconds", 60, float)
CROWD = take_option("--crowd", 1000)
MAX_CONNECTIONS = 5000
BATCH = 100            # connections a crowd opens or closes at once
BROADCASTERS = 3
LISTENERS = 2
RSS_BOUND = 4 * MIB    # how far above its baseline the server's RSS may stay afterwards
GUARD = 120            # seconds after which a wait is a hang


class Tally:
    """What the clients did, to compare with what the server counted."""

    def __init__(self):
        self.handshakes = 0       # completed: each must be one open and one close
        self.clean = 0            # closed with 1000 both ways
        self.garbage = 0          # sent garbage: the server must fail them with 1002
        self.garbage_tcp_only = 0  # of those, closed by TCP without a close frame
        self.mid_frame = 0        # dropped in the middle of a frame: 1006 on the server
        self.mid_handshake = 0    # dropped in the middle of the request: never opened
        self.broadcasts = 0       # messages the broadcasters sent
        self.peak_open = 0


async def connect(url, tally):
    client = await RawClient.connect(url)
    tally.handshakes += 1
    return client


async def close(client, tally):
    check_equal(await close_cleanly(client), 1000, "the server's answer to a clean close")
    tally.clean += 1


def running(deadline):
    return time.monotonic() < deadline


async def in_batches(make, count):
    done = []
    for start in range(0, count, BATCH):
        done += await asyncio.gather(*(make(i) for i in range(start, min(start + BATCH, count))))
    return done


async def crowd(url, tally, deadline=None, rounds=None):
    """Opens CROWD connections that read nothing for a second, then closes them all
    cleanly; again until the deadline (or for `rounds`)."""
    n = 0
    while (rounds is not None and n < rounds) or (rounds is None and running(deadline)):
        n += 1

        async def quiet(_):
            client = await connect(url, tally)
            client.writer.transport.pause_reading()  # the kernel holds the broadcasts
            return client

        clients = await in_batches(quiet, CROWD)
        tally.peak_open = max(tally.peak_open, len(clients))
        await asyncio.sleep(1)

        async def leave(i):
            clients[i].writer.transport.resume_reading()
            await close(clients[i], tally)

        await in_batches(leave, len(clients))
    return n


async def churn(url, tally, deadline):
    while running(deadline):
        await close(await connect(url, tally), tally)


async def drop_mid_handshake(url, tally, deadline):
    parts = url.split("/")[2].split(":")
    request = upgrade_request(parts[0], int(parts[1]), "/", "dGhlIHNhbXBsZSBub25jZQ==")
    while running(deadline):
        client = await RawClient.open_tcp(url)
        await client.send_bytes(request[:random.randrange(1, len(request) - 4)])
        client.reset()
        tally.mid_handshake += 1
        await asyncio.sleep(0.005)


async def drop_mid_frame(url, tally, deadline):
    n = 0
    while running(deadline):
        client = await connect(url, tally)
        frame = encode_frame(random.choice((OP_TEXT, OP_BINARY)), b"x" * random.randrange(2, 4000))
        await client.send_bytes(frame[:random.randrange(1, len(frame))])
        if n % 2:
            client.reset()
        else:
            await client.close()  # FIN
        n += 1
        tally.mid_frame += 1
        await asyncio.sleep(0.005)


async def send_garbage(url, tally, deadline):
    while running(deadline):
        client = await connect(url, tally)
        # A first byte with the reserved bits set, which nothing negotiated: the server
        # must fail the connection at once, whatever follows.
        await client.send_bytes(bytes([0xF0 | random.choice((0, 1, 2, 8, 9))]) + os.urandom(random.randrange(1, 200)))

        async def until_closed():
            while True:
                frame = await client.read_frame()
                if frame.opcode == OP_CLOSE:
                    return parse_close(frame.payload)[0]

        try:
            code = await within(GUARD, until_closed(), "the server never closed a client that sent garbage")
            check_equal(code, 1002, "close code after garbage")
        except (asyncio.IncompleteReadError, ConnectionError):
            tally.garbage_tcp_only += 1  # a TCP close without a close frame also does
        await within(GUARD, client.wait_for_tcp_close(), "TCP still open after garbage")
        await client.close()
        tally.garbage += 1
        await asyncio.sleep(0.005)


async def check_broadcasts(client, who):
    """Reads until every broadcaster's last message: each broadcaster's messages must
    all come, in order. Returns how many it got."""
    expected = [0] * BROADCASTERS
    ended = set()
    got = 0
    while len(ended) < BROADCASTERS:
        opcode, data = await client.read_message()
        if opcode != OP_TEXT or not data.startswith(b"b"):
            continue
        sender, _, seq = data[1:].decode().partition(":")
        sender = int(sender)
        if seq.startswith("end:"):
            check_equal(int(seq[4:]), expected[sender], f"{who}: messages from broadcaster {sender}")
            ended.add(sender)
        else:
            check_equal(int(seq), expected[sender], f"{who}: next message from broadcaster {sender}")
            expected[sender] += 1
            got += 1
    return got


async def broadcast(client, k, tally, deadline):
    seq = 0
    while running(deadline):
        await client.send(f"b{k}:{seq}")
        seq += 1
        tally.broadcasts += 1
        await asyncio.sleep(0.05)
    await client.send(f"b{k}:end:{seq}")


async def soak(echo):
    raise_descriptor_limit(2 * CROWD + 200)
    tally = Tally()
    args = ["--broadcast", "--stats", "--max-connections", str(MAX_CONNECTIONS)]
    async with Sample(echo, *args) as server:
        pid = server.proc.pid
        url = server.url
        # Warm up (one crowd in and out), so that the baseline includes what the
        # allocator keeps once it has served as many connections.
        await crowd(url, tally, rounds=1)

        async def idle():
            counted = await stats(server)
            return counted if counted["open"] == 0 else None

        await wait_until("the warm-up's connections never closed", idle, GUARD)
        fds_before = descriptors(pid)
        rss_before = memory(pid)[0]

        started = time.monotonic()
        deadline = started + SECONDS
        talkers = [await connect(url, tally) for _ in range(BROADCASTERS + LISTENERS)]
        checks = [asyncio.create_task(check_broadcasts(c, f"client {n}")) for n, c in enumerate(talkers)]
        workers = [crowd(url, tally, deadline)]
        workers += [churn(url, tally, deadline) for _ in range(4)]
        workers += [drop_mid_handshake(url, tally, deadline) for _ in range(2)]
        workers += [drop_mid_frame(url, tally, deadline) for _ in range(2)]
        workers += [send_garbage(url, tally, deadline) for _ in range(2)]
        workers += [broadcast(talkers[k], k, tally, deadline) for k in range(BROADCASTERS)]
        tasks = [asyncio.create_task(w) for w in workers]
        try:
            results = await asyncio.gather(*tasks)
            received = await within(GUARD, asyncio.gather(*checks), "a broadcast never arrived")
        finally:
            for task in tasks + checks:
                task.cancel()
        elapsed = time.monotonic() - started
        for client in talkers:
            await close(client, tally)

        await wait_until("the server still holds sockets", idle, GUARD)
        fds = await wait_until(f"the server's descriptors never came back to {fds_before}",
                               lambda: asyncio.sleep(0, descriptors(pid) <= fds_before and descriptors(pid)), GUARD)
        rss_after, hwm = memory(pid)
        assert server.proc.returncode is None, "the server died"
        async with ws_connect(url) as fresh:
            await roundtrip(fresh, "still serving after the soak")
        tally.handshakes += 1
        tally.clean += 1
        final = await stop_with_stats(server)

    print(f"  {elapsed:.0f} s: {final['opened']} connections opened and closed ({results[0]} crowds of {CROWD}, "
          f"{tally.clean} closed cleanly), {tally.mid_handshake} dropped mid-handshake, {tally.mid_frame} "
          f"mid-frame, {tally.garbage} sent garbage ({tally.garbage_tcp_only} closed by TCP only), "
          f"{tally.broadcasts} broadcasts each received by {len(received)} clients", flush=True)
    print(f"  server: {fds_before} descriptors before, {fds} after; RSS {mib(rss_before)} before, "
          f"{mib(rss_after)} after (bound +{mib(RSS_BOUND)}), peak {mib(hwm)}; errors reported {final['errors']}",
          flush=True)
    check_equal(received, [tally.broadcasts] * len(received), "broadcasts received by each talker")
    check_equal((final["opened"], final["closed"]), (tally.handshakes, tally.handshakes),
                "sockets opened and closed, by the server's count")
    expected = {1000: tally.clean, 1002: tally.garbage, 1006: tally.mid_frame}
    check_equal(final["closes"], {code: n for code, n in expected.items() if n}, "close events by code")
    if sanitized(echo):
        print("  (sanitized build: its memory figures are not checked)", flush=True)
    elif rss_after > rss_before + RSS_BOUND:
        raise AssertionError(f"the server's RSS stayed at {mib(rss_after)}, past {mib(rss_before)} "
                             f"+ {mib(RSS_BOUND)}")


if __name__ == "__main__":
    run_cases([soak], executable_from_argv())
