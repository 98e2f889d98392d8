// The server over loopback: the handshake answers (101, 404, 426, 431, 503), the
// registry and its events, broadcast, co_write streams, pipes, hand-over, and stop.
#include "loopback.hpp"

#include <websockets/error.hpp>
#include <websockets/server.hpp>

#include <map>

using namespace loopback;
using websockets::close_code;
using websockets::opcode;

namespace {

// Reads an HTTP status line from a raw request.
asio::awaitable<std::string> status_of(executor ex, std::uint16_t port, std::string request) {
  raw_peer raw{ex};
  co_await raw.connect(port);
  co_await raw.write(request);
  auto head = co_await raw.read_head();
  co_return head.substr(0, head.find("\r\n"));
}

std::string upgrade_request(std::string_view path) {
  return "GET " + std::string(path) +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

asio::awaitable<std::error_code> connect_error(executor ex, std::string url) {
  try {
    (void)co_await websockets::connect(ex, url);
  } catch (const std::system_error& e) {
    co_return e.code();
  }
  co_return std::error_code{};
}

// Reads the frames of one message from a raw peer, up to the one with FIN.
asio::awaitable<std::string> read_message(raw_peer& peer) {
  std::string payload;
  for (;;) {
    auto frame = co_await peer.read_frame();
    REQUIRE(frame);
    payload += frame->payload;
    if (frame->fin) co_return payload;
  }
}

} // namespace

TEST_CASE("open, message and close arrive in order on events(); the registry follows") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto events = f.srv.events();
    auto client = co_await websockets::connect(ex, url_of(f.srv, "/"));
    auto opened = co_await next(events);
    REQUIRE(std::holds_alternative<websockets::open_event>(opened));
    auto peer = std::get<websockets::open_event>(opened).peer;
    CHECK(f.srv.connection_count() == 1);
    CHECK(f.srv.sockets().front() == peer);
    CHECK(peer->remote_endpoint().address().is_loopback());
    (void)co_await client->send("one");
    auto m = co_await next(events);
    REQUIRE(std::holds_alternative<websockets::message>(m));
    CHECK(std::get<websockets::message>(m).text() == "one");
    (void)co_await client->close();
    auto c = co_await next(events);
    REQUIRE(std::holds_alternative<websockets::close_event>(c));
    CHECK(std::get<websockets::close_event>(c).code == 1000);
    CHECK(std::get<websockets::close_event>(c).peer == peer);
    CHECK(f.srv.connection_count() == 0);
    co_await f.srv.stop();
  });
}

TEST_CASE("a socket's first messages are not lost to the open event's consumer") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.close_timeout = std::chrono::milliseconds{300}}}; // raw peers never answer a close
    auto conns = f.srv.connections();
    // A raw client sends its first frame in the same write as the upgrade request.
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    websockets::frame_head head{.fin = true, .opcode = opcode::text, .masked = true,
                                .key = {std::byte{9}, std::byte{8}, std::byte{7}, std::byte{6}},
                                .payload_size = 5};
    std::array<std::byte, websockets::max_head_size> head_bytes{};
    const auto n = websockets::encode_head(head, head_bytes);
    std::string body = "early";
    websockets::apply_mask(std::as_writable_bytes(std::span{body.data(), body.size()}), head.key);
    co_await raw.write(upgrade_request("/") +
                       std::string(reinterpret_cast<const char*>(head_bytes.data()), n) + body);
    auto peer = co_await conns.next(); // taken directly: subscribe before the next co_await
    REQUIRE(peer);
    auto messages = (*peer)->messages();
    CHECK((co_await next(messages)).text() == "early");
    co_await f.srv.stop();
  });
}

