// echo: the smallest useful server. Every message comes back to its sender with its
// opcode; with --broadcast, every message (and every fragmented stream, as a stream)
// goes to every connected client, the sender included.
//
//   echo [--url URL] [--max-connections N] [--timeout MS] [--max-message-size BYTES]
//        [--max-fragments N] [--handshake-timeout MS] [--close-timeout MS]
//        [--max-queued-bytes BYTES] [--overflow close|drop|wait] [--deflate]
//        [--broadcast] [--redis URL] [--threads N] [--cert FILE --key FILE] [--stats] [--help]
#include <websockets/server.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <boost/url/parse.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <stdexcept>
#include <variant>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace {

constexpr std::string_view usage = R"(usage: echo [options]

Echoes every WebSocket message back to its sender, with its opcode.

  --url URL                  where to listen, ws://HOST:PORT/PATH (default ws://localhost:3000),
                             or wss://... with --cert and --key; port 0 picks a free port,
                             printed at start
  --cert FILE                the certificate chain (PEM) of a wss:// url
  --key FILE                 its private key (PEM)
  --max-connections N        open connections allowed; more get HTTP 503 (default 10)
  --timeout MS               idle time before a ping, and again before closing (default 600000;
                             0 disables)
  --max-message-size BYTES   largest message; bigger ones close the connection with 1009
                             (default 16777216)
  --max-fragments N          most frames in one message; more close with 1009 (default 131072)
  --handshake-timeout MS     time a client has to send its upgrade request (default 10000)
  --close-timeout MS         time a client has to answer our close frame before TCP is
                             closed anyway (default 5000)
  --max-queued-bytes BYTES   unsent bytes queued for one client, past which --overflow
                             decides (default 4194304)
  --overflow POLICY          what a message to a client past --max-queued-bytes meets:
                             close (the client is closed with 1008; default), drop (the
                             message is dropped for that client) or wait (the sender waits)
  --deflate                  accept permessage-deflate (RFC 7692) compression offers
  --broadcast                send every message to every connected client, the sender
                             included; fragmented messages are relayed as streams
  --redis URL                with --broadcast: share broadcasts and relayed streams with the
                             other echo servers on redis://HOST[:PORT][/CHANNEL], so the
                             clients of every server get them (Redis errors are printed,
                             and the server reconnects by itself)
  --threads N                event loops, each on a thread of its own, among which
                             connections are shared out (default 1)
  --stats                    count connections: on SIGUSR1, and once more when it stops,
                             print a line 'echo: stats opened=N closed=N open=N errors=N
                             dropped=N closes=CODE:N,...' (close events by code; dropped:
                             messages dropped by --overflow drop)
  --help                     show this help
)";

void report(const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    fmt::print(stderr, "echo: {}\n", x.what());
  }
}

[[noreturn]] void fail(std::string_view message) {
  fmt::print(stderr, "echo: {} (see echo --help)\n", message);
  std::exit(2);
}

/// A whole decimal number in [min, max]; anything else ends the program with 2.
std::uint64_t number(std::string_view option, std::string_view text, std::uint64_t min, std::uint64_t max) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size())
    fail(fmt::format("{} needs a whole number, not '{}'", option, text));
  if (ec == std::errc::result_out_of_range || value < min || value > max)
    fail(fmt::format("{} must be between {} and {}, not '{}'", option, min, max, text));
  return value;
}

struct arguments {
  websockets::server_options options;
  bool broadcast = false;
  bool stats = false;
};

