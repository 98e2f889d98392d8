// The Redis link (lib/redis_link.hpp) against a real redis-server, started here on a
// free port and killed at the end: links on one channel share messages and streams
// once each and never echo, binary payloads of every byte value and of several MiB
// pass intact, and a Redis killed and restarted mid-test is reported, counted and
// reconnected to, with the receivers told what they missed.
#include "loopback.hpp"

#include "redis_link.hpp"
#include "redis_server.hpp"

#include <websockets/error.hpp>

#include <asio/ip/tcp.hpp>

#include <csignal>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using websockets::opcode;
using websockets::detail::parse_redis_url;
using websockets::detail::redis_kind;
using websockets::detail::redis_link;
using websockets::detail::redis_link_handlers;
using websockets::detail::redis_link_options;
using websockets::detail::redis_record;
using bytes = std::vector<std::byte>;
using redis_server::free_port;
using redis_server::redis_process;

// ---- Links that keep what they get ----

/// A record as received, with its payload kept.
struct kept {
  redis_kind kind;
  opcode op;
  std::uint64_t instance;
  std::uint64_t sequence;
  std::uint64_t stream;
  std::uint64_t missed;
  bytes payload;
};

/// A link and everything it reported.
struct peer {
  peer(asio::any_io_executor ex, const std::string& url, redis_link_options options = fast())
      : link(std::move(ex), url,
             redis_link_handlers{
                 .on_record = [this](const redis_record& r) {
                   records.push_back({r.kind, r.opcode, r.instance, r.sequence, r.stream, r.missed,
                                      bytes(r.payload.begin(), r.payload.end())});
                   if (on_record) on_record(r);
                 },
                 .on_error = [this](std::error_code ec, std::string_view detail) {
                   errors.push_back(ec);
                   details.emplace_back(detail);
                 },
                 .on_connected = [this] { ++connections; }},
             options) {
    link.start();
  }

  static redis_link_options fast() {
    return {.initial_backoff = 20ms, .max_backoff = 200ms, .connect_timeout = 2s};
  }

  /// The records of `kind` from `from` (any instance when 0).
  [[nodiscard]] std::vector<kept> of(redis_kind kind, std::uint64_t from = 0) const {
    std::vector<kept> out;
    for (const auto& r : records)
      if (r.kind == kind && (from == 0 || r.instance == from)) out.push_back(r);
    return out;
  }

  redis_link link;
  std::vector<kept> records;
  std::vector<std::error_code> errors;
  std::vector<std::string> details;
  int connections = 0;
  std::function<void(const redis_record&)> on_record;
};

/// The peers named. (GCC 12 cannot build a braced list of pointers in a coroutine.)
template <class... Peers>
std::vector<peer*> group(Peers&... peers) {
  std::vector<peer*> out;
  (out.push_back(&peers), ...);
  return out;
}

/// Waits (polling) until `ready()`, failing the test after `limit`.
asio::awaitable<void> until(std::function<bool()> ready, std::string_view what,
                            std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!ready()) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "timed out waiting: " << what);
    co_await loopback::sleep(5ms);
  }
}

asio::awaitable<void> all_connected(const std::vector<peer*>& peers) {
  co_await until([&] { return std::ranges::all_of(peers, [](peer* p) { return p->link.connected(); }); },
                 "every link connected");
}

bytes every_byte(std::size_t size) {
  bytes out(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::byte>(i % 256);
  return out;
}

bytes random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 gen(seed);
  bytes out(size);
  for (auto& b : out) b = static_cast<std::byte>(gen());
  return out;
}

std::span<const std::byte> as_bytes(std::string_view s) { return std::as_bytes(std::span{s.data(), s.size()}); }

bytes bytes_of(std::string_view s) {
  const auto b = as_bytes(s);
  return {b.begin(), b.end()};
}

/// Runs the coroutine `body(executor, redis)` against a redis-server of its own.
template <class Body>
void with_redis(Body body, std::chrono::milliseconds limit = 60s) {
  redis_process redis;
  loopback::run([&](loopback::executor ex) -> asio::awaitable<void> { co_await body(ex, redis); }, limit);
}

/// Nobody got a record of its own.
void check_no_echo(const std::vector<peer*>& peers) {
  for (peer* p : peers)
    for (const auto& r : p->records) CHECK(r.instance != p->link.instance());
}

} // namespace

