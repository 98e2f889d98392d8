// One connection over loopback: messages both ways, ping/pong, every close path, the
// idle timeout, streams in, and back-pressure from a consumer that stops reading.
#include "loopback.hpp"

#include <websockets/error.hpp>
#include <websockets/socket.hpp>

#include <optional>
#include <string>
#include <thread>

using namespace loopback;
using websockets::close_code;
using websockets::opcode;

namespace {

// A server on a free loopback port, listening.
bool is_websockets_error(std::error_code ec, websockets::error e) {
  return ec == make_error_code(e) && std::string(ec.category().name()) == "websockets";
}

} // namespace

TEST_CASE("a socket's upgrade request, parsed when first asked for, is the one the client sent") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    websockets::connect_options options;
    options.handshake.origin = "http://example.com";
    options.handshake.subprotocols = {"chat", "superchat"};
    options.handshake.extra_headers = {{"Cookie", "theme=dark; user=\"ada\""}, {"X-Trace", "a"}, {"X-Trace", "b"}};
    auto client = co_await websockets::connect(ex, url_of(f.srv, "/?room=7&lang=en"), options);
    auto peer = co_await next(conns);

    // Asked from two threads at once: one parse, one object.
    const websockets::upgrade_request* seen[2]{};
    std::thread other([&] { seen[1] = &peer->request(); });
    seen[0] = &peer->request();
    other.join();
    CHECK(seen[0] == seen[1]);
    CHECK(&peer->request() == seen[0]);

    const auto& request = peer->request();
    CHECK(request.head().method() == "GET");
    CHECK(request.head().target() == "/?room=7&lang=en");
    CHECK(request.head().target_url().params().contains("room"));
    CHECK(request.key().size() == 24);
    REQUIRE(request.subprotocols().size() == 2);
    CHECK(request.subprotocols()[1] == "superchat");
    CHECK(request.origin() == std::optional<std::string>{"http://example.com"});
    CHECK(request.cookie("user") == std::optional<std::string>{"ada"});
    CHECK(request.head().header("X-Trace") == "a, b");
    CHECK(request.head().raw().ends_with("\r\n\r\n"));
    (void)co_await client->close();
  });
}

TEST_CASE("text and binary messages go both ways, whole and in order") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto server_messages = f.srv.messages();
    auto client = co_await websockets::connect(ex, url_of(f.srv));
    auto client_messages = client->messages();
    auto peer = co_await next(conns);
    CHECK(peer->role() == websockets::role::server);
    CHECK(client->role() == websockets::role::client);
    CHECK(peer->is_open());
    CHECK(peer->request().head().target() == "/");

    auto sent = co_await client->send("hello");
    CHECK(!sent);
    const std::array<std::byte, 3> blob{std::byte{0}, std::byte{0xff}, std::byte{7}};
    sent = co_await client->send(std::span<const std::byte>{blob});
    CHECK(!sent);
    auto text = co_await next(server_messages);
    CHECK(text.opcode == opcode::text);
    CHECK(text.text() == "hello");
    CHECK(text.peer == peer);
    auto binary = co_await next(server_messages);
    CHECK(binary.opcode == opcode::binary);
    REQUIRE(binary.bytes().size() == 3);
    CHECK(binary.bytes()[1] == std::byte{0xff});

    // Many messages keep their order, and the server's socket generator sees them too.
    auto peer_messages = peer->messages();
    for (int i = 0; i < 100; ++i) (void)co_await client->send(std::to_string(i));
    for (int i = 0; i < 100; ++i) {
      CHECK((co_await next(server_messages)).payload == std::to_string(i));
      CHECK((co_await next(peer_messages)).payload == std::to_string(i));
    }

    sent = co_await peer->send("hi client");
    CHECK(!sent);
    auto reply = co_await next(client_messages);
    CHECK(reply.text() == "hi client");
    CHECK(reply.peer == client);

    const auto wrong = co_await peer->send(opcode::ping, {});
    CHECK(wrong == std::errc::invalid_argument);
    co_await f.srv.stop();
  });
}

TEST_CASE("pings are answered without an event; pongs are events") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto pongs = f.srv.pongs();
    auto client = co_await websockets::connect(ex, url_of(f.srv));
    auto client_events = client->events();
    auto peer = co_await next(conns);
    auto peer_events = peer->events();

    // The client pings: the server answers, and reports nothing.
    auto ec = co_await client->ping(bytes_of("abc"));
    CHECK(!ec);
    auto pong = co_await next_of<websockets::pong_event>(client_events);
    CHECK(pong.payload == "abc");
    CHECK(co_await quiet(peer_events));

    // The server pings: the client answers, and the server reports the pong.
    ec = co_await peer->ping(bytes_of("xyz"));
    CHECK(!ec);
    auto server_pong = co_await next(pongs);
    CHECK(server_pong.payload == "xyz");
    CHECK(server_pong.peer == peer);

    const std::string too_long(126, 'p');
    ec = co_await peer->ping(bytes_of(too_long));
    CHECK(ec == std::errc::message_size);
    co_await f.srv.stop();
  });
}

