// permessage-deflate over loopback: negotiation in the handshake, compressed messages
// both ways (whole, fragmented, streamed), shared compression for broadcasts and for
// the server's streams (co_write, pipe relays, abandoned streams), and the close codes
// for bad compressed input.
#include "loopback.hpp"

#include <websockets/deflate.hpp>
#include <websockets/error.hpp>

#include <zlib.h>

#include <random>

using namespace loopback;
using websockets::close_code;
using websockets::opcode;

namespace {

// Raw peers never answer a close: the server's stop() gives up on them quickly.
websockets::server_options compressing(websockets::server_options o = {.close_timeout = 300ms}) {
  o.deflate.enabled = true;
  return o;
}

websockets::connect_options compressing_client() {
  websockets::connect_options o;
  o.deflate.enabled = true;
  return o;
}

std::string repetitive(std::size_t size) {
  std::string out;
  while (out.size() < size) out += "the quick brown fox jumps over the lazy dog; ";
  out.resize(size);
  return out;
}

const std::string deflate_header = "Sec-WebSocket-Extensions: permessage-deflate\r\n";

// "Hello" compressed, as RFC 7692 section 7.2.3.1 gives it.
const std::string hello_deflated{"\xf2\x48\xcd\xc9\xc9\x07\x00", 7};

// An independent decoder for the wire checks: zlib's raw inflate used directly, as RFC
// 7692 section 7.2.2 describes it, with a window of 2^bits (data compressed with a
// larger window fails to decode).
class zlib_inflater {
public:
  explicit zlib_inflater(int bits = 15) { REQUIRE(inflateInit2(&z_, -bits) == Z_OK); }
  zlib_inflater(const zlib_inflater&) = delete;
  zlib_inflater& operator=(const zlib_inflater&) = delete;
  ~zlib_inflater() { inflateEnd(&z_); }

  /// What `in` inflates to; `ok()` turns false on bad data.
  std::string feed(std::string_view in) {
    std::string out;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    for (;;) {
      std::array<char, 4096> buffer{};
      z_.next_out = reinterpret_cast<Bytef*>(buffer.data());
      z_.avail_out = static_cast<uInt>(buffer.size());
      const int rc = inflate(&z_, Z_SYNC_FLUSH);
      out.append(buffer.data(), buffer.size() - z_.avail_out);
      if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) ok_ = false;
      if (!ok_ || rc == Z_STREAM_END || (z_.avail_in == 0 && z_.avail_out != 0)) return out;
    }
  }
  /// The end of a message: the 00 00 FF FF its sender dropped.
  std::string finish() { return feed(std::string_view{"\x00\x00\xff\xff", 4}); }
  [[nodiscard]] bool ok() const noexcept { return ok_; }

private:
  z_stream z_{};
  bool ok_ = true;
};

// The frames of one message as a raw peer reads them, up to the one with FIN.
asio::awaitable<std::vector<raw_peer::frame>> read_frames(raw_peer& peer) {
  std::vector<raw_peer::frame> frames;
  for (;;) {
    auto frame = co_await peer.read_frame();
    REQUIRE(frame);
    REQUIRE(frame->opcode != opcode::close);
    frames.push_back(std::move(*frame));
    if (frames.back().fin) co_return frames;
  }
}

// Checks a message's frames as RFC 6455 and 7692 want them (the opcode on the first
// frame only; RSV1, when `compressed`, on the first frame only; every compressed frame
// but the last flushed, ending with 00 00 FF FF) and returns what each frame carries,
// inflated with a window of 2^bits frame by frame: a compressed fragment must decode
// as soon as it arrives.
std::vector<std::string> pieces_of(const std::vector<raw_peer::frame>& frames, opcode op, bool compressed,
                                   int bits = 15) {
  std::vector<std::string> pieces;
  zlib_inflater in{bits};
  for (std::size_t i = 0; i < frames.size(); ++i) {
    CAPTURE(i);
    const auto& f = frames[i];
    CHECK(f.opcode == (i == 0 ? op : opcode::continuation));
    CHECK(f.rsv1 == (compressed && i == 0));
    CHECK(f.fin == (i + 1 == frames.size()));
    if (!compressed) {
      pieces.push_back(f.payload);
      continue;
    }
    if (!f.fin) CHECK(f.payload.ends_with(std::string_view{"\x00\x00\xff\xff", 4}));
    std::string piece = in.feed(f.payload);
    if (f.fin) piece += in.finish();
    CHECK(in.ok());
    pieces.push_back(std::move(piece));
  }
  return pieces;
}

