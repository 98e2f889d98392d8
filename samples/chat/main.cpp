// chat: a chat room on one port. The page (page.html, embedded at build time) is served
// over plain HTTP at the url's path; the WebSocket is on the same port and path. The
// protocol is in README.md beside this file; the room's rules are in room.cpp. With
// --redis, several chats (on other ports or machines) share one room through a Redis
// channel: what goes to everyone is a server broadcast, which Redis carries to the
// other instances' users too; each instance re-sends its user list every few seconds
// (see send_rosters) so that the pages can show everyone.
//
//   chat [--url URL] [--cert FILE --key FILE] [--deflate] [--redis URL] [--help]
//   (default ws://localhost:3000)
#include "page.hpp"
#include "room.hpp"

#include <websockets/server.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/host_name.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <boost/url/parse.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace {

using websockets::socket;
using socket_ptr = std::shared_ptr<socket>;

constexpr std::string_view usage = R"(usage: chat [--url URL] [--cert FILE --key FILE] [--deflate] [--redis URL] [--help]

A chat room: open the printed address in a browser. The page is served over HTTP (HTTPS
for a wss:// url) at the url's path, and the WebSocket on the same port and path.

  --url URL   where to listen, ws://HOST:PORT/PATH (default ws://localhost:3000);
              ws://0.0.0.0:3000 lets other machines of the network in; wss://... serves
              TLS with --cert and --key
  --cert FILE the certificate chain (PEM) of a wss:// url
  --key FILE  its private key (PEM)
  --deflate   accept permessage-deflate (RFC 7692) compression, as browsers offer
  --redis URL share one room with the other chats given the same redis://HOST[:PORT][/CHANNEL]
              (port 6379, channel websockets by default): messages, notices and files
              reach their users too, and each page lists the users of every chat.
              Nicknames are unique per chat only. While Redis is away each chat serves
              its own users (and says so on stderr); it reconnects by itself
  --help      show this help
)";

/// Logs what a detached coroutine threw instead of losing it.
void report(const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    fmt::print(stderr, "chat: {}\n", x.what());
  }
}

/// A mutex for coroutines on one executor: a channel holding one token. Waiters are
/// served in the order they asked.
class async_mutex {
public:
  explicit async_mutex(const asio::any_io_executor& ex) : tokens_{ex, 1} {
    (void)tokens_.try_send(std::error_code{}, true);
  }

  class guard {
  public:
    explicit guard(async_mutex& m) : m_{&m} {}
    guard(guard&& other) noexcept : m_{std::exchange(other.m_, nullptr)} {}
    guard& operator=(guard&&) = delete;
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    ~guard() {
      if (m_ != nullptr) (void)m_->tokens_.try_send(std::error_code{}, true);
    }

  private:
    async_mutex* m_;
  };

  asio::awaitable<guard> lock() {
    co_await tokens_.async_receive(asio::use_awaitable);
    co_return guard{*this};
  }

private:
  // (A second argument: asio 1.22 cannot tell a lone error_code signature apart.)
  asio::experimental::channel<void(std::error_code, bool)> tokens_;
};

/// The room, the server, and the order of everything the chat sends.
struct chat_server {
  chat_server(const asio::any_io_executor& executor, websockets::server_options options)
      : ex{executor}, srv{executor, std::move(options)},
        room{chat::limits{.max_file = srv.options().max_message_size}}, out{executor} {}

  asio::any_io_executor ex;
  websockets::server srv;
  chat::room room;
  /// Held while sending, so that what the room decided goes out in the same order to
  /// everyone, and a file's envelope is followed at once by its bytes.
  async_mutex out;
  std::map<chat::client_id, std::weak_ptr<socket>> peers;
  /// Set at SIGINT or SIGTERM: periodic work ends.
  bool stopping = false;
  /// With --redis: the link to the other instances was up when last looked at (and
  /// said so); cleared by an outage's error event, however short the outage.
  bool redis_linked = false;

