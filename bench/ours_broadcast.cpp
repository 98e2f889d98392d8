// ours_broadcast: the benchmark's broadcast server on our library, written as a user
// would (see the README's example). The protocol, the same as beast_broadcast's: every
// message any client sends goes to every connected client, the sender included, as a
// binary message, in the order received.
//
//   ours_broadcast [--port N] [--threads N]   prints "ours_broadcast: listening on port N", stops on SIGTERM
#include "ours_server.hpp"

namespace {

asio::awaitable<void> relay(websockets::server& srv) {
  auto messages = srv.messages();
  while (auto m = co_await messages.next())
    co_await srv.broadcast({.fin = true, .opcode = websockets::opcode::binary}, m->bytes());
}

} // namespace

int main(int argc, char** argv) { return bench::run_ours("ours_broadcast", argc, argv, relay); }
