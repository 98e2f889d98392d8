"""Two samples/chat servers sharing one room through a real redis-server (`chat
--redis`), driven by Python's websockets (Debian's python3-websockets, which only
/usr/bin/python3 sees): messages, notices and files cross once, every user list names
its server, each server re-sends its list, and a Redis outage leaves both chats serving
their own users until Redis is back.

    /usr/bin/python3 tests/samples/chat_redis.py PATH_TO_CHAT [CASE...]
"""

import asyncio
import collections
import json
import os
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    KIB, MIB, Sample, bytes_of_size, check_equal, close_all, executable_from_argv, run_cases, run_command,
    send_fragmented, send_whole, within, ws_connect)

# How often each chat re-sends its user list with --redis (samples/chat/main.cpp).
ROSTER_PERIOD = 5

# ---- a redis-server of the test's own ----


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """redis-server on a free port of 127.0.0.1, without persistence, for one `async
    with`; `kill()` it as a crash would and `start()` it again on the same port."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--loglevel", "warning", "--dir", "/tmp",
            stdout=asyncio.subprocess.DEVNULL)
        for _ in range(1000):
            if self.proc.returncode is not None:
                raise AssertionError(f"redis-server exited at its start ({self.proc.returncode})")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.01)
        raise AssertionError("redis-server did not start")

    async def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def kill(self):
        await self.stop(signal.SIGKILL)

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()


class Room:
    """A redis-server and two chats joined through it, for one `async with`; leaving
    stops the chats with SIGTERM (each must exit with 0), then Redis.

    Redis carries a broadcast to the other chat a little later than the chat's own
    users get it: a `join` that its joiner has seen may reach the other chat after a
    newcomer there connected, and come between that newcomer's envelopes. So `join`
    returns only once a watcher on each chat (a connection that never joins) has seen
    the notice: everything before it has crossed."""

    async def __aenter__(self):
        self.redis = Redis()
        await self.redis.__aenter__()
        self.chats = []
        try:
            for _ in range(2):
                chat = Sample(CHAT, "--redis", self.redis.url, capture_stderr=True)
                self.chats.append(await chat.__aenter__())
                # Linked (subscribed) before anyone talks: it says so on stderr.
                await chat.stderr_line(r"^chat: sharing the room through redis://")
            self.watchers = [await Person.enter(chat, f"the watcher on chat {n + 1}", max_queue=4096)
                             for n, chat in enumerate(self.chats)]
        except BaseException:
            await self.stop()
            raise
        return self

    async def join(self, chat, nick, others=(), watchers=None):
        """`nick` joined on `chat`, the notice seen by `others` and by the watchers."""
        person = await Person.join(chat, nick, others=others)
        for watcher in self.watchers if watchers is None else watchers:
            await watcher.skip_to("join", nick=nick)
        return person

    async def stop(self):
        await close_all(*getattr(self, "watchers", ()))
        codes = [await chat.stop() for chat in self.chats]
        await self.redis.stop()
        return codes

    async def __aexit__(self, exc_type, *exc):
        codes = await self.stop()
        if exc_type is None:
            check_equal(codes, [0] * len(self.chats), "exit codes of the chats on SIGTERM")


def server_name(chat):
    """What a chat calls itself in its envelopes: the address it listens on."""
    return f"{chat.host}:{chat.port}"

# ---- people ----


class Person:
    """A websockets connection to one chat. The chats' periodic `users` envelopes can
    come between any two others: they are taken aside into `rosters` (server -> its
    latest list) and `roster_count`, and the other messages are read in order."""

    def __init__(self, ws, name):
        self.ws = ws
        self.name = name
        self.rosters = {}
        self.roster_count = collections.Counter()
        self.pending = collections.deque()  # read while waiting for a roster

    @classmethod
    async def enter(cls, chat, name, **options):
        """Connected, and told who is on its own chat: a `users` envelope, the first that
        names its chat. What the other chat broadcast may come before it (its periodic
        list; a notice that Redis was still carrying when this connection opened, which
        is left out here)."""
        person = cls(await ws_connect(chat.url, **options), name)
        while True:
            data = json.loads(await within(20, person.ws.recv(), f"{name}: no users envelope on connect"))
            if data.get("type") != "users":
                continue
            person.take_roster(data)
            if data.get("server") == server_name(chat):
                return person

    @classmethod
    async def join(cls, chat, nick, others=()):
        """Joined as `nick`, with the notices about it read by it and by `others` (who
        may be on either chat)."""
        person = await cls.enter(chat, nick)
        await person.ws.send(f"/nick {nick}")
        await person.envelope("welcome", nick=nick, server=server_name(chat))
        for someone in (person, *others):
            await someone.envelope("join", nick=nick)
        return person

    def take_roster(self, data):
        self.rosters[data.get("server")] = data.get("users")
        self.roster_count[data.get("server")] += 1

    async def read(self):
        """The next message that is not a `users` envelope (a dict, or bytes)."""
        if self.pending:
            return self.pending.popleft()
        while True:
            message = await self.ws.recv()
            if isinstance(message, bytes):
                return message
            data = json.loads(message)
            if data.get("type") != "users":
                return data
            self.take_roster(data)

    async def envelope(self, kind, **fields):
        data = await within(20, self.read(), f"{self.name}: no {kind} envelope came")
        assert isinstance(data, dict), f"{self.name}: {len(data)} bytes where a {kind} envelope was expected"
        check_equal(data.get("type"), kind, f"{self.name}: type of envelope {str(data)[:300]}")
        for name, value in fields.items():
            check_equal(data.get(name), value, f"{self.name}: {kind}.{name}")
        return data

    async def skip_to(self, kind, **fields):
        """Reads up to the next envelope of type `kind` with `fields`, whatever comes first."""
        async def wait():
            while True:
                data = await self.read()
                if isinstance(data, dict) and data.get("type") == kind and \
                        all(data.get(name) == value for name, value in fields.items()):
                    return data
        return await within(20, wait(), f"{self.name}: no {kind} envelope with {fields} came")

    async def message(self, sender, text):
        return await self.envelope("message", **{"from": sender, "text": text})

    async def bytes(self, what):
        data = await within(60, self.read(), f"{self.name}: no {what}")
        assert isinstance(data, bytes), f"{self.name}: an envelope {str(data)[:300]} where {what} was expected"
        return data

    async def rosters_until(self, done, seconds, what):
        """Reads, keeping the other messages for later, until `done()`."""
        async def wait():
            while not done():
                message = await self.ws.recv()
                data = json.loads(message) if isinstance(message, str) else message
                if isinstance(data, dict) and data.get("type") == "users":
                    self.take_roster(data)
                else:
                    self.pending.append(data)
        await within(seconds, wait(), f"{self.name}: {what} (lists: {self.rosters})")

    async def until_roster(self, server, users, seconds=3 * ROSTER_PERIOD):
        """Until `server`'s latest list is `users`."""
        await self.rosters_until(lambda: self.rosters.get(server) == users, seconds,
                                 f"the list of {server} never became {users}")

    async def close(self):
        await self.ws.close()