TEST_CASE("close 1000: the handshake completes both ways and each side reports it once") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto closes = f.srv.closes();
    auto client = co_await websockets::connect(ex, url_of(f.srv));
    auto client_events = client->events();
    (void)co_await next(conns);
    CHECK(f.srv.connection_count() == 1);

    auto ec = co_await client->close(close_code::normal, "bye");
    CHECK(!ec);
    CHECK(!client->is_open());
    auto server_side = co_await next(closes);
    CHECK(server_side.code == 1000);
    CHECK(server_side.reason == "bye");
    CHECK(f.srv.connection_count() == 0);
    auto client_side = co_await next_of<websockets::close_event>(client_events);
    CHECK(client_side.code == 1000);
    // Exactly once, and then the socket's generators end.
    CHECK(!(co_await within(client_events.next(), 2s)).value().has_value());
    CHECK(co_await quiet(closes));

    // A closed socket refuses sends and closes again at once.
    CHECK(co_await client->send("late") == websockets::error::not_open);
    CHECK(!co_await client->close());
    CHECK(co_await client->close(close_code::no_status) == std::errc::invalid_argument);
    co_await f.srv.stop();
  });
}

TEST_CASE("the server closes with an application code; the client reports that code") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto client = co_await websockets::connect(ex, url_of(f.srv));
    auto client_events = client->events();
    auto peer = co_await next(conns);
    auto ec = co_await peer->close(static_cast<close_code>(4000), "done here");
    CHECK(!ec);
    auto closed = co_await next_of<websockets::close_event>(client_events);
    CHECK(closed.code == 4000);
    CHECK(closed.reason == "done here");
    co_await f.srv.stop();
  });
}

TEST_CASE("close 1005: a close frame without a code is answered with 1000 and reported as 1005") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto closes = f.srv.closes();
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    auto head = co_await raw.upgrade();
    CHECK(head.starts_with("HTTP/1.1 101"));
    co_await raw.send_frame(opcode::close, "");
    auto answer = co_await raw.read_frame();
    REQUIRE(answer);
    CHECK(answer->opcode == opcode::close);
    CHECK(close_code_of(answer->payload) == 1000);
    CHECK(co_await raw.closed_by_peer()); // the server closes TCP after the handshake
    auto closed = co_await next(closes);
    CHECK(closed.code == 1005);
    co_await f.srv.stop();
  });
}

TEST_CASE("close 1006: a peer that drops TCP without a close frame; later generators end at once") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto events = f.srv.events();
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    (void)co_await raw.upgrade();
    auto opened = co_await next_of<websockets::open_event>(events);
    raw.close();
    auto ev = co_await next(events);
    REQUIRE(std::holds_alternative<websockets::close_event>(ev)); // no error event before it
    CHECK(std::get<websockets::close_event>(ev).code == 1006);
    CHECK(std::get<websockets::close_event>(ev).peer == opened.peer);
    CHECK(f.srv.connection_count() == 0);
    // A socket makes its own event queues on the first subscription; ones made after the
    // close event must not wait for events that will never come.
    auto late_messages = opened.peer->messages();
    auto late_events = opened.peer->events();
    auto late_streams = opened.peer->streams();
    CHECK(!(co_await within(late_messages.next(), 2s)).value().has_value());
    CHECK(!(co_await within(late_events.next(), 2s)).value().has_value());
    CHECK(!(co_await within(late_streams.next(), 2s)).value().has_value());
    co_await f.srv.stop();
  });
}

TEST_CASE("close 1002: an unmasked frame from a client is a protocol error") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto events = f.srv.events();
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    (void)co_await raw.upgrade();
    (void)co_await next_of<websockets::open_event>(events);
    co_await raw.send_frame(opcode::text, "hi", true, false);
    auto error = co_await next_of<websockets::error_event>(events);
    CHECK(is_websockets_error(error.error, websockets::error::unmasked_frame));
    CHECK(!error.error.message().empty());
    REQUIRE(error.peer);
    auto closed = co_await next_of<websockets::close_event>(events);
    CHECK(closed.code == 1002);
    auto frame = co_await raw.read_frame();
    REQUIRE(frame);
    CHECK(frame->opcode == opcode::close);
    CHECK(close_code_of(frame->payload) == 1002);
    CHECK(co_await raw.closed_by_peer());
    co_await f.srv.stop();
  });
}

