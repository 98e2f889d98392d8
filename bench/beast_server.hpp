// The part of beast_echo and beast_broadcast that is not their application, written the
// way Beast's own coroutine examples are (boost::asio::awaitable, use_awaitable): an
// acceptor at 127.0.0.1 on one thread until SIGTERM, and the settings every session
// gets. Reference servers only: nothing here is part of our library.
#pragma once

#include "server_main.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <csignal>
#include <cstdio>
#include <exception>
#include <utility>

namespace bench {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using net::use_awaitable;
using ws_stream = websocket::stream<beast::tcp_stream>;

/// A WebSocket stream over an accepted socket, with the settings both Beast servers use.
inline ws_stream make_stream(tcp::socket socket) {
  // As ours does: a benchmark of small messages must not wait on Nagle's algorithm.
  socket.set_option(tcp::no_delay(true));
  ws_stream ws{std::move(socket)};
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  // Beast splits outgoing messages into 4 KiB frames by default, one write call each;
  // ours sends a message as one frame. Same frames on the wire, so the same work for
  // the client.
  ws.auto_fragment(false);
  return ws;
}

/// A session's end: a close handshake is the normal one; anything else is printed (the
/// load generator fails on its side too), and the server goes on.
inline void session_ended(const char* name, const beast::system_error& e) {
  if (e.code() != websocket::error::closed)
    std::fprintf(stderr, "%s: session: %s\n", name, e.code().message().c_str());
}

/// Accepts connections forever, handing each to `start(socket)`.
template <class Start>
net::awaitable<void> accept_loop(tcp::acceptor& acceptor, Start start) {
  for (;;) start(co_await acceptor.async_accept(use_awaitable));
}

/// Runs the acceptor until SIGTERM; returns main's exit code. Errors outside a session
/// (accepting) end the server with an error.
template <class Start>
int run_beast(const char* name, int argc, char** argv, Start start) {
  const auto port = parse_port(argc, argv, name);
  raise_fd_limit();
  try {
    net::io_context io{1};
    tcp::acceptor acceptor{io};
    const tcp::endpoint at{net::ip::make_address("127.0.0.1"), port};
    acceptor.open(at.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(at);
    acceptor.listen(net::socket_base::max_listen_connections);
    net::co_spawn(io, accept_loop(acceptor, std::move(start)), [](const std::exception_ptr& e) {
      if (e) std::rethrow_exception(e);
    });
    net::signal_set signals{io, SIGINT, SIGTERM};
    signals.async_wait([&](const beast::error_code& ec, int) {
      if (!ec) io.stop();
    });
    announce(name, acceptor.local_endpoint().port());
    io.run();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

} // namespace bench
