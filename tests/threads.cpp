// A server on several event loops (server_options::threads): sockets shared out over
// the loops, each on its own thread; broadcast and co_write reaching the peers of every
// loop, encoded once; the generators fed from every loop; per-socket calls from the
// server's thread; stop() across loops.
#include "loopback.hpp"
#ifdef WEBSOCKETS_TEST_REDIS
#include "redis_process.hpp"
#endif

#include <websockets/server.hpp>

#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <exception>
#include <stdexcept>

#include <map>
#include <set>
#include <thread>

using namespace loopback;
using websockets::opcode;

namespace {

using socket_ptr = std::shared_ptr<websockets::socket>;

// The thread a socket's loop runs on, asked there.
asio::awaitable<std::thread::id> thread_of(const socket_ptr& s) {
  co_return co_await asio::co_spawn(
      s->executor(), []() -> asio::awaitable<std::thread::id> { co_return std::this_thread::get_id(); },
      asio::use_awaitable);
}

struct peers {
  std::vector<socket_ptr> clients;
  std::vector<websockets::generator<websockets::message>> inboxes;
  std::vector<socket_ptr> served; // the server's side, in connecting order
};

// `n` clients, each taken from connections() before the next connects.
asio::awaitable<peers> connect_many(executor ex, websockets::server& srv,
                                    websockets::generator<socket_ptr>& conns, int n) {
  peers p;
  for (int i = 0; i < n; ++i) {
    p.clients.push_back(co_await websockets::connect(ex, url_of(srv)));
    p.inboxes.push_back(p.clients.back()->messages());
    p.served.push_back(co_await next(conns));
  }
  co_return p;
}

} // namespace

TEST_CASE("threads: sockets are shared out in turn over loops on different threads") {
  for (const std::size_t threads : {std::size_t{2}, std::size_t{4}}) {
    CAPTURE(threads);
    run([threads](executor ex) -> asio::awaitable<void> {
      fixture f{ex, {.threads = threads}};
      REQUIRE(f.srv.executors().size() == threads);
      auto conns = f.srv.connections();
      auto p = co_await connect_many(ex, f.srv, conns, static_cast<int>(threads * 2));
      std::map<std::thread::id, int> per_thread;
      for (std::size_t i = 0; i < p.served.size(); ++i) {
        // Round robin: the i-th socket is on loop i % threads.
        CHECK(p.served[i]->executor() == f.srv.executors()[i % threads]);
        ++per_thread[co_await thread_of(p.served[i])];
      }
      CHECK(per_thread.size() == threads); // every loop a thread of its own
      for (const auto& [id, count] : per_thread) CHECK(count == 2);
      CHECK(per_thread.contains(std::this_thread::get_id())); // the first loop is ours
      CHECK(f.srv.connection_count() == threads * 2);
      co_await f.srv.stop();
    });
  }
}

TEST_CASE("threads: broadcast reaches every peer of every loop once, in order, encoded once") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.threads = 3}};
    auto conns = f.srv.connections();
    auto p = co_await connect_many(ex, f.srv, conns, 6);
    const int count = 200;
    const auto before = websockets::detail::encoded_frames();
    for (int i = 0; i < count; ++i) {
      const std::string text = "message " + std::to_string(i);
      co_await f.srv.broadcast({.fin = true, .opcode = opcode::text}, text);
    }
    CHECK(websockets::detail::encoded_frames() - before == count);
    for (auto& inbox : p.inboxes)
      for (int i = 0; i < count; ++i) {
        const auto m = co_await next(inbox);
        REQUIRE(m.text() == "message " + std::to_string(i));
      }
    for (auto& inbox : p.inboxes) CHECK(co_await quiet(inbox, std::chrono::milliseconds{100}));

    // All but one, the one on another loop.
    const auto before_except = websockets::detail::encoded_frames();
    co_await f.srv.broadcast({.fin = true, .opcode = opcode::text}, "not to the second", p.served[1].get());
    CHECK(websockets::detail::encoded_frames() - before_except == 1);
    for (std::size_t i = 0; i < p.inboxes.size(); ++i) {
      if (i == 1) {
        CHECK(co_await quiet(p.inboxes[i]));
      } else {
        CHECK((co_await next(p.inboxes[i])).text() == "not to the second");
      }
    }
    co_await f.srv.stop();
  });
}

