// What the four benchmark servers (ours and Beast's) share, so that they differ only in
// the library they use: the command line (`--port N`, 0 for a free port), the file
// descriptor limit, and the line announcing the port, which bench/run reads.
// Plain C++ and POSIX: neither our library nor Boost.
#pragma once

#include <sys/resource.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace bench {

/// The listening port from `--port N` (default 0: the system picks a free one); with
/// `threads`, `--threads N` too (our servers: event loops, default 1), and with `redis`,
/// `--redis URL` (our servers: instances joined through Redis).
inline std::uint16_t parse_port(int argc, char** argv, const char* name, std::size_t* threads = nullptr,
                                std::string* redis = nullptr) {
  std::uint16_t port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      const std::string_view value = argv[++i];
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), port);
      if (ec == std::errc{} && end == value.data() + value.size()) continue;
    }
    if (threads && arg == "--threads" && i + 1 < argc) {
      const std::string_view value = argv[++i];
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), *threads);
      if (ec == std::errc{} && end == value.data() + value.size() && *threads >= 1) continue;
    }
    if (redis && arg == "--redis" && i + 1 < argc) {
      *redis = argv[++i];
      continue;
    }
    std::fprintf(stderr, "usage: %s [--port N]%s%s   (port 0, the default, picks a free port)\n", name,
                 threads ? " [--threads N]" : "", redis ? " [--redis URL]" : "");
    std::exit(2);
  }
  return port;
}

/// Raises the soft limit on open files to the hard one: 10,000 connections need more
/// than the usual 1,024 descriptors.
inline void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  limit.rlim_cur = limit.rlim_max;
  (void)setrlimit(RLIMIT_NOFILE, &limit);
}

/// The one line bench/run waits for before starting the load.
inline void announce(const char* name, std::uint16_t port) {
  std::printf("%s: listening on port %u\n", name, static_cast<unsigned>(port));
  std::fflush(stdout);
}

} // namespace bench
