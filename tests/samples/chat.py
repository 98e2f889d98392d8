"""samples/chat driven from outside: its page over plain HTTP, and its wire protocol
(samples/chat/README.md) spoken by Python's websockets (Debian's python3-websockets,
which only /usr/bin/python3 sees).

    /usr/bin/python3 tests/samples/chat.py PATH_TO_CHAT [CASE...]
"""

import asyncio
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from harness import (  # noqa: E402
    MIB, OP_BINARY, OP_TEXT, RawClient, Sample, bytes_of_size, check_equal, close_all,
    encode_frame, executable_from_argv, http_get, refusal_status, run_cases, run_command, send_fragmented,
    send_whole, within, ws_connect)

ISO8601 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

# What people type, JSON-special characters included: each must come back unchanged.
TEXTS = [
    "hello",
    'quotes " and \\ backslashes \\" and /slashes/',
    "controls \x00 \x01 \x1f \x7f \n\r\t",
    "unicode \u00e9\u20ac\u4e2d\u6587 \U0001F600 and \u2028\u2029 separators",
    "</script><script>alert(1)</script> & <b>html</b>",
    '{"type":"join","nick":"forged"}',
    "/nickname is not a command, nor is / alone",
    " spaces kept  ",
    "long \u20ac " * 5000,  # 45 KB: under the room's 64 KiB limit for one message
]

# ---- the chat protocol, from a client ----


async def receive_text(peer):
    """The next message of a websockets connection or a raw client, which must be text."""
    if isinstance(peer, RawClient):
        opcode, payload = await peer.read_message()
        check_equal(opcode, OP_TEXT, "opcode of an envelope")
        return payload.decode()
    message = await peer.recv()
    assert isinstance(message, str), "a binary message where an envelope was expected"
    return message


async def envelope(peer, kind, **fields):
    """The next message of `peer`, which must be a JSON envelope of type `kind` with
    `fields`; returns it whole."""
    raw = await within(20, receive_text(peer), f"no {kind} envelope came")
    data = json.loads(raw)
    check_equal(data.get("type"), kind, f"type of envelope {raw[:300]}")
    for name, value in fields.items():
        check_equal(data.get(name), value, f"{kind}.{name}")
    return data


async def enter(server, raw=False, **options):
    """A new connection (websockets', or a raw client), which is first told who is
    online: (connection, that list)."""
    peer = await (RawClient.connect(server.url) if raw else ws_connect(server.url, **options))
    users = await envelope(peer, "users")
    return peer, users["users"]


async def join(server, nick, others=(), raw=False):
    """A connection that joined as `nick`, with everything the protocol sends about it
    read: by it, and by the connections in `others` that were there already."""
    peer, _ = await enter(server, raw)
    await peer.send(f"/nick {nick}")
    welcome = await envelope(peer, "welcome", nick=nick)
    for someone in (peer, *others):
        await envelope(someone, "join", nick=nick)
        await envelope(someone, "users", users=welcome["users"])
    return peer


async def sentinel(sender, *everyone):
    """A chat message that everyone gets next: whatever anyone got in between would be
    read here instead, and fail."""
    await sender.send("sentinel")
    for ws in everyone:
        await envelope(ws, "message", text="sentinel")

# ---- arguments, the page, paths ----


async def help_and_bad_arguments(chat):
    code, out, _ = await run_command(chat, "--help")
    check_equal(code, 0, "exit code of --help")
    assert "--url" in out and "--help" in out, f"--help does not name its flags: {out!r}"
    for args in (["--nope"], ["--url"], ["--url", "http://127.0.0.1:0/"]):
        code, out, err = await run_command(chat, *args)
        assert code != 0, f"{args}: exit code 0"
        assert err.strip() and not out, f"{args}: says nothing on stderr, or started"


async def prints_both_addresses(chat):
    async with Sample(chat) as server:
        pattern = (r"chat: open http://127\.0\.0\.1:(\d+)/ in a browser "
                   r"\(WebSocket at ws://127\.0\.0\.1:(\d+)/\)")
        match = re.fullmatch(pattern, server.line)
        assert match, f"unexpected first line {server.line!r}"
        assert match[1] == match[2] != "0", f"ports differ or are 0 in {server.line!r}"


