// The part of ours_echo and ours_broadcast that is not their application: a server on
// our library at 127.0.0.1 with room for 20,000 connections (the only tuning), run on
// one thread (or `--threads N` event loops) until SIGTERM, which stops it gracefully.
#pragma once

#include "server_main.hpp"

#include <websockets/server.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <fmt/core.h>

#include <csignal>
#include <exception>
#include <utility>

namespace bench {

/// Ends the server with an error: a benchmark must not go on measuring a broken server.
inline void rethrow(const std::exception_ptr& e) {
  if (e) std::rethrow_exception(e);
}

/// Runs `app(srv)`, a coroutine, beside the server's accept loop; returns main's exit code.
template <class App>
int run_ours(const char* name, int argc, char** argv, App app) {
  std::size_t threads = 1;
  std::string redis;
  const auto port = parse_port(argc, argv, name, &threads, &redis);
  raise_fd_limit();
  try {
    asio::io_context io{1};
    websockets::server srv{io.get_executor(),
                           {.url = fmt::format("ws://127.0.0.1:{}/", port),
                            .max_connections = 20000,
                            .redis = redis,
                            .threads = threads}};
    auto loop = srv.listen();
    asio::co_spawn(io, app(srv), rethrow);
    asio::co_spawn(io, std::move(loop), rethrow);
    asio::signal_set signals{io, SIGINT, SIGTERM};
    signals.async_wait([&](const std::error_code& ec, int) {
      if (!ec) asio::co_spawn(io, srv.stop(), rethrow);
    });
    announce(name, srv.local_endpoint().port());
    io.run();
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n", name, e.what());
    return 1;
  }
}

} // namespace bench