arguments parse(int argc, char** argv) {
  arguments args;
  constexpr std::uint64_t max_ms = 365ULL * 24 * 3600 * 1000; // a year
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", usage);
      std::exit(0);
    }
    if (arg == "--broadcast") {
      args.broadcast = true;
      continue;
    }
    if (arg == "--deflate") {
      args.options.deflate.enabled = true;
      continue;
    }
    if (arg == "--stats") {
      args.stats = true;
      continue;
    }
    // --name VALUE or --name=VALUE
    std::optional<std::string_view> value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    const auto take = [&]() -> std::string_view {
      if (value) return *value;
      if (i + 1 >= argc) fail(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    auto& o = args.options;
    if (arg == "--url") {
      o.url = take();
    } else if (arg == "--max-connections") {
      o.max_connections = static_cast<std::size_t>(number(arg, take(), 1, 1'000'000));
    } else if (arg == "--timeout") {
      o.timeout = std::chrono::milliseconds{number(arg, take(), 0, max_ms)};
    } else if (arg == "--max-message-size") {
      o.max_message_size = number(arg, take(), 1, std::uint64_t{1} << 40);
      o.max_frame_size = std::min(o.max_frame_size, o.max_message_size);
    } else if (arg == "--threads") {
      o.threads = static_cast<std::size_t>(number(arg, take(), 1, 256));
    } else if (arg == "--max-fragments") {
      o.max_fragments = static_cast<std::uint32_t>(number(arg, take(), 1, 1U << 31));
    } else if (arg == "--handshake-timeout") {
      o.handshake_timeout = std::chrono::milliseconds{number(arg, take(), 1, max_ms)};
    } else if (arg == "--redis") {
      o.redis = take();
    } else if (arg == "--cert") {
      o.tls.certificate_chain_file = take();
    } else if (arg == "--key") {
      o.tls.private_key_file = take();
    } else if (arg == "--close-timeout") {
      o.close_timeout = std::chrono::milliseconds{number(arg, take(), 1, max_ms)};
    } else if (arg == "--max-queued-bytes") {
      o.max_queued_bytes = static_cast<std::size_t>(number(arg, take(), 1, std::uint64_t{1} << 40));
    } else if (arg == "--overflow") {
      const std::string_view policy = take();
      if (policy == "close") {
        o.overflow = websockets::overflow_policy::close;
      } else if (policy == "drop") {
        o.overflow = websockets::overflow_policy::drop;
      } else if (policy == "wait") {
        o.overflow = websockets::overflow_policy::wait;
      } else {
        fail(fmt::format("--overflow is close, drop or wait, not '{}'", policy));
      }
    } else {
      fail(fmt::format("unknown argument '{}'", argv[i]));
    }
  }
  const bool secure = args.options.url.starts_with("wss:");
  if (!secure && (!args.options.tls.certificate_chain_file.empty() || !args.options.tls.private_key_file.empty()))
    fail("--cert and --key go with a wss:// url");
  if (secure && (args.options.tls.certificate_chain_file.empty() || args.options.tls.private_key_file.empty()))
    fail("a wss:// url needs --cert and --key");
  if (!args.options.redis.empty() && !args.broadcast) fail("--redis goes with --broadcast");
  return args;
}

/// `url` with the port actually bound (it may have been 0), and `/` for an empty path.
std::string listening_url(std::string_view url, std::uint16_t port) {
  const auto u = boost::urls::parse_uri(url).value();
  return fmt::format("{}://{}:{}{}", u.scheme(), u.encoded_host(), port,
                     u.encoded_path().empty() ? "/" : std::string_view{u.encoded_path()});
}

using socket_ptr = std::shared_ptr<websockets::socket>;

/// Echo: each socket's messages go back to it.
asio::awaitable<void> echo_socket(socket_ptr sock, websockets::generator<websockets::message> messages) {
  while (auto m = co_await messages.next())
    if (co_await sock->send(m->opcode, m->bytes())) break; // closed: nothing more to echo
}

asio::awaitable<void> echo_all(websockets::server& srv) {
  auto opened = srv.connections();
  while (auto sock = co_await opened.next()) {
    auto messages = (*sock)->messages(); // subscribed before the socket reads anything
    // On the socket's own event loop (with --threads, one of several threads).
    asio::co_spawn((*sock)->executor(), echo_socket(*sock, std::move(messages)), report);
  }
}

/// Broadcast: whole messages to everyone.
asio::awaitable<void> broadcast_messages(websockets::server& srv, websockets::generator<websockets::message> messages) {
  while (auto m = co_await messages.next())
    co_await srv.broadcast({.fin = true, .opcode = m->opcode}, m->bytes());
}