std::string joined(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p;
  return out;
}

// The peers the streams of these tests go to: raw peers with and without
// permessage-deflate, which check the wire, and our client with it.
struct audience {
  explicit audience(executor ex) : deflating(ex), plain(ex) {}
  raw_peer deflating;
  raw_peer plain;
  std::shared_ptr<websockets::socket> ours;
  asio::awaitable<void> join(websockets::server& srv,
                             websockets::generator<std::shared_ptr<websockets::socket>>& conns);
};

// A raw peer upgraded with `extensions` (a Sec-WebSocket-Extensions line or nothing),
// once the server has it.
asio::awaitable<void> join(raw_peer& peer, websockets::server& srv,
                           websockets::generator<std::shared_ptr<websockets::socket>>& conns,
                           std::string extensions = {}) {
  co_await peer.connect(srv.local_endpoint().port());
  const std::string head = co_await peer.upgrade("/", extensions);
  REQUIRE(head.starts_with("HTTP/1.1 101"));
  CHECK((head.find("permessage-deflate") != std::string::npos) == !extensions.empty());
  (void)co_await next(conns);
}

asio::awaitable<void> audience::join(websockets::server& srv,
                                     websockets::generator<std::shared_ptr<websockets::socket>>& conns) {
  co_await ::join(deflating, srv, conns, deflate_header);
  co_await ::join(plain, srv, conns);
  const auto options = compressing_client();
  const auto ex = co_await asio::this_coro::executor;
  ours = co_await websockets::connect(ex, url_of(srv), options);
  (void)co_await next(conns);
}


// Relays every streamed message of `srv` to its other sockets.
asio::awaitable<void> relay_streams(websockets::server& srv) {
  auto streams = srv.streams();
  while (auto ev = co_await streams.next())
    if (auto* start = std::get_if<websockets::stream_start>(&*ev))
      asio::co_spawn(co_await asio::this_coro::executor, websockets::pipe(start->peer, srv), asio::detached);
}

// A server relaying every stream to its other sockets (pipe), the audience, and a raw
// sender.
struct relaying {
  explicit relaying(executor ex)
      : f(ex, compressing()), conns(f.srv.connections()), relay(spawn(ex, relay_streams(f.srv))), to(ex),
        sender(ex) {}
  /// The audience joins, then the sender, with `sender_extensions`.
  asio::awaitable<void> join(std::string sender_extensions) {
    co_await to.join(f.srv, conns);
    co_await ::join(sender, f.srv, conns, std::move(sender_extensions));
  }
  fixture f;
  websockets::generator<std::shared_ptr<websockets::socket>> conns;
  std::shared_ptr<bool> relay;
  audience to;
  raw_peer sender;
};

} // namespace

