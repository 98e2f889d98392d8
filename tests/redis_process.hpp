// A redis-server of the test's own, for the tests of the Redis link and of servers
// joined through it: started on a free port of 127.0.0.1, killed when it goes.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <spawn.h>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace redis_test {

using namespace std::chrono_literals;

inline std::uint16_t free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

inline bool accepts(std::uint16_t port) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  std::error_code ec;
  socket.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

/// redis-server on 127.0.0.1:`port`, without persistence; killed when it goes.
class redis_process {
public:
  redis_process() : port_(free_port()) { start(); }
  ~redis_process() { kill(); }
  redis_process(const redis_process&) = delete;
  redis_process& operator=(const redis_process&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url(std::string_view channel = "") const {
    return "redis://127.0.0.1:" + std::to_string(port_) + std::string(channel);
  }

  /// Starts it (again, on the same port) and waits until it accepts connections.
  void start() {
    REQUIRE(pid_ == -1);
    const std::string port = std::to_string(port_);
    std::vector<std::string> args{"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--loglevel", "warning", "--dir", "/tmp"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    const int failed = posix_spawnp(&pid_, "redis-server", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE_MESSAGE(failed == 0, "cannot start redis-server (tests/debian-packages.sh installs it)");
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!accepts(port_)) {
      int status = 0;
      REQUIRE_MESSAGE(waitpid(pid_, &status, WNOHANG) == 0, "redis-server exited at its start");
      REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "redis-server did not start");
      std::this_thread::sleep_for(10ms);
    }
  }

  /// Kills it outright, as a crash would.
  void kill() {
    if (pid_ == -1) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

private:
  std::uint16_t port_;
  pid_t pid_ = -1;
};

/// True when redis-server can be started (it is on the PATH).
inline bool available() {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    const std::string dir{dirs.substr(0, colon)};
    if (::access((dir + "/redis-server").c_str(), X_OK) == 0) return true;
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return false;
}

} // namespace redis_test