  /// Sends `deliveries`; the caller holds `out`. Every delivery to many is one
  /// broadcast, encoded once.
  asio::awaitable<void> send_locked(const std::vector<chat::delivery>& deliveries) {
    using audience = chat::delivery::audience;
    for (const auto& d : deliveries) {
      if (d.to == audience::one) {
        if (const auto it = peers.find(d.who); it != peers.end())
          if (auto s = it->second.lock()) (void)co_await s->send(std::string_view{d.text});
        continue;
      }
      co_await srv.broadcast({.fin = true, .opcode = websockets::opcode::text}, std::string_view{d.text});
    }
  }

  asio::awaitable<void> send(std::vector<chat::delivery> deliveries) {
    if (deliveries.empty()) co_return;
    auto held = co_await out.lock();
    co_await send_locked(deliveries);
  }
};

/// How often, with --redis, each instance sends its user list to everyone (its own
/// users and the other instances'): newcomers elsewhere learn it within this time, and
/// a page drops the list of an instance not heard of for three periods (it died).
constexpr std::chrono::seconds roster_period{5};

/// With --redis: every `roster_period`, this instance's `users` envelope to everyone;
/// at once too when the link to Redis comes (back) up, which it says on stderr. Ends
/// at stop (`chat.stopping`, and `timer` cancelled).
asio::awaitable<void> send_rosters(chat_server& chat, asio::steady_timer& timer, std::string redis) {
  constexpr std::chrono::seconds tick{1};
  auto since_roster = roster_period; // the first tick sends one
  for (;;) {
    timer.expires_after(tick);
    std::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec || chat.stopping) co_return;
    since_roster += tick;
    const bool linked = chat.srv.redis_connected();
    if (linked && !chat.redis_linked) {
      fmt::print(stderr, "chat: sharing the room through {}\n", redis);
      since_roster = roster_period;
    }
    chat.redis_linked = linked;
    if (since_roster < roster_period) continue;
    since_roster = {};
    std::vector<chat::delivery> roster{chat.room.roster()};
    co_await chat.send(std::move(roster));
  }
}

/// With --redis: the server's own errors (those of no connection), such as Redis going
/// away, on stderr; the server keeps serving its own users meanwhile.
asio::awaitable<void> print_server_errors(chat_server& chat) {
  auto errors = chat.srv.errors();
  while (auto e = co_await errors.next()) {
    if (e->peer) continue;
    if (e->error == websockets::error::redis_unavailable) chat.redis_linked = false;
    fmt::print(stderr, "chat: {}\n", e->error.message());
  }
}

/// How long a client has, after `/file`, to start sending the bytes (while it has not,
/// the room's messages wait: the bytes must follow the envelope at once).
constexpr std::chrono::seconds file_start_timeout{10};

/// The send order held for one connection's announced file: from the envelope until
/// the bytes are relayed (a whole message) or their relay has begun (a stream).
struct file_hold {
  explicit file_hold(const asio::any_io_executor& ex) : timer{ex} {}
  std::optional<async_mutex::guard> guard;
  asio::steady_timer timer;

  void release() {
    guard.reset();
    timer.cancel();
  }
};

/// True when a browser's `Origin` names the host it connected to (or when there is no
/// `Origin`: not a browser). Stops other sites' pages from using a visitor's browser to
/// chat here in their name.
bool same_origin(const socket& s) {
  const auto& origin = s.request().origin();
  if (!origin) return true;
  const std::string host = s.request().head().header("Host");
  return *origin == "http://" + host || *origin == "https://" + host;
}