TEST_CASE("close 1007: text that is not UTF-8") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto errors = f.srv.errors();
    auto closes = f.srv.closes();
    auto client = co_await websockets::connect(ex, url_of(f.srv));
    auto client_events = client->events();
    (void)co_await client->send(std::string_view{"ok \xff\xfe"});
    auto error = co_await next(errors);
    CHECK(is_websockets_error(error.error, websockets::error::invalid_utf8));
    CHECK((co_await next(closes)).code == 1007);
    CHECK((co_await next_of<websockets::close_event>(client_events)).code == 1007);
    co_await f.srv.stop();
  });
}

TEST_CASE("close 1009: a message past max_message_size") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.max_message_size = 1024}};
    auto errors = f.srv.errors();
    auto closes = f.srv.closes();
    auto client = co_await websockets::connect(ex, url_of(f.srv));
    auto client_events = client->events();
    (void)co_await client->send(std::string(1024, 'a')); // at the limit: fine
    (void)co_await client->send(std::string(2000, 'a'));
    auto error = co_await next(errors);
    CHECK(is_websockets_error(error.error, websockets::error::message_too_big));
    CHECK((co_await next(closes)).code == 1009);
    CHECK((co_await next_of<websockets::close_event>(client_events)).code == 1009);
    co_await f.srv.stop();
  });
}

TEST_CASE("a client enforces its own limits: 1009 from a server's big message") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto closes = f.srv.closes();
    const websockets::connect_options options{.max_frame_size = 100};
    auto client = co_await websockets::connect(ex, url_of(f.srv), options);
    auto client_events = client->events();
    auto peer = co_await next(conns);
    (void)co_await peer->send(std::string(101, 'b'));
    auto error = co_await next_of<websockets::error_event>(client_events);
    CHECK(is_websockets_error(error.error, websockets::error::frame_too_big));
    CHECK((co_await next_of<websockets::close_event>(client_events)).code == 1009);
    CHECK((co_await next(closes)).code == 1009);
    co_await f.srv.stop();
  });
}

TEST_CASE("idle timeout: a peer that never answers is pinged, then closed") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.timeout = std::chrono::milliseconds{200}}};
    auto errors = f.srv.errors();
    auto closes = f.srv.closes();
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    (void)co_await raw.upgrade();
    auto ping = co_await raw.read_frame();
    REQUIRE(ping);
    CHECK(ping->opcode == opcode::ping);
    auto close = co_await raw.read_frame();
    REQUIRE(close);
    CHECK(close->opcode == opcode::close);
    CHECK(close_code_of(close->payload) == 1001);
    CHECK(close->payload.substr(2) == "idle timeout");
    CHECK(co_await raw.closed_by_peer());
    auto error = co_await next(errors);
    CHECK(error.error == std::errc::timed_out);
    CHECK(error.error == websockets::error::idle_timeout);
    CHECK((co_await next(closes)).code == 1006);
    co_await f.srv.stop();
  });
}

TEST_CASE("idle timeout: live peers answer the pings and stay; silent ones are closed (one watchdog for all)") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.timeout = std::chrono::milliseconds{150}}};
    auto closes = f.srv.closes();
    auto live_before = co_await websockets::connect(ex, url_of(f.srv));
    auto before_events = live_before->events(); // read below, so pongs never pile up
    std::vector<std::unique_ptr<raw_peer>> silent;
    for (int i = 0; i < 2; ++i) {
      silent.push_back(std::make_unique<raw_peer>(ex));
      co_await silent.back()->connect(f.srv.local_endpoint().port());
      (void)co_await silent.back()->upgrade();
    }
    auto live_after = co_await websockets::connect(ex, url_of(f.srv));
    auto after_events = live_after->events();
    // Each silent peer is pinged, then closed; the watchdog goes on with the others.
    for (auto& peer : silent) {
      auto ping = co_await peer->read_frame();
      REQUIRE(ping);
      CHECK(ping->opcode == opcode::ping);
      auto close = co_await peer->read_frame();
      REQUIRE(close);
      CHECK(close_code_of(close->payload) == 1001);
    }
    CHECK((co_await next(closes)).code == 1006);
    CHECK((co_await next(closes)).code == 1006);
    CHECK(co_await quiet(closes, std::chrono::milliseconds{600}));
    CHECK(live_before->is_open());
    CHECK(live_after->is_open());
    CHECK(f.srv.connection_count() == 2);
    co_await f.srv.stop();
    CHECK((co_await next_of<websockets::close_event>(before_events)).code == 1001);
    CHECK((co_await next_of<websockets::close_event>(after_events)).code == 1001);
  });
}