async def serves_a_self_contained_page(chat):
    async with Sample(chat) as server:
        status, headers, body = await http_get(server.host, server.port, "/")
        check_equal(status, 200, "status of GET /")
        assert headers.get("content-type", "").startswith("text/html"), f"content type {headers}"
        check_equal(int(headers.get("content-length", -1)), len(body), "Content-Length")
        page = body.decode()
        for part in ("<html", "<style", "<script"):
            assert part in page.lower(), f"the page has no inline {part}>"
        # Self-contained: nothing fetched from anywhere else, with or without a scheme.
        external = re.findall(r"https?://|(?:src|href)\s*=\s*[\"']?//|url\(\s*[\"']?//", page)
        check_equal(external, [], "external references in the page")


async def other_paths_are_404(chat):
    async with Sample(chat) as server:
        for path in ("/nope", "/nope?x=1", "/index.html"):
            status, _, _ = await http_get(server.host, server.port, path)
            check_equal(status, 404, f"status of GET {path}")
        check_equal(await refusal_status(server.at("/nope")), 404, "status of an upgrade at /nope")

# ---- people ----


async def newcomer_is_told_who_is_online(chat):
    async with Sample(chat) as server:
        lurker, users = await enter(server)
        check_equal(users, [], "users of an empty room")
        ada = await join(server, "ada", others=[lurker])
        newcomer, users = await enter(server)
        check_equal(users, ["ada"], "users told to a newcomer")
        await close_all(lurker, ada, newcomer)


async def nick_join_and_leave(chat):
    async with Sample(chat) as server:
        ada, _ = await enter(server)
        await ada.send("/nick ada")
        welcome = await envelope(ada, "welcome", nick="ada", users=["ada"])
        max_file = welcome.get("maxFileSize")
        assert isinstance(max_file, int) and max_file >= MIB, f"maxFileSize {max_file!r}"
        await envelope(ada, "join", nick="ada")
        await envelope(ada, "users", users=["ada"])

        bob, _ = await enter(server)
        await bob.send("/nick bob")
        await envelope(bob, "welcome", nick="bob", users=["ada", "bob"])
        for ws in (ada, bob):
            await envelope(ws, "join", nick="bob")
            await envelope(ws, "users", users=["ada", "bob"])

        await bob.close()
        await envelope(ada, "leave", nick="bob")
        await envelope(ada, "users", users=["ada"])
        await ada.close()


async def nick_change_is_announced(chat):
    async with Sample(chat) as server:
        ada = await join(server, "ada")
        bob = await join(server, "bob", others=[ada])
        await ada.send("/nick grace")
        for ws in (ada, bob):
            await envelope(ws, "nick", old="ada", nick="grace")
            await envelope(ws, "users", users=["grace", "bob"])
        await ada.send("from grace")
        for ws in (ada, bob):
            await envelope(ws, "message", **{"from": "grace", "text": "from grace"})
        await close_all(ada, bob)


async def invalid_nicks_are_refused(chat):
    async with Sample(chat) as server:
        ada = await join(server, "ada")
        bob = await join(server, "bob", others=[ada])
        for wanted in ("a b", "", "x" * 25, "bell\x07", "ADA"):
            await bob.send(f"/nick {wanted}")
            refusal = await envelope(bob, "error", command="nick")
            assert refusal.get("text"), f"/nick {wanted!r}: refused without saying why"
        await sentinel(bob, ada, bob)  # ada heard nothing of it; bob is still bob
        await bob.send("still bob")
        await envelope(ada, "message", **{"from": "bob", "text": "still bob"})
        await close_all(ada, bob)


async def first_message_joins_as_guest(chat):
    async with Sample(chat) as server:
        quiet, _ = await enter(server)
        await quiet.send("hi without a nick")
        welcome = await envelope(quiet, "welcome")
        guest = welcome["nick"]
        assert guest.startswith("guest-"), f"guest nickname {guest!r}"
        await envelope(quiet, "join", nick=guest)
        await envelope(quiet, "users", users=[guest])
        await envelope(quiet, "message", **{"from": guest, "text": "hi without a nick"})
        await quiet.close()

# ---- messages ----


async def messages_reach_everyone_with_the_original_text(chat):
    async with Sample(chat) as server:
        ada = await join(server, "ada")
        bob = await join(server, "bob", others=[ada])
        for text in TEXTS:
            await ada.send(text)
            for ws in (ada, bob):  # the sender too
                message = await envelope(ws, "message", **{"from": "ada", "text": text})
                assert ISO8601.fullmatch(message.get("time", "")), f"time {message.get('time')!r}"
        await close_all(ada, bob)