TEST_CASE("threads: a co_write stream reaches every loop's peers, each fragment encoded once") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.threads = 3}};
    auto conns = f.srv.connections();
    auto p = co_await connect_many(ex, f.srv, conns, 6);
    const auto before = websockets::detail::encoded_frames();
    co_await f.srv.co_write(bytes_of("one "), opcode::text);
    co_await f.srv.co_write(bytes_of("two "));
    // A broadcast meanwhile waits for the stream's end at every peer.
    auto between = spawn(ex, f.srv.broadcast({.fin = true, .opcode = opcode::text}, "after"));
    co_await f.srv.co_write(bytes_of("three"));
    co_await f.srv.co_write({});
    for (auto& inbox : p.inboxes) {
      CHECK((co_await next(inbox)).text() == "one two three");
      CHECK((co_await next(inbox)).text() == "after");
    }
    CHECK(co_await until(between));
    CHECK(websockets::detail::encoded_frames() - before == 5); // four fragments, one broadcast
    co_await f.srv.stop();
  });
}

TEST_CASE("threads: the server's generators get the events of every loop") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.threads = 3}};
    auto conns = f.srv.connections();
    auto messages = f.srv.messages();
    auto closes = f.srv.closes();
    // events(), read from the start: a socket reads once every consumer of its open
    // event has taken it. Six opens and six messages, each socket's open first. (Dropped
    // then: a generator left unread holds up each socket's answer to a close.)
    auto opens_first = [](websockets::generator<websockets::event> events) -> asio::awaitable<void> {
      std::set<const websockets::socket*> opened;
      int seen_messages = 0;
      while (seen_messages < 6) {
        auto ev = co_await next(events);
        if (auto* o = std::get_if<websockets::open_event>(&ev)) opened.insert(o->peer.get());
        if (auto* m = std::get_if<websockets::message>(&ev)) {
          CHECK(opened.contains(m->peer.get()));
          ++seen_messages;
        }
      }
      CHECK(opened.size() == 6);
    };
    auto events_done = spawn(ex, opens_first(f.srv.events()));
    auto p = co_await connect_many(ex, f.srv, conns, 6);
    for (std::size_t i = 0; i < p.clients.size(); ++i) {
      const std::string text = "from " + std::to_string(i);
      (void)co_await p.clients[i]->send(text);
    }
    std::map<const websockets::socket*, std::string> got;
    for (std::size_t i = 0; i < p.clients.size(); ++i) {
      auto m = co_await next(messages);
      got[m.peer.get()] = m.text();
    }
    for (std::size_t i = 0; i < p.served.size(); ++i) CHECK(got[p.served[i].get()] == "from " + std::to_string(i));
    CHECK(co_await until(events_done));
    for (auto& c : p.clients) (void)co_await c->close(websockets::close_code::normal);
    std::set<const websockets::socket*> closed;
    for (std::size_t i = 0; i < p.clients.size(); ++i) closed.insert((co_await next(closes)).peer.get());
    CHECK(closed.size() == 6);
    CHECK(f.srv.connection_count() == 0);
    co_await f.srv.stop();
  });
}

TEST_CASE("threads: a socket of another loop is used from the server's thread") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.threads = 2}};
    auto conns = f.srv.connections();
    auto p = co_await connect_many(ex, f.srv, conns, 4);
    for (std::size_t i = 0; i < p.served.size(); ++i) {
      // Subscribed and sent to from here, whichever loop the socket is on.
      auto own = p.served[i]->messages();
      const std::string text = "to " + std::to_string(i);
      CHECK(!co_await p.served[i]->send(text));
      CHECK((co_await next(p.inboxes[i])).text() == text);
      (void)co_await p.clients[i]->send(std::string_view{"back"});
      CHECK((co_await next(own)).text() == "back");
      // A deadline cancels a wait on another loop's generator (posted there), which
      // stays usable.
      CHECK(co_await quiet(own, std::chrono::milliseconds{50}));
      (void)co_await p.clients[i]->send(std::string_view{"again"});
      CHECK((co_await next(own)).text() == "again");
      CHECK(!co_await p.served[i]->ping());
    }
    // Closed from here: the close handshake runs on the socket's loop.
    CHECK(!co_await p.served[1]->close(websockets::close_code::normal, "bye"));
    CHECK(co_await quiet(p.inboxes[1]));
    CHECK(f.srv.connection_count() == 3);
    co_await f.srv.stop();
  });
}

TEST_CASE("threads: an echo on each socket's own loop") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.threads = 3}};
    auto conns = f.srv.connections();
    auto echo = [](socket_ptr s, websockets::generator<websockets::message> in) -> asio::awaitable<void> {
      while (auto m = co_await in.next())
        if (co_await s->send(m->opcode, m->bytes())) break;
    };
    std::vector<socket_ptr> clients;
    std::vector<websockets::generator<websockets::message>> inboxes;
    for (int i = 0; i < 6; ++i) {
      clients.push_back(co_await websockets::connect(ex, url_of(f.srv)));
      inboxes.push_back(clients.back()->messages());
      auto s = co_await next(conns);
      auto in = s->messages();
      asio::co_spawn(s->executor(), echo(s, std::move(in)), asio::detached);
    }
    for (int round = 0; round < 50; ++round)
      for (std::size_t i = 0; i < clients.size(); ++i) {
        const std::string text = std::to_string(i) + "/" + std::to_string(round);
        (void)co_await clients[i]->send(text);
      }
    for (std::size_t i = 0; i < clients.size(); ++i)
      for (int round = 0; round < 50; ++round)
        REQUIRE((co_await next(inboxes[i])).text() == std::to_string(i) + "/" + std::to_string(round));
    co_await f.srv.stop();
  });
}