TEST_CASE("the server's generators hold event_queue events per open socket, and no more") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.event_queue = 1}};
    auto messages = f.srv.messages(); // not read until the end
    std::vector<std::shared_ptr<websockets::socket>> clients;
    std::vector<websockets::generator<websockets::event>> client_events;
    for (int i = 0; i < 3; ++i) {
      clients.push_back(co_await websockets::connect(ex, url_of(f.srv)));
      client_events.push_back(clients.back()->events());
    }
    // A reader answers a ping only once the messages before it are in a generator: with
    // room for one message per socket, every socket's first message fits.
    for (std::size_t i = 0; i < clients.size(); ++i) {
      CHECK(!co_await clients[i]->send("first"));
      while (clients[i]->buffered_amount() != 0) co_await sleep(std::chrono::milliseconds{5});
      CHECK(!co_await clients[i]->ping(bytes_of("after first")));
    }
    for (auto& events : client_events) {
      auto pong = co_await next_of<websockets::pong_event>(events);
      CHECK(pong.payload == "after first");
    }
    // The queue is full now: a second message waits, and so does the ping behind it.
    CHECK(!co_await clients[0]->send("second"));
    // (A ping passes queued data frames: it goes once the message is out.)
    while (clients[0]->buffered_amount() != 0) co_await sleep(std::chrono::milliseconds{5});
    CHECK(!co_await clients[0]->ping(bytes_of("after second")));
    CHECK(co_await quiet(client_events[0], std::chrono::milliseconds{300}));
    std::map<std::string, int> seen;
    for (int i = 0; i < 4; ++i) {
      auto m = co_await next(messages);
      ++seen[std::string{m.text()}];
    }
    CHECK(seen["first"] == 3);
    CHECK(seen["second"] == 1);
    auto pong = co_await next_of<websockets::pong_event>(client_events[0]);
    CHECK(pong.payload == "after second");
    co_await f.srv.stop();
  });
}

TEST_CASE("broadcast reaches every socket, or all but one, and encodes the frame once") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    std::vector<std::shared_ptr<websockets::socket>> clients;
    std::vector<websockets::generator<websockets::message>> inboxes;
    for (int i = 0; i < 3; ++i) {
      clients.push_back(co_await websockets::connect(ex, url_of(f.srv)));
      inboxes.push_back(clients.back()->messages());
      (void)co_await next(conns);
    }
    const auto before = websockets::detail::encoded_frames();
    co_await f.srv.broadcast({.fin = true, .opcode = opcode::text}, "to everyone");
    CHECK(websockets::detail::encoded_frames() - before == 1);
    for (auto& inbox : inboxes) {
      auto m = co_await next(inbox);
      CHECK(m.opcode == opcode::text);
      CHECK(m.text() == "to everyone");
    }
    const std::array<std::byte, 2> blob{std::byte{1}, std::byte{2}};
    co_await f.srv.broadcast({.fin = true, .opcode = opcode::binary}, std::span<const std::byte>{blob});
    for (auto& inbox : inboxes) CHECK((co_await next(inbox)).bytes().size() == 2);

    // Leaving one socket out: the others get it, still encoded once; that one does not.
    const auto left_out = f.srv.sockets().front();
    const auto before_except = websockets::detail::encoded_frames();
    co_await f.srv.broadcast({.fin = true, .opcode = opcode::text}, "not to the first", left_out.get());
    CHECK(websockets::detail::encoded_frames() - before_except == 1);
    CHECK((co_await next(inboxes[1])).text() == "not to the first");
    CHECK((co_await next(inboxes[2])).text() == "not to the first");
    CHECK(co_await quiet(inboxes[0]));

    bool refused = false;
    try {
      co_await f.srv.broadcast({.fin = false, .opcode = opcode::text}, "half");
    } catch (const std::invalid_argument&) {
      refused = true;
    }
    CHECK(refused);
    co_await f.srv.stop();
  });
}

TEST_CASE("co_write streams fragments to every socket; an empty chunk ends the stream") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto a = co_await websockets::connect(ex, url_of(f.srv));
    auto a_streams = a->streams();
    (void)co_await next(conns);
    auto b = co_await websockets::connect(ex, url_of(f.srv));
    auto b_messages = b->messages();
    (void)co_await next(conns);

    co_await f.srv.co_write(bytes_of("one "), opcode::text);
    co_await f.srv.co_write(bytes_of("two "));
    co_await f.srv.co_write(bytes_of("three"));
    co_await f.srv.co_write({});

    auto start = co_await next(a_streams);
    REQUIRE(std::holds_alternative<websockets::stream_start>(start));
    CHECK(std::get<websockets::stream_start>(start).opcode == opcode::text);
    CHECK(co_await rest_of_stream(a_streams) == "one two three");
    // b reads no streams: it gets the stream reassembled.
    CHECK((co_await next(b_messages)).text() == "one two three");
    co_await f.srv.stop();
  });
}