TEST_CASE("redis urls name a host, a port and a channel") {
  auto t = parse_redis_url("redis://127.0.0.1:6380/news");
  CHECK(t.host == "127.0.0.1");
  CHECK(t.port == 6380);
  CHECK(t.channel == "news");
  t = parse_redis_url("redis://cache.example");
  CHECK(t.host == "cache.example");
  CHECK(t.port == 6379);
  CHECK(t.channel == "websockets");
  CHECK(parse_redis_url("redis://[::1]:7000/").host == "::1");
  CHECK(parse_redis_url("redis://[::1]:7000/").channel == "websockets");
  CHECK(parse_redis_url("redis://h/a%20b").channel == "a b");
  CHECK_THROWS_AS((void)parse_redis_url("http://127.0.0.1/"), std::invalid_argument);
  CHECK_THROWS_AS((void)parse_redis_url("redis://"), std::invalid_argument);
  CHECK_THROWS_AS((void)parse_redis_url("redis://h:0/"), std::invalid_argument);
  CHECK_THROWS_AS((void)parse_redis_url("redis://h:70000/"), std::invalid_argument);
  CHECK_THROWS_AS((void)parse_redis_url("redis://user:secret@h/"), std::invalid_argument);
  CHECK_THROWS_AS((void)parse_redis_url("not a url"), std::invalid_argument);
}

TEST_CASE("without Redis a link reports it once, drops what is published and stops cleanly") {
  const auto port = free_port(); // nobody listens there
  loopback::run([port](loopback::executor ex) -> asio::awaitable<void> {
    peer a(ex, "redis://127.0.0.1:" + std::to_string(port));
    co_await until([&] { return !a.errors.empty(); }, "the error");
    CHECK(a.errors.front() == websockets::error::redis_unavailable);
    CHECK(a.errors.front().message().find("Redis") != std::string::npos);
    CHECK_FALSE(a.details.front().empty());
    CHECK_FALSE(a.link.connected());
    CHECK_FALSE(a.link.publish_message(opcode::text, as_bytes("lost")));
    const auto s = a.link.publish_stream_start(opcode::binary);
    CHECK_FALSE(a.link.publish_fragment(s, as_bytes("lost too")));
    CHECK_FALSE(a.link.publish_stream_end(s));
    CHECK(a.link.stats().dropped == 4);
    co_await loopback::sleep(300ms); // several attempts, one report
    CHECK(a.errors.size() == 1);
    a.link.stop();
  });
}

TEST_CASE("two links exchange whole messages, binary intact, none sees its own") {
  with_redis([](loopback::executor ex, redis_process& redis) -> asio::awaitable<void> {
    peer a(ex, redis.url("/pair")), b(ex, redis.url("/pair"));
    co_await all_connected(group(a, b));
    CHECK(a.link.instance() != b.link.instance());
    const bytes all = every_byte(256 * 4);
    const bytes big = random_bytes(6 << 20, 1);
    CHECK(a.link.publish_message(opcode::text, as_bytes("hello from a")));
    CHECK(a.link.publish_message(opcode::binary, all));
    CHECK(a.link.publish_message(opcode::binary, {}));
    CHECK(a.link.publish_message(opcode::binary, big));
    CHECK(b.link.publish_message(opcode::text, as_bytes("hello from b")));
    co_await until([&] { return b.records.size() == 4 && a.records.size() == 1; }, "the messages");
    co_await loopback::sleep(100ms); // and nothing more: no echo, no duplicate
    REQUIRE(b.records.size() == 4);
    REQUIRE(a.records.size() == 1);
    CHECK(b.records[0].kind == redis_kind::message);
    CHECK(b.records[0].op == opcode::text);
    CHECK(b.records[0].payload == bytes_of("hello from a"));
    CHECK(b.records[0].instance == a.link.instance());
    CHECK(b.records[1].op == opcode::binary);
    CHECK(b.records[1].payload == all);
    CHECK(b.records[2].payload.empty());
    CHECK(b.records[3].payload == big);
    CHECK(b.records[3].sequence == b.records[0].sequence + 3);
    CHECK(a.records[0].payload == bytes_of("hello from b"));
    CHECK(a.records[0].instance == b.link.instance());
    check_no_echo(group(a, b));
    CHECK(a.link.stats().own == 5); // hello and four messages came back and were skipped
    CHECK(a.link.stats().dropped == 0);
    CHECK(b.link.stats().received == 4);
    CHECK(b.link.stats().missed == 0);
    CHECK(a.errors.empty());
    CHECK(b.errors.empty());
  }, 30s);
}

TEST_CASE("links on other channels hear nothing; a foreign publisher on the channel is skipped") {
  with_redis([](loopback::executor ex, redis_process& redis) -> asio::awaitable<void> {
    peer a(ex, redis.url("/one")), b(ex, redis.url("/two")), c(ex, redis.url("/one"));
    co_await all_connected(group(a, b, c));
    CHECK(a.link.publish_message(opcode::text, as_bytes("for one")));
    co_await until([&] { return c.records.size() == 1; }, "the message on /one");
    co_await loopback::sleep(100ms);
    CHECK(b.records.empty());
    CHECK(c.link.stats().malformed == 0);
  }, 30s);
}

