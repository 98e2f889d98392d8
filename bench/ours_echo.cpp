// ours_echo: the benchmark's echo server on our library, written as a user would (see
// samples/echo): every message goes back to its sender with its opcode.
//
//   ours_echo [--port N] [--threads N]   prints "ours_echo: listening on port N", stops on SIGTERM
#include "ours_server.hpp"

#include <memory>
#include <utility>

namespace {

/// One event loop: the seed's way, one `message` stream for the whole server (no
/// coroutine, channel or timer per connection: an idle connection costs the library's
/// own state only).
asio::awaitable<void> echo_server_messages(websockets::server& srv) {
  auto messages = srv.messages();
  while (auto m = co_await messages.next())
    (void)co_await m->peer->send(m->opcode, m->bytes()); // an error: the peer closed
}

asio::awaitable<void> echo_socket(std::shared_ptr<websockets::socket> sock,
                                  websockets::generator<websockets::message> messages) {
  while (auto m = co_await messages.next())
    if (co_await sock->send(m->opcode, m->bytes())) break; // closed: nothing more to echo
}

/// Several event loops: each socket's messages read on its own loop, so that no message
/// crosses threads.
asio::awaitable<void> echo_each_socket(websockets::server& srv) {
  auto opened = srv.connections();
  while (auto sock = co_await opened.next()) {
    auto messages = (*sock)->messages(); // subscribed before the socket reads anything
    asio::co_spawn((*sock)->executor(), echo_socket(*sock, std::move(messages)), bench::rethrow);
  }
}

asio::awaitable<void> echo_all(websockets::server& srv) {
  if (srv.options().threads > 1) return echo_each_socket(srv);
  return echo_server_messages(srv);
}

} // namespace

int main(int argc, char** argv) { return bench::run_ours("ours_echo", argc, argv, echo_all); }