/// One connection, from open to close: its events in the order it sent them.
asio::awaitable<void> serve(chat_server& chat, socket_ptr sock, websockets::generator<websockets::event> events) {
  const chat::client_id id = sock->id();
  if (!same_origin(*sock)) {
    (void)co_await sock->close(websockets::close_code::policy_violation, "cross-origin page");
    co_return;
  }
  chat.peers[id] = sock;
  co_await chat.send(chat.room.open(id));

  const auto hold = std::make_shared<file_hold>(chat.ex);
  // A fragmented text message being gathered: at most one byte past the room's limit,
  // enough for the room to answer that it is too long.
  std::optional<std::string> text_stream;
  const std::size_t keep = chat.room.room_limits().max_text + 1;

  // A text message: a chat message or a command. A `/file` keeps the send order held
  // (see file_hold) until its bytes come, or for `file_start_timeout`.
  const auto on_text = [&](std::string_view text) -> asio::awaitable<void> {
    const auto deliveries = chat.room.text(id, text, std::chrono::system_clock::now());
    if (deliveries.empty()) co_return;
    auto held = co_await chat.out.lock();
    co_await chat.send_locked(deliveries);
    if (!std::ranges::any_of(deliveries, &chat::delivery::announces_file)) co_return;
    hold->guard.emplace(std::move(held));
    hold->timer.expires_after(file_start_timeout);
    hold->timer.async_wait([hold, &chat, id](const std::error_code& ec) {
      if (ec || !hold->guard) return;
      hold->release();
      chat.room.cancel_file(id);
    });
  };

  while (auto ev = co_await events.next()) {
    if (auto* start = std::get_if<websockets::stream_start>(&*ev)) {
      if (start->opcode == websockets::opcode::binary) {
        auto decision = chat.room.binary(id);
        if (decision.relay) {
          // Attached before any co_await, so the relay has the stream from its first
          // byte; the held order keeps everything else out until the relay has begun.
          asio::co_spawn(chat.ex, websockets::pipe(sock, chat.srv), report);
          continue;
        }
        hold->release();
        co_await chat.send(std::move(decision.out));
        continue;
      }
      hold->release();
      chat.room.cancel_file(id);
      text_stream.emplace();
      continue;
    }
    if (auto* data = std::get_if<websockets::stream_data>(&*ev)) {
      hold->release(); // the relay has its first bytes: its recipients are claimed
      if (text_stream && text_stream->size() < keep)
        text_stream->append(std::string_view{data->chunk}.substr(0, keep - text_stream->size()));
      continue;
    }
    if (std::holds_alternative<websockets::stream_end>(*ev)) {
      hold->release();
      if (text_stream) {
        const std::string text = std::move(*text_stream);
        text_stream.reset();
        co_await on_text(text);
      }
      continue;
    }
    if (auto* m = std::get_if<websockets::message>(&*ev)) {
      if (m->opcode == websockets::opcode::text) {
        hold->release();
        co_await on_text(m->text());
        continue;
      }
      // A whole binary message (one frame under the server's stream_threshold):
      // right after its envelope, to everyone but its sender, as one broadcast.
      auto decision = chat.room.binary(id);
      if (decision.relay && hold->guard) {
        co_await chat.srv.broadcast({.fin = true, .opcode = websockets::opcode::binary}, m->bytes(), sock.get());
        hold->release();
        continue;
      }
      hold->release();
      co_await chat.send(std::move(decision.out));
      continue;
    }
    if (std::holds_alternative<websockets::close_event>(*ev)) break;
  }
  hold->release();
  chat.room.cancel_file(id);
  chat.peers.erase(id);
  co_await chat.send(chat.room.close(id));
}

/// Accepts sockets; each gets its own coroutine, subscribed before it reads anything.
asio::awaitable<void> accept(chat_server& chat) {
  auto opened = chat.srv.connections();
  while (auto sock = co_await opened.next()) {
    auto events = (*sock)->events();
    asio::co_spawn(chat.ex, serve(chat, *sock, std::move(events)), report);
  }
}