TEST_CASE("a socket that connects mid-stream receives nothing of that stream") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto early = co_await websockets::connect(ex, url_of(f.srv));
    auto early_messages = early->messages();
    (void)co_await next(conns);
    co_await f.srv.co_write(bytes_of("a"), opcode::text);
    auto late = co_await websockets::connect(ex, url_of(f.srv));
    auto late_messages = late->messages();
    (void)co_await next(conns);
    co_await f.srv.co_write(bytes_of("b"));
    co_await f.srv.co_write({});
    co_await f.srv.broadcast({.fin = true, .opcode = opcode::text}, "after");
    CHECK((co_await next(early_messages)).text() == "ab");
    CHECK((co_await next(early_messages)).text() == "after");
    CHECK((co_await next(late_messages)).text() == "after"); // and nothing before it
    co_await f.srv.stop();
  });
}

TEST_CASE("a send or broadcast to a socket inside a stream waits for the stream's end") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto client = co_await websockets::connect(ex, url_of(f.srv));
    auto messages = client->messages();
    auto peer = co_await next(conns);
    co_await f.srv.co_write(bytes_of("first half, "), opcode::text);
    auto sent = spawn(ex, [](std::shared_ptr<websockets::socket> p) -> asio::awaitable<void> {
      (void)co_await p->send("direct");
    }(peer));
    auto broadcast = spawn(ex, [](websockets::server& s) -> asio::awaitable<void> {
      co_await s.broadcast({.fin = true, .opcode = opcode::text}, "broadcast");
    }(f.srv));
    co_await sleep(std::chrono::milliseconds{100});
    CHECK(!*sent);
    CHECK(!*broadcast);
    (void)co_await peer->ping(bytes_of("control frames may pass"));
    co_await f.srv.co_write(bytes_of("second half"));
    co_await f.srv.co_write({});
    CHECK(co_await until(sent));
    CHECK(co_await until(broadcast));
    std::vector<std::string> texts;
    while (texts.size() < 3) texts.push_back((co_await next(messages)).payload);
    CHECK(client->is_open()); // no protocol error: nothing interleaved inside the stream
    CHECK(texts[0] == "first half, second half");
    CHECK(((texts[1] == "direct" && texts[2] == "broadcast") ||
           (texts[1] == "broadcast" && texts[2] == "direct")));
    co_await f.srv.stop();
  });
}

TEST_CASE("concurrent broadcasts and a stream keep each sender's order") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    std::vector<std::shared_ptr<websockets::socket>> clients;
    std::vector<websockets::generator<websockets::message>> inboxes;
    for (int i = 0; i < 3; ++i) {
      clients.push_back(co_await websockets::connect(ex, url_of(f.srv)));
      inboxes.push_back(clients.back()->messages());
      (void)co_await next(conns);
    }
    constexpr int count = 50;
    auto broadcaster = [](websockets::server& s, char tag) -> asio::awaitable<void> {
      for (int i = 0; i < count; ++i) {
        const std::string text = tag + std::to_string(i);
        co_await s.broadcast({.fin = true, .opcode = opcode::text}, text);
        if (i % 7 == 0) co_await sleep(std::chrono::milliseconds{1});
      }
    };
    auto streamer = [](websockets::server& s) -> asio::awaitable<void> {
      for (int i = 0; i < 20; ++i) {
        co_await s.co_write(bytes_of("s"), opcode::text);
        co_await sleep(std::chrono::milliseconds{1});
      }
      co_await s.co_write({});
    };
    auto x = spawn(ex, broadcaster(f.srv, 'x'));
    auto y = spawn(ex, broadcaster(f.srv, 'y'));
    auto z = spawn(ex, streamer(f.srv));
    CHECK(co_await until(x));
    CHECK(co_await until(y));
    CHECK(co_await until(z));
    for (auto& inbox : inboxes) {
      std::map<char, int> expected{{'x', 0}, {'y', 0}};
      bool streamed = false;
      for (int i = 0; i < 2 * count + 1; ++i) {
        auto m = co_await next(inbox);
        if (m.payload.starts_with("s")) {
          CHECK(m.payload == std::string(20, 's'));
          streamed = true;
          continue;
        }
        const char tag = m.payload[0];
        CHECK(std::stoi(m.payload.substr(1)) == expected[tag]);
        ++expected[tag];
      }
      CHECK(streamed);
    }
    co_await f.srv.stop();
  });
}