/// Broadcast: fragmented messages relayed to everyone as they arrive. This loop never
/// waits on a send, so it keeps reading while relays run.
asio::awaitable<void> broadcast_streams(websockets::server& srv, websockets::generator<websockets::stream_event> streams) {
  const auto ex = co_await asio::this_coro::executor;
  while (auto ev = co_await streams.next())
    if (auto* start = std::get_if<websockets::stream_start>(&*ev))
      asio::co_spawn(ex, websockets::pipe(start->peer, srv, {.include_sender = true}), report);
}

/// --redis: the link's outages (errors without a socket), as they happen.
asio::awaitable<void> print_server_errors(websockets::generator<websockets::error_event> errors) {
  while (auto ev = co_await errors.next()) {
    if (ev->peer) continue;
    fmt::print(stderr, "echo: {}\n", ev->error.message());
    std::fflush(stderr);
  }
}

/// --stats: what the server reported, counted from its own events.
struct counters {
  std::uint64_t opened = 0;
  std::uint64_t closed = 0;
  std::uint64_t errors = 0;
  std::uint64_t dropped = 0; // by sockets that have closed; open ones are asked
  std::map<std::uint16_t, std::uint64_t> close_codes;
};

asio::awaitable<void> count_opens(websockets::generator<socket_ptr> opened, counters& c) {
  // Named results: g++ 12 miscompiles a discarded temporary in a co_await condition.
  while (auto sock = co_await opened.next()) ++c.opened;
}

asio::awaitable<void> count_closes(websockets::generator<websockets::close_event> closes, counters& c) {
  while (auto ev = co_await closes.next()) {
    ++c.closed;
    ++c.close_codes[ev->code];
    c.dropped += ev->peer->dropped_messages();
  }
}

asio::awaitable<void> count_errors(websockets::generator<websockets::error_event> errors, counters& c) {
  while (auto ev = co_await errors.next()) ++c.errors;
}

void print_stats(const counters& c, const websockets::server& srv) {
  std::uint64_t dropped = c.dropped;
  for (const auto& sock : srv.sockets()) dropped += sock->dropped_messages();
  std::string codes;
  for (const auto& [code, n] : c.close_codes) codes += fmt::format("{}{}:{}", codes.empty() ? "" : ",", code, n);
  fmt::print("echo: stats opened={} closed={} open={} errors={} dropped={} closes={}\n", c.opened, c.closed,
             srv.connection_count(), c.errors, dropped, codes);
  std::fflush(stdout);
}

/// Prints the counters on every SIGUSR1.
void print_stats_on_signal(asio::signal_set& usr1, const counters& c, const websockets::server& srv) {
  usr1.async_wait([&](const std::error_code& ec, int) {
    if (ec) return;
    print_stats(c, srv);
    print_stats_on_signal(usr1, c, srv);
  });
}

} // namespace

int main(int argc, char** argv) {
  arguments args = parse(argc, argv);
  try {
    asio::io_context io{1};
    websockets::server srv{io.get_executor(), args.options};
    auto loop = srv.listen();
    if (args.broadcast) {
      asio::co_spawn(io, broadcast_messages(srv, srv.messages()), report);
      asio::co_spawn(io, broadcast_streams(srv, srv.streams()), report);
      if (!args.options.redis.empty()) asio::co_spawn(io, print_server_errors(srv.errors()), report);
    } else {
      asio::co_spawn(io, echo_all(srv), report);
    }
    counters stats;
    asio::signal_set usr1{io};
    if (args.stats) {
      asio::co_spawn(io, count_opens(srv.connections(), stats), report);
      asio::co_spawn(io, count_closes(srv.closes(), stats), report);
      asio::co_spawn(io, count_errors(srv.errors(), stats), report);
      usr1.add(SIGUSR1);
      print_stats_on_signal(usr1, stats, srv);
    }
    asio::co_spawn(io, std::move(loop), report);

    asio::signal_set signals{io, SIGINT, SIGTERM};
    signals.async_wait([&](const std::error_code& ec, int) {
      if (ec) return;
      usr1.cancel();
      asio::co_spawn(io, srv.stop(), report);
    });

    const auto at = srv.local_endpoint();
    fmt::print("echo: listening on {}\n", listening_url(srv.options().url, at.port()));
    std::fflush(stdout);
    io.run();
    if (args.stats) print_stats(stats, srv);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "echo: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo: {}\n", e.what());
    return 1;
  }
}