TEST_CASE("three links relay to each other once each, in each publisher's order") {
  with_redis([](loopback::executor ex, redis_process& redis) -> asio::awaitable<void> {
    constexpr int count = 200;
    const bytes big = random_bytes(3 << 20, 7);
    peer a(ex, redis.url()), b(ex, redis.url()), c(ex, redis.url());
    const auto peers = group(a, b, c);
    co_await all_connected(peers);
    for (int i = 0; i < count; ++i)
      for (peer* p : peers) {
        const std::string text = std::to_string(p->link.instance()) + ":" + std::to_string(i);
        CHECK(p->link.publish_message(opcode::text, as_bytes(text)));
      }
    CHECK(c.link.publish_message(opcode::binary, big));
    co_await until([&] { return a.records.size() == 2 * count + 1 && b.records.size() == 2 * count + 1 &&
                                c.records.size() == 2 * count; },
                   "every message at every other link");
    co_await loopback::sleep(100ms);
    check_no_echo(peers);
    for (peer* receiver : peers) {
      CHECK(receiver->records.size() == (receiver == &c ? 2 * count : 2 * count + 1));
      for (peer* sender : peers) {
        if (sender == receiver) continue;
        const auto got = receiver->of(redis_kind::message, sender->link.instance());
        REQUIRE(got.size() >= count);
        for (int i = 0; i < count; ++i) {
          const std::string text = std::to_string(sender->link.instance()) + ":" + std::to_string(i);
          CHECK(got[static_cast<std::size_t>(i)].payload == bytes_of(text));
        }
        if (sender == &c) CHECK(got.back().payload == big);
      }
      CHECK(receiver->link.stats().missed == 0);
    }
  }, 60s);
}

TEST_CASE("streams arrive whole and in order, interleaved across instances") {
  with_redis([](loopback::executor ex, redis_process& redis) -> asio::awaitable<void> {
    peer a(ex, redis.url()), b(ex, redis.url()), c(ex, redis.url());
    co_await all_connected(group(a, b, c));
    // A streams 8 MiB of random bytes in 64 KiB pieces while B streams text and sends
    // a message in the middle of it.
    const bytes big = random_bytes(8 << 20, 3);
    constexpr std::size_t piece = 64 << 10;
    const auto sa = a.link.publish_stream_start(opcode::binary);
    const auto sb = b.link.publish_stream_start(opcode::text);
    for (std::size_t at = 0, i = 0; at < big.size(); at += piece, ++i) {
      CHECK(a.link.publish_fragment(sa, std::span{big}.subspan(at, std::min(piece, big.size() - at))));
      if (i < 10) CHECK(b.link.publish_fragment(sb, as_bytes("line " + std::to_string(i) + "\n")));
      if (i == 5) CHECK(b.link.publish_message(opcode::text, as_bytes("aside")));
    }
    CHECK(a.link.publish_stream_end(sa));
    CHECK(b.link.publish_stream_end(sb));
    const auto ended = [&](peer& p, std::uint64_t from) { return !p.of(redis_kind::stream_end, from).empty(); };
    co_await until([&] { return ended(b, a.link.instance()) && ended(c, a.link.instance()) &&
                                ended(a, b.link.instance()) && ended(c, b.link.instance()); },
                   "both streams at every other link", 30s);
    for (peer* receiver : group(b, c)) {
      // start, the pieces in order, end
      std::vector<kept> from_a;
      for (const auto& r : receiver->records)
        if (r.instance == a.link.instance()) from_a.push_back(r);
      REQUIRE(from_a.size() == big.size() / piece + 2);
      CHECK(from_a.front().kind == redis_kind::stream_start);
      CHECK(from_a.front().op == opcode::binary);
      CHECK(from_a.back().kind == redis_kind::stream_end);
      bytes whole;
      for (std::size_t i = 1; i + 1 < from_a.size(); ++i) {
        CHECK(from_a[i].kind == redis_kind::stream_fragment);
        CHECK(from_a[i].stream == sa);
        CHECK(from_a[i].sequence == from_a[i - 1].sequence + 1);
        whole.insert(whole.end(), from_a[i].payload.begin(), from_a[i].payload.end());
      }
      CHECK(whole == big);
    }
    for (peer* receiver : group(a, c)) {
      std::string text;
      std::vector<redis_kind> kinds;
      for (const auto& r : receiver->records)
        if (r.instance == b.link.instance()) {
          kinds.push_back(r.kind);
          if (r.kind == redis_kind::stream_fragment)
            text.append(reinterpret_cast<const char*>(r.payload.data()), r.payload.size());
        }
      REQUIRE(kinds.size() == 13);
      CHECK(kinds.front() == redis_kind::stream_start);
      CHECK(kinds[7] == redis_kind::message); // after "line 5"
      CHECK(kinds.back() == redis_kind::stream_end);
      CHECK(text == "line 0\nline 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\n");
    }
    check_no_echo(group(a, b, c));
  }, 60s);
}