TEST_CASE("past max_connections the upgrade is refused with 503 and no event") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.max_connections = 1}};
    auto conns = f.srv.connections();
    auto first = co_await websockets::connect(ex, url_of(f.srv));
    (void)co_await next(conns);
    const auto status = co_await status_of(ex, f.srv.local_endpoint().port(), upgrade_request("/"));
    CHECK(status.starts_with("HTTP/1.1 503"));
    const auto ec = co_await connect_error(ex, url_of(f.srv));
    CHECK(ec == websockets::error::bad_status);
    CHECK(co_await quiet(conns));
    CHECK(f.srv.connection_count() == 1);
    // A place frees up when a socket leaves.
    (void)co_await first->close();
    auto second = co_await websockets::connect(ex, url_of(f.srv));
    CHECK(second->is_open());
    (void)co_await next(conns); // taken: its reader may start
    co_await f.srv.stop();
  });
}

TEST_CASE("only the url's path upgrades: other paths get 404") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.url = "ws://127.0.0.1:0/chat"}};
    auto errors = f.srv.errors();
    const auto status = co_await status_of(ex, f.srv.local_endpoint().port(), upgrade_request("/other"));
    CHECK(status.starts_with("HTTP/1.1 404"));
    CHECK((co_await next(errors)).error == websockets::error::not_found);
    auto ok = co_await websockets::connect(ex, url_of(f.srv, "/chat?room=1"));
    CHECK(ok->is_open());
    co_await f.srv.stop();
  });
}

TEST_CASE("plain HTTP requests get 426, or the handler's response") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    const std::string plain = "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    auto status = co_await status_of(ex, f.srv.local_endpoint().port(), plain);
    CHECK(status.starts_with("HTTP/1.1 426"));
    f.srv.on_http([](const websockets::http_head& request) -> asio::awaitable<std::string> {
      const std::string body = "page at " + std::string(request.target());
      co_return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    });
    raw_peer raw{ex};
    co_await raw.connect(f.srv.local_endpoint().port());
    co_await raw.write(plain);
    auto head = co_await raw.read_head();
    CHECK(head.starts_with("HTTP/1.1 200"));
    auto body = co_await raw.read_frame(std::chrono::milliseconds{100}); // not a frame: just drain
    (void)body;
    // Upgrades still work beside the handler.
    auto client = co_await websockets::connect(ex, url_of(f.srv));
    CHECK(client->is_open());
    co_await f.srv.stop();
  });
}

TEST_CASE("bad requests: 400 for a broken upgrade, 431 past max_head_size, silence times out") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.handshake_timeout = std::chrono::milliseconds{300}, .max_head_size = 512}};
    auto errors = f.srv.errors();
    const auto port = f.srv.local_endpoint().port();
    std::string no_key = upgrade_request("/");
    no_key.replace(no_key.find("Sec-WebSocket-Key"), 4, "X-No");
    CHECK((co_await status_of(ex, port, no_key)).starts_with("HTTP/1.1 400"));
    CHECK((co_await next(errors)).error == websockets::error::bad_key);
    const std::string huge = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(1000, 'p') + "\r\n\r\n";
    CHECK((co_await status_of(ex, port, huge)).starts_with("HTTP/1.1 431"));
    CHECK((co_await next(errors)).error == websockets::error::head_too_large);
    raw_peer silent{ex};
    co_await silent.connect(port);
    CHECK(co_await silent.closed_by_peer(std::chrono::seconds{3}));
    CHECK((co_await next(errors)).error == websockets::error::handshake_timeout);
    co_await f.srv.stop();
  });
}

TEST_CASE("stop closes every socket with 1001 and ends the generators") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto closes = f.srv.closes();
    auto a = co_await websockets::connect(ex, url_of(f.srv));
    auto a_events = a->events();
    (void)co_await next(conns);
    auto b = co_await websockets::connect(ex, url_of(f.srv));
    auto b_events = b->events();
    (void)co_await next(conns);
    const auto url = url_of(f.srv);
    co_await f.srv.stop();
    CHECK(f.srv.connection_count() == 0);
    CHECK((co_await next_of<websockets::close_event>(a_events)).code == 1001);
    CHECK((co_await next_of<websockets::close_event>(b_events)).code == 1001);
    CHECK((co_await next(closes)).code == 1001);
    CHECK((co_await next(closes)).code == 1001);
    CHECK(!(co_await within(closes.next(), 2s)).value().has_value());
    CHECK(!(co_await within(conns.next(), 2s)).value().has_value());
    auto after = f.srv.messages(); // subscribing after the stop ends at once
    CHECK(!(co_await within(after.next(), 2s)).value().has_value());
    co_await sleep(std::chrono::milliseconds{20});
    CHECK(!*f.listening);
    CHECK(co_await connect_error(ex, url)); // nobody listens any more
  });
}