TEST_CASE("the server accepts an offer only when enabled, and answers with its parameters") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture plain{ex, {.close_timeout = 300ms}};
    raw_peer refused{ex};
    co_await refused.connect(plain.srv.local_endpoint().port());
    const std::string head = co_await refused.upgrade("/", deflate_header);
    CHECK(head.starts_with("HTTP/1.1 101"));
    CHECK(head.find("permessage-deflate") == std::string::npos);

    fixture f{ex, compressing()};
    raw_peer accepted{ex};
    co_await accepted.connect(f.srv.local_endpoint().port());
    const std::string agreed = co_await accepted.upgrade(
        "/", "Sec-WebSocket-Extensions: permessage-deflate; foo, permessage-deflate; client_max_window_bits\r\n");
    // The first offer has an unknown parameter: the second is taken.
    CHECK(agreed.find("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=12; "
                      "server_no_context_takeover\r\n") != std::string::npos);

    raw_peer malformed{ex};
    co_await malformed.connect(f.srv.local_endpoint().port());
    const std::string declined = co_await malformed.upgrade("/", "Sec-WebSocket-Extensions: permessage-deflate; a=\"b c\"\r\n");
    CHECK(declined.starts_with("HTTP/1.1 101")); // declined, not refused
    CHECK(declined.find("permessage-deflate") == std::string::npos);
    co_await plain.srv.stop();
    co_await f.srv.stop();
  });
}

TEST_CASE("client and server exchange compressed messages, whole and fragmented, both ways") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, compressing()};
    auto conns = f.srv.connections();
    auto server_messages = f.srv.messages();
    const auto options = compressing_client();
    auto client = co_await websockets::connect(ex, url_of(f.srv), options);
    auto client_messages = client->messages();
    auto peer = co_await next(conns);

    std::mt19937 rng{5};
    for (const std::size_t size : {std::size_t{0}, std::size_t{10}, std::size_t{64}, std::size_t{5000},
                                   std::size_t{200000}, std::size_t{3000000}}) {
      std::string text = repetitive(size);
      std::string blob(size, '\0');
      for (auto& c : blob) c = static_cast<char>(rng());
      CHECK(!co_await client->send(text));
      CHECK(!co_await client->send(bytes_of(blob)));
      auto t = co_await next(server_messages);
      CHECK(t.opcode == opcode::text);
      CHECK(t.payload == text);
      auto b = co_await next(server_messages);
      CHECK(b.opcode == opcode::binary);
      CHECK(b.payload == blob);
      CHECK(!co_await peer->send(text));
      CHECK(!co_await peer->send(bytes_of(blob)));
      CHECK((co_await next(client_messages)).payload == text);
      CHECK((co_await next(client_messages)).payload == blob);
    }
    co_await f.srv.stop();
  });
}

TEST_CASE("compressed frames go out with RSV1 past the threshold, plain under it") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, compressing()};
    auto conns = f.srv.connections();
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    (void)co_await raw.upgrade("/", deflate_header);
    auto peer = co_await next(conns);

    const std::string big = repetitive(10000);
    CHECK(!co_await peer->send(big));
    CHECK(!co_await peer->send("short"));
    auto compressed = co_await raw.read_frame();
    REQUIRE(compressed);
    CHECK(compressed->rsv1);
    CHECK(compressed->payload.size() < big.size() / 10);
    websockets::inflater in{15, true, 1 << 20};
    std::string back;
    CHECK(!in.inflate(bytes_of(compressed->payload), true, back));
    CHECK(back == big);
    auto plain = co_await raw.read_frame();
    REQUIRE(plain);
    CHECK(!plain->rsv1);
    CHECK(plain->payload == "short");
    co_await f.srv.stop();
  });
}

TEST_CASE("RFC 7692 examples arrive as text, in one frame and in fragments, and streamed") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, compressing({.close_timeout = 300ms})};
    auto messages = f.srv.messages();
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    (void)co_await raw.upgrade("/", deflate_header);
    co_await raw.send_frame(opcode::text, hello_deflated, true, true, true);
    CHECK((co_await next(messages)).text() == "Hello");
    // Fragmented: RSV1 on the first frame only (7.2.3.1 split in two).
    co_await raw.send_frame(opcode::text, hello_deflated.substr(0, 3), false, true, true);
    co_await raw.send_frame(opcode::continuation, hello_deflated.substr(3), true, true, false);
    CHECK((co_await next(messages)).text() == "Hello");
    // A stored block (7.2.3.3).
    co_await raw.send_frame(opcode::binary, std::string{"\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", 11}, true, true,
                            true);
    CHECK((co_await next(messages)).payload == "Hello");
    co_await f.srv.stop();
  });
}