async def sentinel(sender, *everyone):
    """A chat message that everyone gets next: anything anyone got in between (a second
    copy of what came before, say) would be read here instead, and fail."""
    await sender.ws.send("sentinel")
    for person in everyone:
        await person.message(sender.name, "sentinel")


# ---- cases ----


async def help_names_redis(chat):
    code, out, _ = await run_command(chat, "--help")
    check_equal(code, 0, "exit code of --help")
    assert "--redis URL" in out, f"--help does not name --redis: {out!r}"
    for args in (["--redis"], ["--redis", "http://127.0.0.1:1"]):
        code, out, err = await run_command(chat, "--url", "ws://127.0.0.1:0/", *args)
        check_equal(code, 2, f"exit code of {args}")
        assert err.startswith("chat: ") and not out, f"{args}: {out!r} {err!r}"


async def alone_nothing_changes_on_the_wire(chat):
    # Without --redis: no server name, and no periodic list.
    async with Sample(chat) as server:
        ada = Person(await ws_connect(server.url), "ada")
        check_equal(json.loads(await ada.ws.recv()), {"type": "users", "users": []}, "the first envelope")
        await ada.ws.send("/nick ada")
        welcome = await ada.envelope("welcome", nick="ada")
        assert "server" not in welcome, f"a welcome names a server without --redis: {welcome}"
        await ada.envelope("join", nick="ada")
        await asyncio.sleep(ROSTER_PERIOD + 1.5)
        await sentinel(ada, ada)
        check_equal(ada.rosters, {None: ["ada"]}, "the lists ada got (only the one of her join)")
        check_equal(ada.roster_count[None], 1, "users envelopes ada got")
        await ada.close()


async def messages_and_notices_cross_once(chat):
    async with Room() as room:
        one, two = room.chats
        ada = await room.join(one, "ada")
        bob = await room.join(two, "bob", others=[ada])          # ada hears of bob's join
        carol = await room.join(one, "carol", others=[ada, bob])  # and bob of carol's
        # Each chat's own list, and the other's within a period or two.
        for person in (ada, bob, carol):
            await person.until_roster(server_name(one), ["ada", "carol"])
            await person.until_roster(server_name(two), ["bob"])

        # Exactly once on both sides, the sender's own copy included.
        for sender, text in ((ada, "hello from one \u20ac \"quoted\""), (bob, "hello from two")):
            await sender.ws.send(text)
            for person in (ada, bob, carol):
                await person.message(sender.name, text)
            await sentinel(sender, ada, bob, carol)

        # A newcomer on chat two learns who is on chat one without anyone joining.
        lurker = await Person.enter(two, "lurker")
        check_equal(lurker.rosters.get(server_name(two)), ["bob"], "the newcomer's list of its chat")
        await lurker.until_roster(server_name(one), ["ada", "carol"], seconds=2 * ROSTER_PERIOD + 2)

        await bob.ws.send("/nick bobby")
        for person in (ada, bob, carol, lurker):
            await person.envelope("nick", old="bob", nick="bobby")
        await ada.until_roster(server_name(two), ["bobby"], seconds=1)  # sent with the notice

        await bob.close()
        for person in (ada, carol, lurker):
            await person.envelope("leave", nick="bobby")
        await ada.until_roster(server_name(two), [], seconds=1)
        await sentinel(carol, ada, carol, lurker)
        await close_all(ada, carol, lurker)