TEST_CASE("pipe relays a fragmented message to the other sockets as it arrives") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.close_timeout = std::chrono::milliseconds{300}}}; // raw peers never answer a close
    auto conns = f.srv.connections();
    auto receiver = co_await websockets::connect(ex, url_of(f.srv));
    auto receiver_streams = receiver->streams();
    (void)co_await next(conns);
    raw_peer sender{ex};
    co_await sender.connect(f.srv.local_endpoint().port());
    (void)co_await sender.upgrade();
    (void)co_await next(conns);

    auto relay = spawn(ex, [](websockets::server& s) -> asio::awaitable<void> {
      auto streams = s.streams();
      while (auto ev = co_await streams.next())
        if (auto* start = std::get_if<websockets::stream_start>(&*ev))
          asio::co_spawn(co_await asio::this_coro::executor, websockets::pipe(start->peer, s),
                         asio::detached);
    }(f.srv));

    co_await sender.send_frame(opcode::binary, "image ", false);
    // The first piece is relayed before the sender finishes.
    auto start = co_await next(receiver_streams);
    REQUIRE(std::holds_alternative<websockets::stream_start>(start));
    CHECK(std::get<websockets::stream_start>(start).opcode == opcode::binary);
    auto first = co_await next(receiver_streams);
    REQUIRE(std::holds_alternative<websockets::stream_data>(first));
    std::string got = std::get<websockets::stream_data>(first).chunk;
    co_await sender.send_frame(opcode::continuation, "bytes", true);
    got += co_await rest_of_stream(receiver_streams);
    CHECK(got == "image bytes");
    // The sender is not sent its own stream.
    CHECK(!(co_await sender.read_frame(std::chrono::milliseconds{200})));
    co_await f.srv.stop();
    CHECK(co_await until(relay));
  });
}

TEST_CASE("pipe with include_sender echoes the stream to its sender too") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.close_timeout = std::chrono::milliseconds{300}}}; // raw peers never answer a close
    auto streams = f.srv.streams();
    raw_peer sender{ex};
    co_await sender.connect(f.srv.local_endpoint().port());
    (void)co_await sender.upgrade();
    co_await sender.send_frame(opcode::text, "ec", false);
    co_await sender.send_frame(opcode::continuation, "ho", true);
    auto ev = co_await streams.next();
    REQUIRE(ev);
    auto* start = std::get_if<websockets::stream_start>(&*ev);
    REQUIRE(start);
    auto piping = spawn(ex, websockets::pipe(start->peer, f.srv, {.include_sender = true}));
    while (auto more = co_await within(streams.next(), 2s)) // keep reading while it relays
      if (!*more || std::holds_alternative<websockets::stream_end>(**more)) break;
    CHECK(co_await until(piping));
    CHECK(co_await read_message(sender) == "echo");
    co_await f.srv.stop();
  });
}

TEST_CASE("a send to a socket does not release its stream_start before a consumer takes it") {
  // The chat sample's case: while the stream's consumer has not yet taken stream_start,
  // another task sends to the streaming socket. The reader must still wait, or the pipe
  // attached afterwards misses the stream it was meant for.
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.close_timeout = std::chrono::milliseconds{300}}}; // raw peers never answer a close
    auto conns = f.srv.connections();
    auto streams = f.srv.streams();
    raw_peer sender{ex};
    co_await sender.connect(f.srv.local_endpoint().port());
    (void)co_await sender.upgrade();
    auto peer = co_await next(conns);
    co_await sender.send_frame(opcode::text, "ec", false);
    co_await sender.send_frame(opcode::continuation, "ho", true);
    co_await sleep(std::chrono::milliseconds{50}); // the reader reaches stream_start
    CHECK(!co_await peer->send("notice"));
    co_await sleep(std::chrono::milliseconds{100}); // a released reader would read on here
    auto ev = co_await streams.next();
    REQUIRE(ev);
    auto* start = std::get_if<websockets::stream_start>(&*ev);
    REQUIRE(start);
    auto piping = spawn(ex, websockets::pipe(start->peer, f.srv, {.include_sender = true}));
    while (auto more = co_await within(streams.next(), 2s))
      if (!*more || std::holds_alternative<websockets::stream_end>(**more)) break;
    CHECK(co_await until(piping));
    auto notice = co_await sender.read_frame();
    REQUIRE(notice);
    CHECK(notice->payload == "notice");
    CHECK(co_await read_message(sender) == "echo");
    co_await f.srv.stop();
  });
}