namespace {

using strand_type = asio::strand<asio::io_context::executor_type>;

asio::awaitable<void> echo_on_strand(websockets::generator<websockets::message> in, strand_type strand) {
  while (auto m = co_await in.next()) {
    CHECK(strand.running_in_this_thread());
    if (co_await m->peer->send(m->opcode, m->bytes())) break;
  }
}

asio::awaitable<void> round_trips_on_strand(strand_type strand) {
  // One loop whatever WEBSOCKETS_TEST_THREADS says: a server of several runs on an
  // io_context's executor, not a strand.
  websockets::server_options options;
  options.url = "ws://127.0.0.1:0/";
  websockets::server srv{strand, options};
  asio::co_spawn(strand, srv.listen(), asio::detached);
  asio::co_spawn(strand, echo_on_strand(srv.messages(), strand), asio::detached);
  std::vector<socket_ptr> clients;
  std::vector<websockets::generator<websockets::message>> inboxes;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(co_await websockets::connect(strand, url_of(srv)));
    inboxes.push_back(clients.back()->messages());
  }
  // Many messages in flight on every connection, so that reads and writes overlap.
  for (int round = 0; round < 200; ++round)
    for (std::size_t i = 0; i < clients.size(); ++i) {
      const std::string text = std::to_string(i) + "/" + std::to_string(round); // named: g++ 12
      (void)co_await clients[i]->send(text);
    }
  for (std::size_t i = 0; i < clients.size(); ++i)
    for (int round = 0; round < 200; ++round) {
      const auto got = co_await next(inboxes[i]);
      REQUIRE(got.payload == std::to_string(i) + "/" + std::to_string(round));
      CHECK(strand.running_in_this_thread());
    }
  co_await srv.stop();
}

} // namespace

TEST_CASE("threads: a server and its clients on a strand: every generator resumes on it") {
  // Sockets are typed on the io_context's own executor; the handlers they complete
  // (readiness waits, writes) are bound to the socket's executor when that is another
  // one, such as this strand. (Asio 1.22 hands out a strand's inner executor when asked
  // for an io_context's: what was posted through it bypassed the strand. One thread runs
  // the io_context here: see README, Threads, for several.)
  asio::io_context io;
  const strand_type strand = asio::make_strand(io);
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(strand, round_trips_on_strand(strand), [&](std::exception_ptr e) {
    failure = e;
    done = true;
  });
  io.run_for(std::chrono::seconds{20});
  REQUIRE_MESSAGE(done, "the test did not finish in time");
  if (failure) std::rethrow_exception(failure);
}

TEST_CASE("threads: a server or client on an executor that is not an io_context's is refused") {
  asio::thread_pool pool{1};
  auto attempt = asio::co_spawn(pool, websockets::connect(pool.get_executor(), "ws://127.0.0.1:9/"), asio::use_future);
  CHECK_THROWS_AS(attempt.get(), std::invalid_argument);
  CHECK_THROWS_AS((websockets::server{pool.get_executor(), local()}), std::invalid_argument);
}

TEST_CASE("threads: pipe relays a stream from a socket of another loop to every loop") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, {.threads = 3}};
    auto conns = f.srv.connections();
    auto streams = f.srv.streams();
    auto p = co_await connect_many(ex, f.srv, conns, 6);
    // The sender is on the second loop; its relay reaches the others on all three. A
    // single frame past stream_threshold is streamed.
    auto relayer = [&]() -> asio::awaitable<void> {
      // next() itself, not loopback's next(): the pipe must attach before the reader
      // goes on, which a wait with a deadline would let it do.
      auto ev = co_await streams.next();
      REQUIRE(ev);
      auto* s = std::get_if<websockets::stream_start>(&*ev);
      REQUIRE(s);
      CHECK(s->peer == p.served[1]);
      auto relay = websockets::pipe(s->peer, f.srv); // attached now, from this thread
      co_await std::move(relay);
    };
    auto relayed = spawn(ex, relayer());
    const std::string big(100 * 1024, 'x');
    CHECK(!co_await p.clients[1]->send(opcode::text, bytes_of(big)));
    for (std::size_t i = 0; i < p.inboxes.size(); ++i) {
      if (i == 1) continue;
      CHECK((co_await next(p.inboxes[i])).text() == big);
    }
    CHECK(co_await quiet(p.inboxes[1]));
    CHECK(co_await until(relayed));
    co_await f.srv.stop();
  });
}