TEST_CASE("bad compressed input closes with the right code") {
  struct bad_case {
    const char* name;
    std::string frames;
    std::uint16_t code;
  };
  websockets::deflater bomb_maker{15, 8, 9, true};
  std::vector<std::byte> bomb;
  const std::string zeros(8 << 20, '\0');
  bomb_maker.compress(bytes_of(zeros), true, bomb);
  const std::string bomb_bytes{reinterpret_cast<const char*>(bomb.data()), bomb.size()};
  websockets::deflater text_maker{15, 8, 6, true};
  std::vector<std::byte> bad_text;
  text_maker.compress(bytes_of("valid, then \xc0\xaf"), true, bad_text);
  const std::string bad_text_bytes{reinterpret_cast<const char*>(bad_text.data()), bad_text.size()};

  const std::vector<bad_case> cases{
      {"not deflate", raw_peer::frame_bytes(opcode::binary, "\xff\xff\xff\xff", true, true, true), 1007},
      {"a deflate bomb past max_message_size", raw_peer::frame_bytes(opcode::binary, bomb_bytes, true, true, true),
       1009},
      {"invalid UTF-8 inside compressed text", raw_peer::frame_bytes(opcode::text, bad_text_bytes, true, true, true),
       1007},
      {"RSV1 on a continuation frame",
       raw_peer::frame_bytes(opcode::text, hello_deflated.substr(0, 3), false, true, true) +
           raw_peer::frame_bytes(opcode::continuation, hello_deflated.substr(3), true, true, true),
       1002},
      {"RSV1 on a ping", raw_peer::frame_bytes(opcode::ping, "", true, true, true), 1002},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    run([&c](executor ex) -> asio::awaitable<void> {
      fixture f{ex, compressing({.max_message_size = 1 << 20, .close_timeout = 300ms})};
      auto errors = f.srv.errors();
      raw_peer raw{ex};
      co_await raw.connect(f.srv.local_endpoint().port());
      (void)co_await raw.upgrade("/", deflate_header);
      co_await raw.write(c.frames);
      auto close = co_await raw.read_frame();
      REQUIRE(close);
      CHECK(close->opcode == opcode::close);
      CHECK(close_code_of(close->payload) == c.code);
      (void)co_await next(errors);
      co_await f.srv.stop();
    });
  }
}

TEST_CASE("a broadcast compresses once for every compressing peer, and goes plain to the others") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, compressing()};
    auto conns = f.srv.connections();
    std::vector<raw_peer> peers;
    for (int i = 0; i < 4; ++i) {
      peers.emplace_back(ex);
      co_await peers.back().connect(f.srv.local_endpoint().port());
      const std::string offer = i < 3 ? deflate_header : std::string{}; // named: see connect()'s g++ 12 note
      (void)co_await peers.back().upgrade("/", offer);
      (void)co_await next(conns);
    }
    const std::string news = repetitive(50000);
    const auto before = websockets::detail::encoded_frames();
    co_await f.srv.broadcast({.fin = true, .opcode = opcode::text}, news);
    CHECK(websockets::detail::encoded_frames() - before == 2); // compressed once, plain once
    std::string first_compressed;
    for (std::size_t i = 0; i < peers.size(); ++i) {
      auto frame = co_await peers[i].read_frame();
      REQUIRE(frame);
      CHECK(frame->rsv1 == (i < 3));
      if (i == 0) first_compressed = frame->payload;
      if (i < 3) CHECK(frame->payload == first_compressed); // the same bytes
      if (i == 3) CHECK(frame->payload == news);
    }
    co_await f.srv.stop();
  });
}