TEST_CASE("accept() takes over a connection another server accepted, with the bytes it read") {
  run([](executor ex) -> asio::awaitable<void> {
    websockets::server srv{ex, local()};
    asio::ip::tcp::acceptor acceptor{ex, {asio::ip::make_address("127.0.0.1"), 0}};
    const auto port = acceptor.local_endpoint().port();
    auto conns = srv.connections();
    auto client_done = std::make_shared<std::shared_ptr<websockets::socket>>();
    auto connecting = spawn(ex, [](executor e, std::uint16_t p,
                                   std::shared_ptr<std::shared_ptr<websockets::socket>> out)
                                    -> asio::awaitable<void> {
      *out = co_await websockets::connect(e, "ws://127.0.0.1:" + std::to_string(p) + "/");
    }(ex, port, client_done));
    auto tcp = co_await acceptor.async_accept(asio::use_awaitable);
    // The "HTTP server" reads the first bytes itself, then hands over.
    std::array<char, 10> first{};
    const auto n = co_await asio::async_read(tcp, asio::buffer(first), asio::use_awaitable);
    co_await srv.accept(std::move(tcp), std::string_view{first.data(), n});
    CHECK(co_await until(connecting));
    REQUIRE(*client_done);
    auto peer = co_await next(conns);
    auto messages = peer->messages();
    (void)co_await (*client_done)->send("handed over");
    CHECK((co_await next(messages)).text() == "handed over");
    co_await srv.stop();
  });
}

TEST_CASE("localhost listens on both loopback addresses; urls are checked") {
  run([](executor ex) -> asio::awaitable<void> {
    websockets::server srv{ex, {.url = "ws://localhost:0/"}};
    asio::co_spawn(ex, srv.listen(), asio::detached);
    const auto port = std::to_string(srv.local_endpoint().port());
    CHECK(srv.local_endpoint().port() != 0);
    auto v4 = co_await websockets::connect(ex, "ws://127.0.0.1:" + port + "/");
    CHECK(v4->is_open());
    asio::ip::tcp::acceptor probe{ex};
    std::error_code no_v6;
    probe.open(asio::ip::tcp::v6(), no_v6);
    if (!no_v6) probe.bind({asio::ip::make_address("::1"), 0}, no_v6);
    if (!no_v6) {
      auto v6 = co_await websockets::connect(ex, "ws://[::1]:" + port + "/");
      CHECK(v6->is_open());
    } else {
      MESSAGE("no IPv6 loopback here: ::1 not checked");
    }
    co_await srv.stop();
    CHECK_THROWS_AS(websockets::server(ex, {.url = "wss://localhost:0/"}), std::invalid_argument);
    CHECK_THROWS_AS(websockets::server(ex, {.url = "http://localhost:0/"}), std::invalid_argument);
    CHECK_THROWS_AS(websockets::server(ex, {.url = "not a url"}), std::invalid_argument);
  });
}

TEST_CASE("a peer that drops does not disturb the others") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto closes = f.srv.closes();
    auto stays = co_await websockets::connect(ex, url_of(f.srv));
    auto inbox = stays->messages();
    (void)co_await next(conns);
    raw_peer drops{ex};
    co_await drops.connect(f.srv.local_endpoint().port());
    (void)co_await drops.upgrade();
    (void)co_await next(conns);
    co_await drops.send_frame(opcode::text, std::string(100, 'x').substr(0, 50), false);
    drops.close(); // in the middle of a message
    CHECK((co_await next(closes)).code == 1006);
    co_await f.srv.broadcast({.fin = true, .opcode = opcode::text}, "still here");
    CHECK((co_await next(inbox)).text() == "still here");
    CHECK(f.srv.connection_count() == 1);
    co_await f.srv.stop();
  });
}