/// The page at the url's path; `/` redirects there when the path is another; 404
/// elsewhere. (Only GET gets here: the server answers other methods with 400 itself.)
websockets::http_handler page_handler(std::string path) {
  return [path = std::move(path)](const websockets::http_head& request) -> asio::awaitable<std::string> {
    const std::string_view target = request.target();
    const std::string_view route = target.substr(0, target.find('?'));
    if (route == "/" && path != "/")
      co_return fmt::format("HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                            path);
    if (route != path) {
      constexpr std::string_view body = "not found\n";
      co_return fmt::format("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                            "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                            body.size(), body);
    }
    const std::string_view page = embedded::page_html;
    co_return fmt::format(
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Length: {}\r\n"
        "Cache-Control: no-cache\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Referrer-Policy: no-referrer\r\n"
        "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src blob: data:; connect-src 'self' ws: wss: blob:; base-uri 'none'; form-action 'none'\r\n"
        "Connection: close\r\n\r\n{}",
        page.size(), page);
  };
}

struct arguments {
  std::string url = "ws://localhost:3000";
  websockets::server_tls tls;
  bool deflate = false;
  std::string redis; ///< empty: this chat alone
};

[[noreturn]] void fail(std::string_view message) {
  fmt::print(stderr, "chat: {} (see chat --help)\n", message);
  std::exit(2);
}

/// Reads the command line; exits with 0 for --help and 2 for a bad argument.
arguments parse(int argc, char** argv) {
  arguments args;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", usage);
      std::exit(0);
    }
    if (arg == "--deflate") {
      args.deflate = true;
      continue;
    }
    // --name VALUE or --name=VALUE
    std::string_view value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc && (arg == "--url" || arg == "--cert" || arg == "--key" || arg == "--redis")) {
      value = argv[++i];
    } else {
      const bool takes_value = arg == "--url" || arg == "--cert" || arg == "--key" || arg == "--redis";
      fail(fmt::format("{} '{}'", takes_value ? "missing value for" : "unknown argument", arg));
    }
    if (arg == "--url") {
      args.url = value;
    } else if (arg == "--cert") {
      args.tls.certificate_chain_file = value;
    } else if (arg == "--key") {
      args.tls.private_key_file = value;
    } else if (arg == "--redis") {
      if (value.empty()) fail("--redis needs a redis:// url");
      args.redis = value;
    } else {
      fail(fmt::format("unknown argument '{}'", arg));
    }
  }
  const bool secure = args.url.starts_with("wss:");
  const bool tls_files = !args.tls.certificate_chain_file.empty() || !args.tls.private_key_file.empty();
  if (!secure && tls_files) fail("--cert and --key go with a wss:// url");
  if (secure && (args.tls.certificate_chain_file.empty() || args.tls.private_key_file.empty()))
    fail("a wss:// url needs --cert and --key");
  return args;
}

} // namespace

int main(int argc, char** argv) {
  const arguments args = parse(argc, argv);
  const auto url = boost::urls::parse_uri(args.url);
  if (!url || (url->scheme() != "ws" && url->scheme() != "wss")) {
    fmt::print(stderr, "chat: not a ws:// url: '{}'\n", args.url);
    return 2;
  }

  try {
    asio::io_context io{1};
    websockets::server_options options{.url = args.url, .max_connections = 100};
    options.tls = args.tls;
    options.deflate.enabled = args.deflate;
    options.redis = args.redis; // std::invalid_argument for a bad url, or a build without hiredis
    chat_server chat{io.get_executor(), options};
    const std::string path = url->path().empty() ? "/" : std::string{url->path()};
    chat.srv.on_http(page_handler(path));

    auto loop = chat.srv.listen();
    // The address to print: the url's host with the port actually bound.
    const std::string authority = fmt::format("{}:{}", url->encoded_host(), chat.srv.local_endpoint().port());
    asio::co_spawn(io, std::move(loop), report);
    asio::co_spawn(io, accept(chat), report);

    asio::steady_timer rosters{io};
    if (!args.redis.empty()) {
      // The instance's name in its `users` envelopes: the address it listens on, with
      // the machine's name for an unspecified address (0.0.0.0 on several machines).
      const auto bound = chat.srv.local_endpoint();
      chat.room.set_server(bound.address().is_unspecified()
                               ? fmt::format("{}:{}", asio::ip::host_name(), bound.port())
                               : authority);
      asio::co_spawn(io, send_rosters(chat, rosters, args.redis), report);
      asio::co_spawn(io, print_server_errors(chat), report);
    }

    asio::signal_set signals{io, SIGINT, SIGTERM};
    signals.async_wait([&](const std::error_code& ec, int) {
      if (ec) return;
      chat.stopping = true;
      rosters.cancel();
      asio::co_spawn(io, chat.srv.stop(), report);
    });

    const bool secure = url->scheme() == "wss";
    fmt::print("chat: open {0}://{1}{2} in a browser (WebSocket at {3}://{1}{2})\n", secure ? "https" : "http",
               authority, path, secure ? "wss" : "ws");
    std::fflush(stdout);
    io.run();
  } catch (const std::invalid_argument& e) { // the url, or --redis
    fmt::print(stderr, "chat: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) { // e.g. the port is taken
    fmt::print(stderr, "chat: {}\n", e.what());
    return 1;
  }
}