TEST_CASE("Redis killed and restarted: reported once, drops counted, links reconnect, gaps and cut streams told") {
  with_redis([](loopback::executor ex, redis_process& redis) -> asio::awaitable<void> {
    peer a(ex, redis.url()), b(ex, redis.url()), c(ex, redis.url());
    const auto peers = group(a, b, c);
    co_await all_connected(peers);
    // A is in the middle of a stream when Redis goes.
    const auto s = a.link.publish_stream_start(opcode::binary);
    CHECK(a.link.publish_fragment(s, as_bytes("first")));
    CHECK(a.link.publish_message(opcode::text, as_bytes("before")));
    co_await until([&] { return b.records.size() == 3 && c.records.size() == 3; }, "the records before");

    // Redis dies with 16 MiB on their way to it: the message is lost (published, never
    // delivered), which the receivers learn as part of the gap.
    CHECK(a.link.publish_message(opcode::binary, random_bytes(16 << 20, 5)));
    redis.kill();
    co_await until([&] { return std::ranges::all_of(peers, [](peer* p) { return !p->errors.empty(); }); },
                   "every link's error");
    for (peer* p : peers) {
      CHECK(p->errors.front() == websockets::error::redis_unavailable);
      CHECK_FALSE(p->link.connected());
    }
    // Their subscriptions dropped: the stream from A is ended at B and C.
    for (peer* p : group(b, c)) {
      const auto cut = p->of(redis_kind::stream_interrupted, a.link.instance());
      REQUIRE(cut.size() == 1);
      CHECK(cut[0].stream == s);
    }
    // What is published meanwhile is dropped and counted; the stream stays cut.
    const auto dropped_before = a.link.stats().dropped;
    CHECK_FALSE(a.link.publish_fragment(s, as_bytes("lost")));
    CHECK_FALSE(a.link.publish_message(opcode::text, as_bytes("lost")));
    CHECK_FALSE(a.link.publish_message(opcode::binary, every_byte(1000)));
    CHECK(a.link.stats().dropped == dropped_before + 3);
    co_await loopback::sleep(400ms); // a few attempts with back-off: still one report each
    for (peer* p : peers) CHECK(p->errors.size() == 1);

    redis.start();
    co_await until([&] { return std::ranges::all_of(peers, [](peer* p) { return p->connections == 2; }); },
                   "every link reconnected");
    co_await all_connected(peers);
    // The cut stream's remaining pieces are not sent; its end may be.
    CHECK_FALSE(a.link.publish_fragment(s, as_bytes("after")));
    CHECK(a.link.publish_stream_end(s));
    CHECK(a.link.publish_message(opcode::text, as_bytes("after")));
    CHECK(b.link.publish_message(opcode::text, as_bytes("b after")));
    co_await until([&] { return !b.of(redis_kind::message, a.link.instance()).empty() &&
                                b.of(redis_kind::message, a.link.instance()).back().payload == bytes_of("after") &&
                                !c.of(redis_kind::message, a.link.instance()).empty() &&
                                c.of(redis_kind::message, a.link.instance()).back().payload == bytes_of("after") &&
                                !a.of(redis_kind::message, b.link.instance()).empty() &&
                                a.of(redis_kind::message, b.link.instance()).back().payload == bytes_of("b after"); },
                   "the messages after");
    for (peer* p : group(b, c)) {
      // The message lost with Redis, the number A skipped on cutting its stream, the
      // two messages dropped while Redis was away (the cut stream's fragment used
      // none), plus A's hello if it came before this link subscribed again: one gap,
      // told before what follows it.
      const auto gaps = p->of(redis_kind::gap, a.link.instance());
      REQUIRE(gaps.size() == 1);
      CHECK(gaps[0].missed >= 4);
      CHECK(gaps[0].missed <= 5);
      CHECK(p->link.stats().missed == gaps[0].missed);
      // Nothing more of the cut stream: no fragment after the cut, no second end.
      CHECK(p->of(redis_kind::stream_fragment, a.link.instance()).size() == 1);
      CHECK(p->of(redis_kind::stream_end, a.link.instance()).empty());
      const auto messages = p->of(redis_kind::message, a.link.instance());
      REQUIRE(messages.size() == 2);
      CHECK(messages[0].payload == bytes_of("before"));
      CHECK(messages[1].payload == bytes_of("after"));
    }
    CHECK(a.link.stats().connections == 2);
    check_no_echo(peers);
  }, 60s);
}

