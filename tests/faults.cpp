// Fault injection: each scenario (handshake, echo, a fragmented message, the close
// handshake, a broadcast) runs again and again, the 1st read or write of the run
// failing, then the 2nd, the 3rd ..., until a run meets no fault. Every run must end
// (no coroutine left waiting), every socket the server opened must report its close
// exactly once and then be freed, a failed run must show its failure as a close or an
// error event (or a refused connect), and a run without a fault must succeed. Under
// the sanitizers the same runs also prove that nothing leaks.
#include "loopback.hpp"
#include "transport.hpp"

#include <websockets/error.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace loopback;
using websockets::opcode;

namespace {

/// What the server reported during one run.
struct server_log {
  std::map<std::uint64_t, int> closes_by_socket; // every opened socket, and its close events
  std::vector<std::weak_ptr<websockets::socket>> sockets;
  int abnormal_closes = 0; // 1006, or a code we failed the connection with
  int errors = 0;
  bool ended = false;
};

asio::awaitable<void> record(websockets::generator<websockets::event> events, std::shared_ptr<server_log> log) {
  while (auto ev = co_await events.next()) {
    if (auto* opened = std::get_if<websockets::open_event>(&*ev)) {
      log->closes_by_socket.emplace(opened->peer->id(), 0);
      log->sockets.push_back(opened->peer);
    } else if (auto* closed = std::get_if<websockets::close_event>(&*ev)) {
      ++log->closes_by_socket[closed->peer->id()];
      if (closed->code != 1000 && closed->code != 1001 && closed->code != 4000) ++log->abnormal_closes;
    } else if (std::holds_alternative<websockets::error_event>(*ev)) {
      ++log->errors;
    }
  }
  log->ended = true;
}

/// What the client side of a run saw go wrong.
struct client_log {
  int failures = 0; // a connect that threw, a send refused, a close other than asked
  std::vector<std::weak_ptr<websockets::socket>> sockets;
};

/// Connects, or counts the failure.
asio::awaitable<std::shared_ptr<websockets::socket>> open_client(executor ex, const websockets::server& srv,
                                                               client_log& log) {
  try {
    auto client = co_await websockets::connect(ex, url_of(srv));
    log.sockets.push_back(client);
    co_return client;
  } catch (const std::system_error&) {
    ++log.failures;
    co_return nullptr;
  }
}

/// The client's close handshake: true when the server answered with our code.
asio::awaitable<bool> close_cleanly(websockets::socket& client, client_log& log) {
  auto events = client.events();
  if (co_await client.close(websockets::close_code{4000}, "bye")) {
    ++log.failures;
    co_return false;
  }
  while (auto ev = co_await events.next())
    if (auto* closed = std::get_if<websockets::close_event>(&*ev)) {
      if (closed->code == 4000) co_return true;
      ++log.failures;
      co_return false;
    }
  ++log.failures;
  co_return false;
}

/// The next message, or nothing when the socket closed first.
asio::awaitable<std::optional<std::string>> receive(websockets::generator<websockets::message>& messages,
                                                    client_log& log) {
  auto m = co_await messages.next();
  if (!m) {
    ++log.failures;
    co_return std::nullopt;
  }
  co_return std::move(m->payload);
}

asio::awaitable<void> echo_everything(websockets::server& srv) {
  auto messages = srv.messages();
  while (auto m = co_await messages.next()) (void)co_await m->peer->send(m->opcode, m->bytes());
}

// ---- The scenarios: each true when it ran to its end as it should ----

asio::awaitable<bool> handshake(executor ex, websockets::server& srv, client_log& log) {
  auto client = co_await open_client(ex, srv, log);
  // (Not `client && co_await ...`: g++ 12 evaluates a co_await operand of && regardless.)
  if (!client) co_return false;
  co_return co_await close_cleanly(*client, log);
}

asio::awaitable<bool> echo(executor ex, websockets::server& srv, client_log& log) {
  asio::co_spawn(ex, echo_everything(srv), asio::detached);
  auto client = co_await open_client(ex, srv, log);
  if (!client) co_return false;
  auto replies = client->messages();
  // The last one takes several reads; under stream_threshold, so that it arrives whole
  // (events() reads streams).
  const std::string texts[] = {"one", "two", std::string(60000, '3')};
  for (const auto& text : texts) {
    if (co_await client->send(text)) {
      ++log.failures;
      co_return false;
    }
    auto reply = co_await receive(replies, log);
    if (reply != text) co_return false;
  }
  co_return co_await close_cleanly(*client, log);
}

asio::awaitable<bool> fragmented(executor ex, websockets::server& srv, client_log& log) {
  auto opened = srv.connections();
  auto client = co_await open_client(ex, srv, log);
  if (!client) co_return false;
  auto messages = client->messages();
  if (!co_await opened.next()) co_return false;
  const std::string pieces[] = {"frag", "men", std::string(20000, 't')};
  for (const auto& piece : pieces) co_await srv.co_write(bytes_of(piece), opcode::text);
  co_await srv.co_write({}, opcode::text);
  auto whole = co_await receive(messages, log);
  if (whole != pieces[0] + pieces[1] + pieces[2]) co_return false;
  co_return co_await close_cleanly(*client, log);
}

asio::awaitable<bool> broadcast(executor ex, websockets::server& srv, client_log& log) {
  auto opened = srv.connections();
  std::vector<std::shared_ptr<websockets::socket>> clients;
  std::vector<websockets::generator<websockets::message>> inboxes;
  for (int i = 0; i < 3; ++i) {
    auto client = co_await open_client(ex, srv, log);
    if (!client) co_return false;
    inboxes.push_back(client->messages());
    clients.push_back(std::move(client));
    if (!co_await opened.next()) co_return false;
  }
  const std::string news = "to everyone";
  co_await srv.broadcast({.fin = true, .opcode = opcode::text}, news);
  bool ok = true;
  for (auto& inbox : inboxes) {
    const auto got = co_await receive(inbox, log);
    if (got != news) ok = false;
  }
  for (auto& client : clients) {
    const bool closed = co_await close_cleanly(*client, log);
    if (!closed) ok = false;
  }
  co_return ok;
}

using scenario = asio::awaitable<bool> (*)(executor, websockets::server&, client_log&);

/// True once every socket in `sockets` is freed, waiting up to a few seconds.
asio::awaitable<bool> all_freed(const std::vector<std::weak_ptr<websockets::socket>>& sockets) {
  for (int i = 0; i < 100; ++i) {
    if (std::ranges::all_of(sockets, [](const auto& s) { return s.expired(); })) co_return true;
    co_await sleep(30ms);
  }
  co_return false;
}

/// Runs `play` with its 1st, 2nd, ... transport operation failing until a run meets
/// no fault; returns how many operations a whole run takes.
std::size_t fail_each_operation(scenario play) {
  for (std::size_t n = 1;; ++n) {
    websockets::detail::fault_plan plan{.fail_at = n};
    run([&](executor ex) -> asio::awaitable<void> {
      auto log = std::make_shared<server_log>();
      client_log clients;
      bool ok = false;
      {
        fixture f{ex, {.timeout = 0ms, .close_timeout = 500ms}};
        asio::co_spawn(ex, record(f.srv.events(), log), asio::detached);
        websockets::detail::thread_fault_plan() = &plan;
        auto outcome = co_await within(play(ex, f.srv, clients), 10s);
        websockets::detail::thread_fault_plan() = nullptr;
        INFO("operation ", n, " failing");
        REQUIRE_MESSAGE(outcome.has_value(), "the scenario hung");
        ok = *outcome;
        co_await f.srv.stop();
        for (int i = 0; i < 100 && !log->ended; ++i) co_await sleep(10ms);
        CHECK(log->ended);
      }
      INFO("operation ", n, " failing");
      if (!plan.failed) CHECK(ok);
      // A fault that broke the run shows: a close or error event, or a refused client.
      if (!ok) CHECK(log->abnormal_closes + log->errors + clients.failures > 0);
      for (const auto& [id, closes] : log->closes_by_socket) CHECK_MESSAGE(closes == 1, "socket ", id);
      CHECK(co_await all_freed(log->sockets));
      CHECK(co_await all_freed(clients.sockets));
    });
    if (!plan.failed) return n - 1;
    REQUIRE(n < 500);
  }
}

} // namespace

TEST_CASE("a failing read or write anywhere in a scenario surfaces, and nothing hangs or leaks") {
  const std::pair<std::string_view, scenario> scenarios[] = {
      {"handshake", &handshake}, {"echo", &echo}, {"fragmented message", &fragmented}, {"broadcast", &broadcast}};
  for (const auto& [name, play] : scenarios) {
    CAPTURE(name);
    const std::size_t operations = fail_each_operation(play);
    MESSAGE(name, ": each of its ", operations, " reads and writes failed once");
    CHECK(operations >= 4); // at least the two sides' handshake reads and writes
  }
}
