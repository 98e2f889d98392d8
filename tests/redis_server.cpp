// Servers joined through Redis (server_options::redis), against a real redis-server
// started here on a free port: a broadcast on one instance reaches the peers of every
// instance once, co_write streams cross whole and in order, and an instance that loses
// Redis says so, keeps serving its own peers, and relays again once Redis is back.
#include "loopback.hpp"
#include "redis_process.hpp"

#include <websockets/error.hpp>

#include <array>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>

namespace {

using namespace loopback;
using redis_test::redis_process;
using websockets::opcode;
using client_ptr = std::shared_ptr<websockets::socket>;

websockets::frame_head whole(opcode op) { return {.fin = true, .opcode = op}; }

/// A server on 127.0.0.1 joined to the others on `redis_url`.
struct instance : fixture {
  instance(executor ex, const std::string& redis_url, websockets::server_options options = {})
      : fixture(ex, with_redis(std::move(options), redis_url)) {}
  static websockets::server_options with_redis(websockets::server_options options, const std::string& url) {
    options.redis = url;
    return options;
  }
};

/// Streams wait for slow peers rather than close them (which the default policy does
/// past 4 MiB queued).
websockets::server_options lossless() {
  websockets::server_options options;
  options.overflow = websockets::overflow_policy::wait;
  return options;
}

/// Waits up to 10 s for `ready()`, failing the test with `what` after that.
asio::awaitable<void> until(const std::function<bool()>& ready, std::string_view what) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!ready()) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "waited in vain for " << what);
    co_await sleep(10ms);
  }
}

// (Lists are std::arrays, never braced initializer lists: g++ 12 miscompiles those in
// coroutines.)
template <class... Instances>
asio::awaitable<void> all_linked(Instances&... servers) {
  const std::array<const instance*, sizeof...(Instances)> list{&servers...};
  co_await until([&] { return std::ranges::all_of(list, [](const instance* i) { return i->srv.redis_connected(); }); },
                 "every server's Redis link");
}

/// A client of `srv`, once the server has it registered (so a broadcast reaches it).
asio::awaitable<client_ptr> join(executor ex, instance& at) {
  const auto before = at.srv.connection_count();
  auto client = co_await websockets::connect(ex, url_of(at.srv));
  co_await until([&] { return at.srv.connection_count() > before; }, "the server's socket");
  co_return client;
}

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 gen(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(gen());
  return out;
}

std::string every_byte() {
  std::string out;
  for (int i = 0; i < 256; ++i) out.push_back(static_cast<char>(i));
  return out;
}

} // namespace

TEST_CASE("an unusable redis url is refused when the server is made") {
  run([](executor ex) -> asio::awaitable<void> {
    websockets::server_options options;
    options.redis = "http://127.0.0.1/";
    CHECK_THROWS_AS(websockets::server(ex, local(options)), std::invalid_argument);
    options.redis = "redis://user:secret@127.0.0.1/";
    CHECK_THROWS_AS(websockets::server(ex, local(options)), std::invalid_argument);
    co_return;
  });
}