async def cross_origin_is_closed_with_1008(chat):
    async with Sample(chat) as server:
        same, _ = await enter(server, origin=f"http://{server.host}:{server.port}")
        await same.close()
        async with ws_connect(server.url, origin="http://evil.example") as foreign:
            try:
                await within(20, foreign.recv(), "a cross-origin connection stayed open")
                raise AssertionError("a cross-origin connection got a message")
            except websockets.ConnectionClosed as closed:
                check_equal(closed.rcvd and closed.rcvd.code, 1008, "close code of a cross-origin connection")

# ---- files ----


async def share_file(chat, data, send):
    """ada shares `data` (sent by `send(ada, data)`); bob and carol get it byte for
    byte right after its envelope, ada only the envelope."""
    name = 'caf\u00e9 "1".bin'
    async with Sample(chat) as server:
        ada = await join(server, "ada")
        bob = await join(server, "bob", others=[ada])
        carol = await join(server, "carol", others=[ada, bob])
        announcement = {"name": name, "type": "application/x-test", "size": len(data)}
        await ada.send("/file " + json.dumps(announcement))
        await send(ada, data)
        expected = {"from": "ada", "name": name, "mime": "application/x-test", "size": len(data)}
        for ws in (ada, bob, carol):
            await envelope(ws, "file", **expected)
        for ws in (bob, carol):
            bytes_received = await within(60, ws.recv(), "no file bytes after the file envelope")
            check_equal(bytes_received, data, "the shared file")
        await sentinel(ada, ada, bob, carol)  # ada's next is not her own bytes
        await close_all(ada, bob, carol)


async def small_file_is_shared_with_the_others(chat):
    await share_file(chat, bytes_of_size(1000), send_whole)  # one frame under 64 KiB


async def big_file_is_shared_with_the_others(chat):
    await share_file(chat, bytes_of_size(MIB), send_whole)  # one frame, streamed


async def fragmented_file_is_shared_with_the_others(chat):
    await share_file(chat, bytes_of_size(MIB + 12345), send_fragmented)


async def big_file_is_relayed_while_it_arrives(chat):
    # Raw clients: ada writes one 1 MiB frame in two halves, and bob must have the first
    # of its bytes before she writes the second.
    data = bytes_of_size(MIB)
    frame = encode_frame(OP_BINARY, data)
    half = len(frame) // 2
    async with Sample(chat) as server:
        ada = await join(server, "ada", raw=True)
        bob = await join(server, "bob", others=[ada], raw=True)
        await ada.send("/file " + json.dumps({"name": "big.bin", "type": "application/x-test", "size": MIB}))
        for peer in (ada, bob):
            await envelope(peer, "file", **{"from": "ada", "size": MIB})
        ada.writer.write(frame[:half])
        _, head = await within(20, asyncio.gather(ada.writer.drain(), bob.read_stream_start(OP_BINARY, 1)),
                               "nothing of the file was relayed before its end was sent")
        await ada.send_bytes(frame[half:])
        check_equal(head + await bob.read_stream_rest(), data, "the file bob got")
        await sentinel(ada, ada, bob)
        await close_all(ada, bob)


async def unannounced_bytes_are_refused(chat):
    async with Sample(chat) as server:
        ada = await join(server, "ada")
        bob = await join(server, "bob", others=[ada])
        await ada.send(b"\x00 not announced")
        await envelope(ada, "error", command="file")
        await sentinel(ada, ada, bob)  # bob never got the bytes
        await close_all(ada, bob)


async def file_before_a_nick_is_refused(chat):
    async with Sample(chat) as server:
        anonymous, _ = await enter(server)
        await anonymous.send('/file {"name":"a.txt","type":"text/plain","size":1}')
        await envelope(anonymous, "error", command="file")
        await anonymous.close()


CASES = [
    help_and_bad_arguments,
    prints_both_addresses,
    serves_a_self_contained_page,
    other_paths_are_404,
    newcomer_is_told_who_is_online,
    nick_join_and_leave,
    nick_change_is_announced,
    invalid_nicks_are_refused,
    first_message_joins_as_guest,
    messages_reach_everyone_with_the_original_text,
    cross_origin_is_closed_with_1008,
    small_file_is_shared_with_the_others,
    big_file_is_shared_with_the_others,
    fragmented_file_is_shared_with_the_others,
    big_file_is_relayed_while_it_arrives,
    unannounced_bytes_are_refused,
    file_before_a_nick_is_refused,
]

if __name__ == "__main__":
    run_cases(CASES, executable_from_argv())
