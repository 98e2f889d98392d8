// beast_echo: the reference echo server on Boost.Beast, as in Beast's coroutine example
// (websocket_server_awaitable): every message goes back to its sender, text or binary.
//
//   beast_echo [--port N]     prints "beast_echo: listening on port N", stops on SIGTERM
#include "beast_server.hpp"

namespace {

using namespace bench;

net::awaitable<void> session(ws_stream ws) {
  try {
    co_await ws.async_accept(use_awaitable);
    beast::flat_buffer buffer; // kept across messages, as in Beast's async echo example
    for (;;) {
      co_await ws.async_read(buffer, use_awaitable);
      ws.text(ws.got_text());
      co_await ws.async_write(buffer.data(), use_awaitable);
      buffer.consume(buffer.size());
    }
  } catch (const beast::system_error& e) {
    session_ended("beast_echo", e);
  }
}

} // namespace

int main(int argc, char** argv) {
  return run_beast("beast_echo", argc, argv, [](tcp::socket socket) {
    const auto ex = socket.get_executor();
    net::co_spawn(ex, session(make_stream(std::move(socket))), net::detached);
  });
}