TEST_CASE("two servers: a broadcast reaches the peers of both once, text and binary intact, no echo") {
  redis_process redis;
  run([&](executor ex) -> asio::awaitable<void> {
    instance a{ex, redis.url()}, b{ex, redis.url()};
    co_await all_linked(a, b);
    auto a1 = co_await join(ex, a);
    auto a2 = co_await join(ex, a);
    auto b1 = co_await join(ex, b);
    auto a1_messages = a1->messages(), a2_messages = a2->messages(), b1_messages = b1->messages();

    co_await a.srv.broadcast(whole(opcode::text), "from a");
    const auto binary = every_byte() + random_bytes(100'000, 1);
    co_await b.srv.broadcast(whole(opcode::binary), std::as_bytes(std::span{binary.data(), binary.size()}));
    const std::array inboxes{&a1_messages, &a2_messages, &b1_messages};
    // Instances do not order each other's broadcasts: a peer of b may get b's first.
    for (auto* messages : inboxes) {
      auto first = co_await next(*messages);
      auto second = co_await next(*messages);
      if (first.opcode == opcode::binary) std::swap(first, second);
      CHECK(first.opcode == opcode::text);
      CHECK(first.text() == "from a");
      CHECK(second.opcode == opcode::binary);
      CHECK(second.payload == binary);
    }
    // `except` leaves out a local socket only: the other instance's peers all get it.
    co_await a.srv.broadcast(whole(opcode::text), "not to a1", a.srv.sockets().front().get());
    CHECK((co_await next(a2_messages)).text() == "not to a1");
    CHECK((co_await next(b1_messages)).text() == "not to a1");
    // Once each: nothing more, no instance got its own broadcast back.
    CHECK(co_await quiet(a1_messages, 300ms));
    CHECK(co_await quiet(a2_messages));
    CHECK(co_await quiet(b1_messages));
    co_await a.srv.stop();
    co_await b.srv.stop();
  }, 30s);
}

TEST_CASE("three servers broadcasting at once: every peer gets every message once, each sender's in order") {
  redis_process redis;
  run([&](executor ex) -> asio::awaitable<void> {
    instance a{ex, redis.url()}, b{ex, redis.url()}, c{ex, redis.url()};
    // A fourth on another channel hears none of it.
    instance elsewhere{ex, redis.url("/another")};
    const std::array servers{&a, &b, &c};
    co_await all_linked(a, b, c, elsewhere);
    std::vector<client_ptr> clients;
    std::vector<websockets::generator<websockets::message>> inboxes;
    for (auto* i : servers) {
      clients.push_back(co_await join(ex, *i));
      inboxes.push_back(clients.back()->messages());
    }
    auto outsider = co_await join(ex, elsewhere);
    auto outsider_messages = outsider->messages();

    constexpr int per_server = 200;
    auto sends = [&](instance& from, char name) -> asio::awaitable<void> {
      for (int n = 0; n < per_server; ++n) co_await from.srv.broadcast(whole(opcode::text), name + std::to_string(n));
    };
    co_await (sends(a, 'a') && sends(b, 'b') && sends(c, 'c'));

    for (auto& messages : inboxes) {
      std::map<char, int> next_of_sender{{'a', 0}, {'b', 0}, {'c', 0}};
      for (int n = 0; n < 3 * per_server; ++n) {
        const auto m = co_await next(messages);
        const char sender = m.payload.at(0);
        REQUIRE(next_of_sender.contains(sender));
        CHECK(m.payload.substr(1) == std::to_string(next_of_sender[sender]++));
      }
      CHECK(co_await quiet(messages));
    }
    CHECK(co_await quiet(outsider_messages));
    const std::array everyone{&a, &b, &c, &elsewhere};
    for (auto* i : everyone) co_await i->srv.stop();
  }, 60s);
}

TEST_CASE("a co_write stream crosses instances: 8 MiB of binary, whole and in order, read as a stream or a message") {
  redis_process redis;
  run([&](executor ex) -> asio::awaitable<void> {
    instance a{ex, redis.url(), lossless()}, b{ex, redis.url(), lossless()};
    co_await all_linked(a, b);
    auto local = co_await join(ex, a);
    auto streaming = co_await join(ex, b);
    auto whole_reader = co_await join(ex, b);
    auto local_messages = local->messages();
    auto streaming_events = streaming->streams();
    auto streaming_messages = streaming->messages();
    auto whole_messages = whole_reader->messages();

    const auto payload = random_bytes(8 << 20, 2);
    const auto bytes = std::as_bytes(std::span{payload.data(), payload.size()});
    constexpr std::size_t piece = 64 << 10;
    bool started_at_b = false;
    // b's broadcast during the remote stream waits there for the stream's end, which
    // comes after it: the writer, the broadcast and the readers run at once.
    auto write = [&]() -> asio::awaitable<void> {
      co_await a.srv.co_write(bytes.first(piece), opcode::binary);
      co_await until([&] { return started_at_b; }, "the stream's start at b");
      for (std::size_t at = piece; at < bytes.size(); at += piece)
        co_await a.srv.co_write(bytes.subspan(at, std::min(piece, bytes.size() - at)), opcode::binary);
      co_await a.srv.co_write({});
    };
    auto broadcast_at_b = [&]() -> asio::awaitable<void> {
      co_await until([&] { return started_at_b; }, "the stream's start at b");
      co_await b.srv.broadcast(whole(opcode::text), "after the stream");
    };
    auto read = [&]() -> asio::awaitable<void> {
      auto start = co_await next(streaming_events, 10s);
      REQUIRE(std::holds_alternative<websockets::stream_start>(start));
      started_at_b = true;
      CHECK(std::get<websockets::stream_start>(start).opcode == opcode::binary);
      const auto streamed = co_await rest_of_stream(streaming_events);
      CHECK(streamed.size() == payload.size());
      CHECK(streamed == payload);
      CHECK((co_await next(streaming_messages)).text() == "after the stream");

      const auto reassembled = co_await next(whole_messages, 10s);
      CHECK(reassembled.opcode == opcode::binary);
      CHECK(reassembled.payload == payload);
      CHECK((co_await next(whole_messages)).text() == "after the stream");

      CHECK((co_await next(local_messages, 10s)).payload == payload);
      CHECK((co_await next(local_messages)).text() == "after the stream");
    };
    co_await (write() && broadcast_at_b() && read());
    co_await a.srv.stop();
    co_await b.srv.stop();
  }, 60s);
}

TEST_CASE("Redis killed: every server reports it once and serves its own peers; restarted: they relay again") {
  redis_process redis;
  run([&](executor ex) -> asio::awaitable<void> {
    instance a{ex, redis.url()}, b{ex, redis.url()};
    auto a_errors = a.srv.errors();
    auto b_errors = b.srv.errors();
    co_await all_linked(a, b);
    auto a1 = co_await join(ex, a);
    auto b1 = co_await join(ex, b);
    auto a1_messages = a1->messages(), b1_messages = b1->messages();
    co_await a.srv.broadcast(whole(opcode::text), "before");
    CHECK((co_await next(b1_messages)).text() == "before");
    CHECK((co_await next(a1_messages)).text() == "before");

    redis.kill();
    const std::array error_streams{&a_errors, &b_errors};
    for (auto* errors : error_streams) {
      const auto reported = co_await next(*errors);
      CHECK(reported.peer == nullptr);
      CHECK(reported.error == websockets::error::redis_unavailable);
    }
    co_await until([&] { return !a.srv.redis_connected() && !b.srv.redis_connected(); }, "both links down");
    // Each instance keeps serving its own: a's broadcast reaches a1, not b1.
    co_await a.srv.broadcast(whole(opcode::text), "while away");
    CHECK((co_await next(a1_messages)).text() == "while away");
    CHECK(co_await quiet(b1_messages, 300ms));
    // Sockets still come and go and talk to their own server.
    auto a_messages = a.srv.messages();
    auto a2 = co_await join(ex, a);
    CHECK(!co_await a2->send("hello a"));
    CHECK((co_await next(a_messages)).text() == "hello a");
    co_await a2->close();
    // Several reconnection attempts, one report each.
    co_await sleep(500ms);
    CHECK(co_await quiet(a_errors, 10ms));
    CHECK(co_await quiet(b_errors, 10ms));

    redis.start();
    co_await all_linked(a, b);
    co_await b.srv.broadcast(whole(opcode::text), "after");
    CHECK((co_await next(a1_messages)).text() == "after");
    CHECK((co_await next(b1_messages)).text() == "after");
    co_await a.srv.stop();
    co_await b.srv.stop();
  }, 60s);
}

TEST_CASE("a stream cut by its server's stop ends early at the other instances, which go on") {
  redis_process redis;
  run([&](executor ex) -> asio::awaitable<void> {
    instance a{ex, redis.url()}, b{ex, redis.url()};
    co_await all_linked(a, b);
    auto b1 = co_await join(ex, b);
    auto b1_streams = b1->streams();
    auto b1_messages = b1->messages();
    co_await a.srv.co_write(bytes_of("cut "), opcode::text);
    co_await a.srv.co_write(bytes_of("short"));
    auto start = co_await next(b1_streams);
    REQUIRE(std::holds_alternative<websockets::stream_start>(start));
    co_await a.srv.stop();
    CHECK(co_await rest_of_stream(b1_streams) == "cut short");
    // The slot is free again: b streams and broadcasts as before.
    co_await b.srv.broadcast(whole(opcode::text), "next");
    CHECK((co_await next(b1_messages)).text() == "next");
    co_await b.srv.stop();
  }, 30s);
}

TEST_CASE("a pipe relays a peer's stream to the peers of every instance, the sender left out") {
  redis_process redis;
  run([&](executor ex) -> asio::awaitable<void> {
    instance a{ex, redis.url(), lossless()}, b{ex, redis.url(), lossless()};
    co_await all_linked(a, b);
    // a relays every stream its peers send, as the seed's example does.
    auto relay = [](websockets::server& s, websockets::generator<websockets::stream_event> streams)
        -> asio::awaitable<void> {
      while (auto ev = co_await streams.next())
        if (auto* start = std::get_if<websockets::stream_start>(&*ev))
          asio::co_spawn(co_await asio::this_coro::executor, websockets::pipe(start->peer, s), asio::detached);
    };
    asio::co_spawn(ex, relay(a.srv, a.srv.streams()), asio::detached);
    auto sender = co_await join(ex, a);
    auto neighbour = co_await join(ex, a);
    auto remote = co_await join(ex, b);
    auto sender_messages = sender->messages();
    auto neighbour_messages = neighbour->messages();
    auto remote_messages = remote->messages();

    // One frame past the server's stream_threshold (64 KiB) is read as a stream.
    const auto payload = random_bytes(1 << 20, 3);
    CHECK(!co_await sender->send(std::as_bytes(std::span{payload.data(), payload.size()})));
    const auto at_neighbour = co_await next(neighbour_messages);
    CHECK(at_neighbour.opcode == opcode::binary);
    CHECK(at_neighbour.payload == payload);
    const auto at_remote = co_await next(remote_messages);
    CHECK(at_remote.opcode == opcode::binary);
    CHECK(at_remote.payload == payload);
    CHECK(co_await quiet(sender_messages, 300ms));
    co_await a.srv.stop();
    co_await b.srv.stop();
  }, 30s);
}