TEST_CASE("a client fails a server that accepts with parameters breaking the offer") {
  run([](executor ex) -> asio::awaitable<void> {
    // A server answering by hand, with a window the client cannot compress with.
    asio::ip::tcp::acceptor acceptor{ex, {asio::ip::make_address("127.0.0.1"), 0}};
    asio::co_spawn(
        ex,
        [&acceptor]() -> asio::awaitable<void> {
          auto tcp = co_await acceptor.async_accept(asio::use_awaitable);
          std::string request;
          (void)co_await asio::async_read_until(tcp, asio::dynamic_buffer(request), "\r\n\r\n", asio::use_awaitable);
          const auto at = request.find("Sec-WebSocket-Key: ") + 19;
          const std::string key = request.substr(at, request.find("\r\n", at) - at);
          const std::string response = websockets::accept_response(
              key, {.extensions = "permessage-deflate; client_max_window_bits=8"});
          co_await asio::async_write(tcp, asio::buffer(response), asio::use_awaitable);
        },
        asio::detached);
    const auto options = compressing_client();
    std::error_code failure;
    try {
      (void)co_await websockets::connect(ex, "ws://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/",
                                         options);
    } catch (const std::system_error& e) {
      failure = e.code();
    }
    CHECK(failure == websockets::error::bad_extension_response);
  });
}

TEST_CASE("co_write streams one compressed message to deflate peers and the plain one to the others, "
          "each fragment encoded once per form") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, compressing()};
    auto conns = f.srv.connections();
    audience to{ex};
    co_await to.join(f.srv, conns);
    auto ours_messages = to.ours->messages();
    auto ours_plain = co_await websockets::connect(ex, url_of(f.srv));
    auto plain_messages = ours_plain->messages();
    (void)co_await next(conns);

    // Sizes on both sides of deflate's threshold (64 B), which streams ignore.
    const std::vector<std::string> chunks{repetitive(5000), "short", "x", repetitive(70000)};
    const auto before = websockets::detail::encoded_frames();
    for (const auto& chunk : chunks) co_await f.srv.co_write(bytes_of(chunk), opcode::text);
    co_await f.srv.co_write({});
    // Every fragment and the final frame: once plain, once compressed, for four peers.
    CHECK(websockets::detail::encoded_frames() - before == 2 * (chunks.size() + 1));

    auto expected = chunks;
    expected.emplace_back(); // the final frame carries no data
    const auto compressed = co_await read_frames(to.deflating);
    REQUIRE(compressed.size() == expected.size());
    CHECK(pieces_of(compressed, opcode::text, true) == expected);
    std::size_t wire = 0;
    for (const auto& frame : compressed) wire += frame.payload.size();
    CHECK(wire < joined(chunks).size() / 10);
    const auto uncompressed = co_await read_frames(to.plain);
    CHECK(pieces_of(uncompressed, opcode::text, false) == expected);

    const auto whole = joined(chunks);
    auto got = co_await next(ours_messages);
    CHECK(got.opcode == opcode::text);
    CHECK(got.payload == whole);
    CHECK((co_await next(plain_messages)).payload == whole);
    // Whole messages after the stream compress as before.
    co_await f.srv.broadcast({.fin = true, .opcode = opcode::binary}, whole);
    CHECK((co_await next(ours_messages)).payload == whole);
    CHECK(to.ours->is_open());
    co_await f.srv.stop();
  });
}