async def share_across(chat, data, send):
    """ada on chat one shares `data` (sent by `send(ws, data)`): bob on chat two and
    carol on chat one get its envelope and then its bytes, once; ada only the envelope."""
    async with Room() as room:
        one, two = room.chats
        ada = await room.join(one, "ada")
        bob = await room.join(two, "bob", others=[ada])
        carol = await room.join(one, "carol", others=[ada, bob])
        name = "caf\u00e9.bin"
        await ada.ws.send("/file " + json.dumps({"name": name, "type": "application/x-test", "size": len(data)}))
        await send(ada.ws, data)
        expected = {"from": "ada", "name": name, "mime": "application/x-test", "size": len(data)}
        for person in (ada, bob, carol):
            await person.envelope("file", **expected)
        for person in (bob, carol):
            check_equal(await person.bytes("file bytes after the file envelope"), data, f"the file {person.name} got")
        await sentinel(ada, ada, bob, carol)  # no second copy, and ada not her own bytes
        await close_all(ada, bob, carol)


async def small_file_crosses(chat):
    await share_across(chat, bytes_of_size(1000), send_whole)  # one broadcast


async def fragmented_file_crosses(chat):
    await share_across(chat, bytes_of_size(300 * KIB + 7),
                       lambda ws, data: send_fragmented(ws, data, 64 * KIB))  # a pipe, streamed


async def big_file_crosses(chat):
    await share_across(chat, bytes_of_size(MIB), send_whole)  # one frame over 64 KiB, streamed


async def redis_outage_and_return(chat):
    async with Room() as room:
        one, two = room.chats
        ada = await room.join(one, "ada")
        bob = await room.join(two, "bob", others=[ada])
        carol = await room.join(one, "carol", others=[ada, bob])
        dave = await room.join(two, "dave", others=[ada, bob, carol])

        marks = [len(chat.stderr_lines) for chat in room.chats]
        await room.redis.kill()
        for chat, mark in zip(room.chats, marks):
            await chat.stderr_line(r"^chat: Redis server unavailable", after=mark)

        # Each chat serves its own users; nothing crosses.
        await ada.ws.send("one alone")
        for person in (ada, carol):
            await person.message("ada", "one alone")
        await bob.ws.send("two alone")
        for person in (bob, dave):
            await person.message("bob", "two alone")
        await sentinel(carol, ada, carol)  # ada did not get "two alone"
        await sentinel(dave, bob, dave)    # nor bob "one alone"
        # Each chat's list still comes, twice in a row without the other's.
        ada.rosters.clear()
        seen = ada.roster_count[server_name(one)]
        await ada.rosters_until(lambda: ada.roster_count[server_name(one)] >= seen + 2, 3 * ROSTER_PERIOD,
                                "chat one's periodic list stopped while Redis was away")
        assert server_name(two) not in ada.rosters, f"chat two's list crossed without Redis: {ada.rosters}"
        # A newcomer is served too.
        erin = await room.join(one, "erin", others=[ada, carol], watchers=room.watchers[:1])

        marks = [len(chat.stderr_lines) for chat in room.chats]
        await room.redis.start()
        for chat, mark in zip(room.chats, marks):
            await chat.stderr_line(r"^chat: sharing the room through redis://", seconds=30, after=mark)
        await ada.ws.send("together again")
        for person in (ada, bob, carol, dave, erin):
            await person.message("ada", "together again")
        await sentinel(bob, ada, bob, carol, dave, erin)
        for person in (ada, bob):
            await person.until_roster(server_name(one), ["ada", "carol", "erin"])
            await person.until_roster(server_name(two), ["bob", "dave"])
        await close_all(ada, bob, carol, dave, erin)


CASES = [
    help_names_redis,
    alone_nothing_changes_on_the_wire,
    messages_and_notices_cross_once,
    small_file_crosses,
    fragmented_file_crosses,
    big_file_crosses,
    redis_outage_and_return,
]

if __name__ == "__main__":
    CHAT = executable_from_argv()
    run_cases(CASES, CHAT)