TEST_CASE("threads: stop closes the sockets of every loop with 1001 and ends the generators") {
  run([](executor ex) -> asio::awaitable<void> {
    std::vector<websockets::generator<websockets::event>> client_events;
    std::shared_ptr<bool> listening;
    {
      fixture f{ex, {.threads = 4}};
      listening = f.listening;
      auto conns = f.srv.connections();
      auto closes = f.srv.closes();
      auto p = co_await connect_many(ex, f.srv, conns, 8);
      for (auto& c : p.clients) client_events.push_back(c->events());
      auto own = p.served[3]->events(); // a socket's generator on another loop, read from here
      co_await f.srv.stop();
      CHECK(f.srv.connection_count() == 0);
      for (int i = 0; i < 8; ++i) CHECK((co_await next(closes)).code == 1001);
      CHECK(!(co_await within(closes.next(), 2s)).value().has_value());
      CHECK(!(co_await within(conns.next(), 2s)).value().has_value());
      CHECK((co_await next_of<websockets::close_event>(own)).code == 1001);
      CHECK(!(co_await within(own.next(), 2s)).value().has_value());
    } // the server joins its threads here
    for (auto& events : client_events) CHECK((co_await next_of<websockets::close_event>(events)).code == 1001);
    co_await sleep(std::chrono::milliseconds{20});
    CHECK(!*listening);
  });
}

TEST_CASE("threads: destroying a running server with sockets on every loop drops them") {
  run([](executor ex) -> asio::awaitable<void> {
    std::vector<websockets::generator<websockets::event>> client_events;
    {
      fixture f{ex, {.threads = 3}};
      auto conns = f.srv.connections();
      auto p = co_await connect_many(ex, f.srv, conns, 6);
      for (auto& c : p.clients) client_events.push_back(c->events());
    }
    for (auto& events : client_events) CHECK((co_await next_of<websockets::close_event>(events)).code == 1006);
  });
}

#ifdef WEBSOCKETS_TEST_REDIS
TEST_CASE("threads: the Redis relay reaches the peers of every loop, in order") {
  if (!redis_test::available()) {
    MESSAGE("redis-server is not installed: skipped");
    return;
  }
  redis_test::redis_process redis;
  run([&](executor ex) -> asio::awaitable<void> {
    fixture a{ex, {.redis = redis.url(), .threads = 3}};
    fixture b{ex, {.redis = redis.url(), .threads = 2}};
    auto a_conns = a.srv.connections();
    auto b_conns = b.srv.connections();
    auto on_a = co_await connect_many(ex, a.srv, a_conns, 6);
    auto on_b = co_await connect_many(ex, b.srv, b_conns, 2);
    // Until both links are up, what one broadcasts may not cross: probe until it does.
    bool crossed = false;
    for (int i = 0; i < 200 && !crossed; ++i) {
      co_await b.srv.broadcast({.fin = true, .opcode = opcode::text}, "probe");
      for (auto& inbox : on_b.inboxes) (void)co_await next(inbox);
      auto got = co_await within(on_a.inboxes[0].next(), std::chrono::milliseconds{50});
      crossed = got && *got;
    }
    REQUIRE(crossed);
    for (auto& inbox : on_a.inboxes) {
      while (true) { // the probes that crossed
        auto got = co_await within(inbox.next(), std::chrono::milliseconds{200});
        if (!got || !*got) break;
      }
    }
    // B's broadcasts and stream reach A's peers on all three loops once, in order.
    for (int i = 0; i < 20; ++i) {
      const std::string text = "b" + std::to_string(i);
      co_await b.srv.broadcast({.fin = true, .opcode = opcode::text}, text);
    }
    co_await b.srv.co_write(bytes_of("stream "), opcode::text);
    co_await b.srv.co_write(bytes_of("from b"));
    co_await b.srv.co_write({});
    for (auto& inbox : on_a.inboxes) {
      for (int i = 0; i < 20; ++i) REQUIRE((co_await next(inbox)).text() == "b" + std::to_string(i));
      CHECK((co_await next(inbox)).text() == "stream from b");
    }
    // A's reach B's.
    co_await a.srv.broadcast({.fin = true, .opcode = opcode::text}, "from a");
    for (auto& inbox : on_b.inboxes) {
      for (int i = 0; i < 20; ++i) (void)co_await next(inbox); // its own
      CHECK((co_await next(inbox)).text() == "stream from b");
      CHECK((co_await next(inbox)).text() == "from a");
    }
    co_await a.srv.stop();
    co_await b.srv.stop();
  }, 60s);
}
#endif

TEST_CASE("threads: 0 is refused") {
  asio::io_context io;
  CHECK_THROWS_AS((websockets::server{io.get_executor(), {.threads = 0}}), std::invalid_argument);
}