TEST_CASE("a compressed stream goes out with each window size its peers agreed, compressed once per size") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, compressing()};
    auto conns = f.srv.connections();
    // 9 and 10 bits asked; the server's own 12 for the peer that asks nothing.
    const std::vector<int> bits{9, 10, 10, 12};
    std::vector<raw_peer> peers;
    for (const int b : bits) {
      peers.emplace_back(ex);
      const std::string offer = b == 12 ? deflate_header
                                        : "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=" +
                                              std::to_string(b) + "\r\n";
      co_await join(peers.back(), f.srv, conns, offer);
    }
    // Repeats 2000 bytes apart: only a window of 2^11 or more may reach back to them,
    // which a peer decoding with the window it agreed would fail on.
    std::mt19937 rng{7};
    std::string block(2000, '\0');
    for (auto& c : block) c = static_cast<char>(rng());
    const std::vector<std::string> chunks{block + block, block, repetitive(3000)};
    const auto before = websockets::detail::encoded_frames();
    for (const auto& chunk : chunks) co_await f.srv.co_write(bytes_of(chunk));
    co_await f.srv.co_write({});
    CHECK(websockets::detail::encoded_frames() - before == 3 * (chunks.size() + 1)); // 9, 10 and 12; no plain

    auto expected = chunks;
    expected.emplace_back();
    std::vector<std::vector<raw_peer::frame>> received;
    for (std::size_t i = 0; i < peers.size(); ++i) {
      CAPTURE(bits[i]);
      received.push_back(co_await read_frames(peers[i]));
      CHECK(pieces_of(received.back(), opcode::binary, true, bits[i]) == expected);
    }
    // The two peers with 10 bits got the same bytes; the window sizes differ on the wire.
    REQUIRE(received[1].size() == received[2].size());
    for (std::size_t k = 0; k < received[1].size(); ++k) CHECK(received[1][k].payload == received[2][k].payload);
    CHECK(received[0][0].payload.size() > received[3][0].payload.size());
    co_await f.srv.stop();
  });
}

TEST_CASE("pipe relays a fragmented message compressed to deflate peers, plain to the others") {
  run([](executor ex) -> asio::awaitable<void> {
    relaying r{ex};
    // The sender compresses too: what is relayed is what it inflates to, compressed again.
    co_await r.join(deflate_header);
    auto& f = r.f;
    auto& to = r.to;
    auto& sender = r.sender;
    auto ours_streams = to.ours->streams();

    co_await sender.send_frame(opcode::text, hello_deflated.substr(0, 3), false, true, true);
    // Flushed (the empty stored block RFC 7692 drops only at a message's end), so
    // that another deflate stream's blocks may follow.
    const std::string hello_rest = hello_deflated.substr(3) + std::string{"\x00\x00\xff\xff", 4};
    co_await sender.send_frame(opcode::continuation, hello_rest, false);
    const std::string tail = ", " + repetitive(4000);
    websockets::deflater sender_deflater{15, 8, 6, true};
    std::vector<std::byte> rest;
    sender_deflater.compress(bytes_of(tail), true, rest);
    const std::string rest_bytes{reinterpret_cast<const char*>(rest.data()), rest.size()};
    co_await sender.send_frame(opcode::continuation, "", false); // an empty fragment
    co_await sender.send_frame(opcode::continuation, rest_bytes, true);

    // Read as it goes: the relay is a stream, not a message held back to its end.
    const std::string whole = "Hello" + tail;
    const auto compressed = co_await read_frames(to.deflating);
    CHECK(compressed.size() >= 2);
    CHECK(joined(pieces_of(compressed, opcode::text, true)) == whole);
    const auto uncompressed = co_await read_frames(to.plain);
    CHECK(joined(pieces_of(uncompressed, opcode::text, false)) == whole);
    auto start = co_await next(ours_streams);
    REQUIRE(std::holds_alternative<websockets::stream_start>(start));
    CHECK(co_await rest_of_stream(ours_streams) == whole);
    CHECK(to.ours->is_open());
    // The sender is not sent its own stream.
    CHECK(!(co_await sender.read_frame(std::chrono::milliseconds{200})));
    co_await f.srv.stop();
  });
}

