// beast_broadcast: the reference broadcast server on Boost.Beast, in the style of Beast's
// chat example (chat-multi), with coroutines: every message is copied once into a
// shared_ptr<const std::string>, which goes into a write queue per session; a session's
// writer drains its queue one message at a time. The protocol, the same as
// ours_broadcast's: every message any client sends goes to every connected client, the
// sender included, as a binary message, in the order received.
//
//   beast_broadcast [--port N]   prints "beast_broadcast: listening on port N", stops on SIGTERM
#include "beast_server.hpp"

#include <deque>
#include <memory>
#include <string>
#include <unordered_set>

namespace {

using namespace bench;

class session;

/// The open sessions (chat-multi's shared_state; one thread, so no mutex).
struct shared_state {
  std::unordered_set<session*> sessions;
  void send(const std::shared_ptr<const std::string>& message);
};

class session : public std::enable_shared_from_this<session> {
public:
  session(ws_stream ws, std::shared_ptr<shared_state> state) : ws_(std::move(ws)), state_(std::move(state)) {}

  net::awaitable<void> run() {
    auto self = shared_from_this();
    try {
      co_await ws_.async_accept(use_awaitable);
      ws_.binary(true);
      state_->sessions.insert(this);
      beast::flat_buffer buffer;
      for (;;) {
        co_await ws_.async_read(buffer, use_awaitable);
        state_->send(std::make_shared<const std::string>(beast::buffers_to_string(buffer.data())));
        buffer.consume(buffer.size());
      }
    } catch (const beast::system_error& e) {
      session_ended("beast_broadcast", e);
    }
    state_->sessions.erase(this);
  }

  /// Queues a message; starts the writer unless it is running already.
  void send(std::shared_ptr<const std::string> message) {
    queue_.push_back(std::move(message));
    if (queue_.size() > 1) return;
    net::co_spawn(ws_.get_executor(), write_queue(shared_from_this()), net::detached);
  }

private:
  // A deque, not chat-multi's vector erased at the front: a burst of thousands of queued
  // messages would make that quadratic.
  net::awaitable<void> write_queue(std::shared_ptr<session> self) { // `self` keeps the session alive
    (void)self;
    try {
      while (!queue_.empty()) {
        co_await ws_.async_write(net::buffer(*queue_.front()), use_awaitable);
        queue_.pop_front();
      }
    } catch (const beast::system_error&) {
      // The reader sees the same failure and ends the session; the queue stays full,
      // so no writer starts again.
    }
  }

  ws_stream ws_;
  std::shared_ptr<shared_state> state_;
  std::deque<std::shared_ptr<const std::string>> queue_;
};

void shared_state::send(const std::shared_ptr<const std::string>& message) {
  for (session* s : sessions) s->send(message);
}

} // namespace

int main(int argc, char** argv) {
  auto state = std::make_shared<shared_state>();
  return run_beast("beast_broadcast", argc, argv, [state](tcp::socket socket) {
    const auto ex = socket.get_executor();
    auto s = std::make_shared<session>(make_stream(std::move(socket)), state);
    net::co_spawn(ex, s->run(), net::detached);
  });
}
