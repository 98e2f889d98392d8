// ours_echo: the benchmark's echo server on our library, written as a user would (see
// samples/echo): every message goes back to its sender with its opcode.
//
//   ours_echo [--port N] [--threads N]   prints "ours_echo: listening on port N", stops on SIGTERM
#include "ours_server.hpp"

#include <memory>
#include <utility>

namespace {

asio::awaitable<void> echo_socket(std::shared_ptr<websockets::socket> sock,
                                  websockets::generator<websockets::message> messages) {
  while (auto m = co_await messages.next())
    if (co_await sock->send(m->opcode, m->bytes())) break; // closed: nothing more to echo
}

asio::awaitable<void> echo_all(websockets::server& srv) {
  auto opened = srv.connections();
  while (auto sock = co_await opened.next()) {
    auto messages = (*sock)->messages(); // subscribed before the socket reads anything
    // On the socket's own event loop (one of several with --threads).
    asio::co_spawn((*sock)->executor(), echo_socket(*sock, std::move(messages)), bench::rethrow);
  }
}

} // namespace

int main(int argc, char** argv) { return bench::run_ours("ours_echo", argc, argv, echo_all); }