TEST_CASE("an abandoned stream ends in every form: a relay whose sender drops, a co_write cut by stop") {
  run([](executor ex) -> asio::awaitable<void> {
    relaying r{ex};
    co_await r.join({});
    auto& f = r.f;
    auto& to = r.to;
    auto& sender = r.sender;
    auto ours_messages = to.ours->messages();

    const std::string partial = repetitive(3000);
    co_await sender.send_frame(opcode::binary, partial, false);
    // The first fragment is out before the sender goes.
    auto first = co_await to.deflating.read_frame();
    REQUIRE(first);
    CHECK(first->rsv1);
    CHECK(!first->fin);
    sender.close(); // in the middle of the message
    auto last = co_await to.deflating.read_frame();
    REQUIRE(last);
    const std::vector<raw_peer::frame> compressed{*first, *last};
    CHECK(pieces_of(compressed, opcode::binary, true) == std::vector<std::string>{partial, ""});
    auto uncompressed = co_await read_frames(to.plain);
    CHECK(pieces_of(uncompressed, opcode::binary, false) == std::vector<std::string>{partial, ""});
    CHECK((co_await next(ours_messages)).payload == partial);
    CHECK(to.ours->is_open());

    // co_write's stream, cut short by stop: the final frame comes before the close.
    co_await f.srv.co_write(bytes_of(partial));
    co_await f.srv.stop();
    auto cut = co_await read_frames(to.deflating);
    CHECK(pieces_of(cut, opcode::binary, true) == std::vector<std::string>{partial, ""});
    auto cut_plain = co_await read_frames(to.plain);
    CHECK(pieces_of(cut_plain, opcode::binary, false) == std::vector<std::string>{partial, ""});
    auto close = co_await to.deflating.read_frame();
    REQUIRE(close);
    CHECK(close->opcode == opcode::close);
  });
}

TEST_CASE("concurrent co_write callers to a slow deflate peer: the stream decodes, each chunk whole and in "
          "its caller's order") {
  run([](executor ex) -> asio::awaitable<void> {
    // A queue that holds one fragment: every next one waits for room.
    fixture f{ex, compressing({.close_timeout = 300ms,
                               .max_queued_bytes = 1000,
                               .overflow = websockets::overflow_policy::wait})};
    auto conns = f.srv.connections();
    const auto options = compressing_client();
    auto ours = co_await websockets::connect(ex, url_of(f.srv), options);
    auto ours_messages = ours->messages();
    (void)co_await next(conns);

    // Incompressible chunks, so that each fragment is bigger than the queue.
    constexpr std::size_t size = 2000;
    constexpr int per_writer = 10;
    std::mt19937 rng{11};
    std::vector<std::string> sent;
    for (int i = 0; i < 1 + 2 * per_writer; ++i) { // the opener, then each writer's
      std::string chunk(size, '\0');
      for (auto& c : chunk) c = static_cast<char>(rng());
      sent.push_back(std::move(chunk));
    }
    auto writer = [](websockets::server& s, const std::vector<std::string>& chunks,
                     int first) -> asio::awaitable<void> {
      for (int i = first; i < first + per_writer; ++i) co_await s.co_write(bytes_of(chunks[i]));
    };
    co_await f.srv.co_write(bytes_of(sent[0])); // opens the stream
    auto a = spawn(ex, writer(f.srv, sent, 1));
    auto b = spawn(ex, writer(f.srv, sent, 1 + per_writer));
    while (!*a || !*b) co_await sleep(5ms);
    co_await f.srv.co_write({});

    auto got = co_await next(ours_messages);
    CHECK(ours->is_open()); // the deflate stream decoded
    REQUIRE(got.payload.size() == sent.size() * size);
    // Every chunk whole, and each writer's in its order.
    std::vector<std::size_t> order;
    for (std::size_t at = 0; at < got.payload.size(); at += size) {
      const auto it = std::find(sent.begin(), sent.end(), got.payload.substr(at, size));
      REQUIRE(it != sent.end());
      order.push_back(static_cast<std::size_t>(it - sent.begin()));
    }
    CHECK(order.front() == 0);
    std::vector<std::size_t> from_a, from_b;
    for (const auto k : order) (k <= per_writer ? from_a : from_b).push_back(k);
    CHECK(std::is_sorted(from_a.begin(), from_a.end()));
    CHECK(std::is_sorted(from_b.begin(), from_b.end()));
    co_await f.srv.stop();
  });
}
