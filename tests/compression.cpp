// permessage-deflate over loopback: negotiation in the handshake, compressed messages
// both ways (whole, fragmented, streamed), shared compression for broadcasts, and the
// close codes for bad compressed input.
#include "loopback.hpp"

#include <websockets/deflate.hpp>
#include <websockets/error.hpp>

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