TEST_CASE("past max_pending_bytes records are dropped: the receiver sees the gap and ends the cut stream") {
  with_redis([](loopback::executor ex, redis_process& redis) -> asio::awaitable<void> {
    auto options = peer::fast();
    options.max_pending_bytes = 1000;
    peer a(ex, redis.url(), options), b(ex, redis.url());
    co_await all_connected(group(a, b));
    const bytes piece = every_byte(500);
    // Nothing is confirmed before the next suspension: 32 + 532 bytes pending, then
    // 532 more would pass the limit.
    const auto s = a.link.publish_stream_start(opcode::binary);
    CHECK(a.link.publish_fragment(s, piece));
    CHECK_FALSE(a.link.publish_fragment(s, piece));
    CHECK_FALSE(a.link.publish_fragment(s, piece)); // the stream is cut
    CHECK(a.link.stats().dropped == 2);
    co_await until([&] { return b.records.size() == 2; }, "the start and the first piece");
    CHECK(a.link.publish_stream_end(s));
    CHECK(a.link.publish_message(opcode::text, as_bytes("after")));
    co_await until([&] { return !b.of(redis_kind::message).empty(); }, "the message after");
    co_await loopback::sleep(50ms);
    REQUIRE(b.records.size() == 5);
    CHECK(b.records[0].kind == redis_kind::stream_start);
    CHECK(b.records[1].kind == redis_kind::stream_fragment);
    CHECK(b.records[1].payload == piece);
    CHECK(b.records[2].kind == redis_kind::gap);
    CHECK(b.records[2].missed == 1);
    CHECK(b.records[3].kind == redis_kind::stream_interrupted);
    CHECK(b.records[3].stream == s);
    CHECK(b.records[4].kind == redis_kind::message);
    CHECK(b.records[4].payload == bytes_of("after"));
  }, 30s);
}

TEST_CASE("a large stream crosses a Redis restart that happens before it") {
  with_redis([](loopback::executor ex, redis_process& redis) -> asio::awaitable<void> {
    peer a(ex, redis.url()), b(ex, redis.url());
    co_await all_connected(group(a, b));
    redis.kill();
    redis.start();
    co_await until([&] { return a.connections == 2 && b.connections == 2; }, "both reconnected");
    co_await all_connected(group(a, b));
    const bytes big = random_bytes(5 << 20, 9);
    const auto s = b.link.publish_stream_start(opcode::binary);
    for (std::size_t at = 0; at < big.size(); at += 1 << 20)
      CHECK(b.link.publish_fragment(s, std::span{big}.subspan(at, std::min<std::size_t>(1 << 20, big.size() - at))));
    CHECK(b.link.publish_stream_end(s));
    co_await until([&] { return !a.of(redis_kind::stream_end).empty(); }, "the stream");
    bytes whole;
    for (const auto& r : a.of(redis_kind::stream_fragment)) whole.insert(whole.end(), r.payload.begin(), r.payload.end());
    CHECK(whole == big);
    CHECK(a.of(redis_kind::gap).empty());
    CHECK(a.of(redis_kind::stream_interrupted).empty());
  }, 60s);
}

TEST_CASE("a link may be stopped from its own handler, and stopped links call nothing") {
  with_redis([](loopback::executor ex, redis_process& redis) -> asio::awaitable<void> {
    peer a(ex, redis.url()), b(ex, redis.url());
    co_await all_connected(group(a, b));
    int seen = 0;
    b.on_record = [&](const redis_record&) {
      ++seen;
      b.link.stop();
    };
    CHECK(a.link.publish_message(opcode::text, as_bytes("one")));
    CHECK(a.link.publish_message(opcode::text, as_bytes("two")));
    co_await until([&] { return seen == 1; }, "the first record");
    co_await loopback::sleep(100ms);
    CHECK(seen == 1);
    CHECK_FALSE(b.link.connected());
    CHECK_FALSE(b.link.publish_message(opcode::text, as_bytes("after stop")));
    redis.kill(); // a stopped link reports nothing
    co_await until([&] { return !a.errors.empty(); }, "a's error");
    co_await loopback::sleep(50ms);
    CHECK(b.errors.empty());
    a.link.stop();
  }, 30s);
}