TEST_CASE("a fragmented message arrives as a stream, not also reassembled, when streams are read") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.close_timeout = std::chrono::milliseconds{300}}}; // the raw peer never answers a close
    auto streams = f.srv.streams();
    auto messages = f.srv.messages();
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    (void)co_await raw.upgrade();
    co_await raw.send_frame(opcode::text, "he", false);
    co_await raw.send_frame(opcode::ping, "mid-stream", true); // control frames may interleave
    co_await raw.send_frame(opcode::continuation, "llo", false);
    co_await raw.send_frame(opcode::continuation, " world", true);

    auto start = co_await next(streams);
    REQUIRE(std::holds_alternative<websockets::stream_start>(start));
    CHECK(std::get<websockets::stream_start>(start).opcode == opcode::text);
    std::string received;
    for (;;) {
      auto ev = co_await next(streams);
      if (auto* data = std::get_if<websockets::stream_data>(&ev)) {
        CHECK(!data->chunk.empty());
        received += data->chunk;
        continue;
      }
      CHECK(std::holds_alternative<websockets::stream_end>(ev));
      break;
    }
    CHECK(received == "hello world");
    auto pong = co_await raw.read_frame();
    REQUIRE(pong);
    CHECK(pong->opcode == opcode::pong);
    CHECK(pong->payload == "mid-stream");
    // The next message, a single small frame, is the first one messages() sees.
    co_await raw.send_frame(opcode::text, "whole", true);
    CHECK((co_await next(messages)).text() == "whole");
    co_await f.srv.stop();
  });
}

TEST_CASE("one frame of at least stream_threshold bytes is streamed while it arrives; a smaller one is whole") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.close_timeout = 300ms, .stream_threshold = 1000}};
    auto streams = f.srv.streams();
    auto messages = f.srv.messages();
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    (void)co_await raw.upgrade();

    co_await raw.send_frame(opcode::binary, std::string(999, 's'));
    CHECK((co_await next(messages)).payload == std::string(999, 's'));

    std::string payload(5000, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
    const std::string frame = raw_peer::frame_bytes(opcode::binary, payload);
    // Only the first half goes out: its bytes must come out of the stream before the rest.
    co_await raw.write(std::string_view{frame}.substr(0, 2500));
    auto start = co_await next(streams);
    REQUIRE(std::holds_alternative<websockets::stream_start>(start));
    CHECK(std::get<websockets::stream_start>(start).opcode == opcode::binary);
    std::string received;
    while (received.size() < 2000) {
      auto ev = co_await next(streams);
      REQUIRE(std::holds_alternative<websockets::stream_data>(ev));
      received += std::get<websockets::stream_data>(ev).chunk;
    }
    co_await raw.write(std::string_view{frame}.substr(2500));
    received += co_await rest_of_stream(streams);
    CHECK(received == payload);
    CHECK(co_await quiet(messages)); // read as a stream: not reassembled as well
    co_await f.srv.stop();
  });
}

TEST_CASE("a streamed message nobody reads as a stream is reassembled for messages()") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.stream_threshold = 1000}};
    auto messages = f.srv.messages();
    auto client = co_await websockets::connect(ex, url_of(f.srv));
    const std::string big(300'000, 'b');
    CHECK(!co_await client->send(bytes_of(big)));
    CHECK((co_await next(messages)).payload == big);
    co_await f.srv.stop();
  });
}

TEST_CASE("a consumer that stops reading stops the reader: the sender's writes back up") {
  run(
      [](executor ex) -> asio::awaitable<void> {
        fixture f{ex, {.event_queue = 2}};
        auto messages = f.srv.messages(); // not read until the end
        const websockets::connect_options options{.max_queued_bytes = 64 * 1024};
        auto client = co_await websockets::connect(ex, url_of(f.srv), options);
        const std::string chunk(64 * 1024, 'x');
        std::size_t sent = 0;
        bool blocked = false;
        // Bounded: at most 256 MiB would be sent if nothing pushed back.
        while (!blocked && sent < 4096) {
          auto r = co_await within(client->send(chunk), std::chrono::milliseconds{1500});
          if (!r) {
            blocked = true;
          } else {
            REQUIRE(!*r);
            ++sent;
          }
        }
        CHECK(blocked);
        CHECK(client->buffered_amount() >= 64 * 1024);
        MESSAGE("sent " << sent << " messages of 64 KiB before the sender had to wait");
        // Reading again drains everything, in order and whole.
        for (std::size_t i = 0; i < sent; ++i) {
          auto m = co_await next(messages);
          REQUIRE(m.payload.size() == chunk.size());
        }
        co_await f.srv.stop();
      },
      std::chrono::seconds{60});
}