TEST_CASE("the subprotocol is the server's first choice among the client's offers") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.subprotocols = {"chat.v2", "chat.v1"}}};
    auto conns = f.srv.connections();
    websockets::connect_options both;
    both.handshake.subprotocols = {"chat.v1", "chat.v2"};
    auto client = co_await websockets::connect(ex, url_of(f.srv), both);
    CHECK(client->subprotocol() == "chat.v2");
    CHECK((co_await next(conns))->subprotocol() == "chat.v2");

    websockets::connect_options other;
    other.handshake.subprotocols = {"mqtt"};
    auto none = co_await websockets::connect(ex, url_of(f.srv), other);
    CHECK(none->subprotocol().empty());
    co_await f.srv.stop();
  });
}

TEST_CASE("allowed_origins refuses other browsers' origins with 403; non-browsers pass") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.allowed_origins = {"https://chat.example"}}};
    auto errors = f.srv.errors();
    const auto port = f.srv.local_endpoint().port();
    const auto with_origin = [](std::string_view origin) {
      std::string request = upgrade_request("/");
      request.insert(request.size() - 2, "Origin: " + std::string(origin) + "\r\n");
      return request;
    };
    CHECK(co_await status_of(ex, port, with_origin("https://evil.example")) == "HTTP/1.1 403 Forbidden");
    CHECK((co_await next(errors)).error == websockets::error::forbidden);
    CHECK(co_await status_of(ex, port, with_origin("HTTPS://Chat.Example")) == "HTTP/1.1 101 Switching Protocols");
    CHECK(co_await status_of(ex, port, upgrade_request("/")) == "HTTP/1.1 101 Switching Protocols");
    co_await f.srv.stop();
  });
}

TEST_CASE("an accept hook sees path, query and cookies, refuses with its status, or attaches user data") {
  struct user {
    std::string name;
  };
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.subprotocols = {"v1"}}};
    f.srv.on_upgrade([](const websockets::upgrade_request& request) -> asio::awaitable<websockets::accept_decision> {
      const auto session = request.cookie("session");
      if (!session || *session != "s3cret")
        co_return websockets::accept_decision{
            .status = 401, .body = "log in first", .headers = {{"WWW-Authenticate", "Cookie"}}};
      const auto url = request.head().target_url();
      const auto room = url.params().find("room");
      if (room == url.params().end()) throw std::runtime_error("no room"); // refused with 500
      websockets::accept_decision accepted;
      accepted.user_data = user{"ada in " + std::string((*room).value)};
      accepted.subprotocol = request.subprotocols().empty() ? "" : request.subprotocols().back();
      accepted.headers = {{"Set-Cookie", "seen=1"}};
      co_return accepted;
    });
    auto conns = f.srv.connections();
    auto errors = f.srv.errors();
    const auto port = f.srv.local_endpoint().port();

    raw_peer anonymous{ex};
    co_await anonymous.connect(port);
    const std::string refused = co_await anonymous.upgrade("/?room=1");
    CHECK(refused.starts_with("HTTP/1.1 401 Unauthorized"));
    CHECK(refused.find("WWW-Authenticate: Cookie\r\n") != std::string::npos);
    CHECK((co_await next(errors)).error == websockets::error::forbidden);

    raw_peer roomless{ex};
    co_await roomless.connect(port);
    CHECK((co_await roomless.upgrade("/", "Cookie: theme=dark; session=s3cret\r\n")).starts_with("HTTP/1.1 500"));

    websockets::connect_options logged_in;
    logged_in.handshake.subprotocols = {"v1", "v0"};
    logged_in.handshake.extra_headers = {{"Cookie", "theme=dark; session=\"s3cret\""}};
    auto client = co_await websockets::connect(ex, url_of(f.srv, "/?room=lobby"), logged_in);
    CHECK(client->subprotocol() == "v0"); // the hook's choice over the server's list
    auto peer = co_await next(conns);
    REQUIRE(peer->user_data().has_value());
    CHECK(std::any_cast<user&>(peer->user_data()).name == "ada in lobby");
    co_await f.srv.stop();
  });
}

TEST_CASE("an accept hook choosing a subprotocol the client did not offer refuses with 500") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    f.srv.on_upgrade([](const websockets::upgrade_request&) -> asio::awaitable<websockets::accept_decision> {
      co_return websockets::accept_decision{.subprotocol = "never-offered"};
    });
    CHECK(co_await status_of(ex, f.srv.local_endpoint().port(), upgrade_request("/")) ==
          "HTTP/1.1 500 Internal Server Error");
    co_await f.srv.stop();
  });
}