TEST_CASE("a peer that stops reading is closed with 1008 once its queue passes max_queued_bytes") {
  run(
      [](executor ex) -> asio::awaitable<void> {
        fixture f{ex, {.close_timeout = 300ms, .max_queued_bytes = 256 * 1024}};
        auto conns = f.srv.connections();
        auto closes = f.srv.closes();
        auto errors = f.srv.errors();
        auto reading = co_await websockets::connect(ex, url_of(f.srv));
        auto reading_messages = reading->messages();
        auto fast = co_await next(conns);
        raw_peer stalled{ex}; // never reads
        co_await stalled.connect(f.srv.local_endpoint().port());
        (void)co_await stalled.upgrade();
        auto slow = co_await next(conns);

        const std::string chunk(64 * 1024, 'q');
        std::size_t sent = 0;
        std::error_code refused;
        // Bounded: the kernel's buffers take a few MiB, then our queue fills.
        while (!refused && sent < 2000) {
          co_await f.srv.broadcast({.fin = true, .opcode = opcode::binary}, chunk);
          CHECK(slow->buffered_amount() <= 256 * 1024 + chunk.size() + 16);
          refused = co_await slow->send(bytes_of("still there?"));
          ++sent;
        }
        CHECK(refused == websockets::error::send_queue_full);
        CHECK((co_await next(errors)).error == websockets::error::send_queue_full);
        const auto closed = co_await next(closes);
        CHECK(closed.peer == slow);
        CHECK(closed.code == 1008);
        // The reading peer got every broadcast, whole and in order.
        for (std::size_t i = 0; i < sent; ++i) CHECK((co_await next(reading_messages)).payload.size() == chunk.size());
        CHECK(fast->is_open());
        co_await f.srv.stop();
      },
      std::chrono::seconds{60});
}

TEST_CASE("with overflow_policy::drop a slow peer misses messages, counted and reported, and stays open") {
  run(
      [](executor ex) -> asio::awaitable<void> {
        fixture f{ex, {.close_timeout = 300ms,
                       .max_queued_bytes = 256 * 1024,
                       .overflow = websockets::overflow_policy::drop}};
        auto conns = f.srv.connections();
        auto errors = f.srv.errors();
        raw_peer stalled{ex};
        co_await stalled.connect(f.srv.local_endpoint().port());
        (void)co_await stalled.upgrade();
        auto slow = co_await next(conns);
        const std::string chunk(64 * 1024, 'd');
        std::size_t dropped = 0;
        for (std::size_t i = 0; i < 2000 && dropped < 3; ++i) {
          co_await f.srv.broadcast({.fin = true, .opcode = opcode::binary}, chunk);
          if (slow->dropped_messages() > 0 && co_await slow->send(bytes_of(chunk)) == websockets::error::message_dropped)
            ++dropped;
        }
        CHECK(dropped == 3);
        CHECK(slow->dropped_messages() >= 4); // the broadcast that overflowed first, and the sends
        CHECK((co_await next(errors)).error == websockets::error::message_dropped);
        CHECK(slow->is_open());
        CHECK(slow->buffered_amount() <= 256 * 1024 + chunk.size() + 16);
        co_await f.srv.stop();
      },
      std::chrono::seconds{60});
}

TEST_CASE("a message read just before the peer's close is answered before our close") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    (void)co_await raw.upgrade();
    auto peer = co_await next(conns);
    auto messages = peer->messages();
    asio::co_spawn(
        ex,
        [peer, messages = std::move(messages)]() mutable -> asio::awaitable<void> {
          while (auto m = co_await messages.next()) (void)co_await peer->send(m->text());
        },
        asio::detached);
    // Both in one write: the close is read at once after the message (Autobahn 7.1.1).
    const std::string close_payload{"\x03\xe8", 2};
    co_await raw.write(raw_peer::frame_bytes(opcode::text, "Hello World!") +
                       raw_peer::frame_bytes(opcode::close, close_payload));
    auto echo = co_await raw.read_frame();
    REQUIRE(echo);
    CHECK(echo->opcode == opcode::text);
    CHECK(echo->payload == "Hello World!");
    auto close = co_await raw.read_frame();
    REQUIRE(close);
    CHECK(close->opcode == opcode::close);
    CHECK(close_code_of(close->payload) == 1000);
    CHECK(co_await raw.closed_by_peer());
    co_await f.srv.stop();
  });
}
