// conformance: our RFC 6455 conformance suite, in the spirit of Autobahn|Testsuite's
// sections 1 to 10. It starts the echo sample, runs every case on a fresh connection,
// stops the echo with SIGTERM, and prints a table of families with passed and failed
// counts, then one paragraph per failed case. Exits 1 if any case failed (or the echo
// did not exit cleanly), 2 for bad arguments.
//
//   conformance [--deflate] [--case ID]... [--list] [--verbose] [--patience MS] ECHO-PROGRAM
//   conformance [--deflate] [--case ID]... [--list] [--verbose] [--patience MS] --server ws://HOST:PORT/
#include "cases.hpp"
#include "deflate.hpp"
#include "utf8_battery.hpp"

#include <fmt/core.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using namespace conformance;
using namespace std::chrono_literals;

constexpr std::string_view usage = R"(usage: conformance [options] ECHO-PROGRAM
       conformance [options] --server ws://HOST:PORT/

Runs the conformance cases against the echo sample (started here, on a free port) or
against a server already running.

  --deflate        permessage-deflate mode: start the echo with --deflate, offer
                   permessage-deflate in every handshake, inflate what comes compressed,
                   and run the compression family (12) too
  --case ID        run only this case, or the cases under it: 6.4.1, 6.4, 6, 6.12.3-failfast
                   (repeatable)
  --list           list the cases (those selected) and exit
  --verbose        one line per case as it runs
  --patience MS    how long to wait for each thing the server must do (default 5000;
                   cases with megabytes of payload wait at least 30000)
  --server URL     test this server instead of starting one
)";

struct arguments {
  std::string echo_program;
  std::string server_url;
  std::vector<std::string> selected;
  bool list = false;
  bool verbose = false;
  bool deflate = false;
  std::chrono::milliseconds patience{5000};
};

[[noreturn]] void bad_usage(std::string_view why) {
  fmt::print(stderr, "conformance: {}\n{}", why, usage);
  std::exit(2);
}

arguments parse(int argc, char** argv) {
  arguments args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) bad_usage(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", usage);
      std::exit(0);
    } else if (arg == "--case") {
      args.selected.emplace_back(value());
    } else if (arg == "--list") {
      args.list = true;
    } else if (arg == "--verbose") {
      args.verbose = true;
    } else if (arg == "--deflate") {
      args.deflate = true;
    } else if (arg == "--server") {
      args.server_url = value();
    } else if (arg == "--patience") {
      const std::string_view ms = value();
      unsigned long long n = 0;
      const auto [end, ec] = std::from_chars(ms.data(), ms.data() + ms.size(), n);
      if (ec != std::errc{} || end != ms.data() + ms.size() || n == 0) bad_usage("--patience needs a number of milliseconds");
      args.patience = std::chrono::milliseconds{n};
    } else if (arg.starts_with("--") || !args.echo_program.empty()) {
      bad_usage(fmt::format("unexpected argument '{}'", arg));
    } else {
      args.echo_program = arg;
    }
  }
  if (!args.list && args.echo_program.empty() == args.server_url.empty())
    bad_usage("give the echo program or --server, one of them");
  return args;
}

/// `id` is `pattern`, or a case under it (the pattern followed by '.' or '-').
bool is_selected(std::string_view id, const std::vector<std::string>& patterns) {
  if (patterns.empty()) return true;
  for (const std::string& p : patterns)
    if (id == p || (id.starts_with(p) && (id[p.size()] == '.' || id[p.size()] == '-'))) return true;
  return false;
}

/// The echo sample, started on a free loopback port; stopped with SIGTERM by `stop()`.
class echo_process {
public:
  echo_process(const std::string& program, bool deflate) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    // Large messages need the limit at 16 MiB (its default, said again here); every case
    // opens a connection, and a closed one may still be counted for a moment.
    std::vector<std::string> args = {program, "--url", "ws://127.0.0.1:0/", "--max-connections", "1000",
                                     "--max-message-size", "16777216"};
    if (deflate) args.emplace_back("--deflate");
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      throw std::runtime_error(fmt::format("cannot start {}: {}", program, std::strerror(rc)));
    }
    stdout_ = out[0];
    url_ = read_listening_url();
  }
  echo_process(const echo_process&) = delete;
  echo_process& operator=(const echo_process&) = delete;
  ~echo_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(stdout_);
  }

  [[nodiscard]] const std::string& url() const { return url_; }

  /// The echo's exit status if it has died (128 + the signal that killed it).
  std::optional<int> died() {
    if (pid_ <= 0) return status_;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
    pid_ = -1;
    status_ = decode(status);
    return status_;
  }

  /// Stops the echo gracefully; its exit status, or 128 + the signal that killed it.
  int stop() {
    if (pid_ <= 0) return status_.value_or(0);
    ::kill(pid_, SIGTERM);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        fmt::print(stderr, "conformance: the echo did not stop within 20 s of SIGTERM\n");
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    return decode(status);
  }

private:
  static int decode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

  /// The first line of stdout: "echo: listening on ws://127.0.0.1:PORT/".
  std::string read_listening_url() {
    constexpr std::string_view prefix = "echo: listening on ";
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (line.find('\n') == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{stdout_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        throw std::runtime_error("the echo did not say where it listens within 30 s");
      char buffer[256];
      const ssize_t n = ::read(stdout_, buffer, sizeof buffer);
      if (n <= 0) throw std::runtime_error(fmt::format("the echo exited before listening (it said '{}')", line));
      line.append(buffer, static_cast<std::size_t>(n));
    }
    line.resize(line.find('\n'));
    if (!line.starts_with(prefix)) throw std::runtime_error(fmt::format("unexpected first line from the echo: '{}'", line));
    return line.substr(prefix.size());
  }

  pid_t pid_ = -1;
  std::optional<int> status_; // once it has exited
  int stdout_ = -1;
  std::string url_;
};

/// Our UTF-8 checker must agree with every verdict of the battery, or the fail-fast cases
/// would cut at the wrong byte.
bool utf8_checker_agrees() {
  bool agrees = true;
  for (const utf8_group& g : utf8_battery())
    for (const utf8_sample& s : g.samples)
      if (check_utf8(s.bytes).valid() != s.valid) {
        fmt::print(stderr, "conformance: our UTF-8 checker calls {} {} ({})\n", hex(s.bytes), s.valid ? "invalid" : "valid", g.title);
        agrees = false;
      }
  return agrees;
}

/// Our check of the server's permessage-deflate answer must give RFC 7692's verdicts on
/// these answers, or deflate mode would let a bad answer through.
bool answer_checker_agrees() {
  struct sample {
    std::string_view offer;
    std::string_view answer;
    bool valid;
  };
  constexpr std::string_view usual = default_offer;
  constexpr sample samples[] = {
      {usual, "permessage-deflate", true},
      {usual, "permessage-deflate; client_max_window_bits=12", true},
      {usual, "permessage-deflate;client_max_window_bits=\"10\"", true},
      {usual, "permessage-deflate ; server_no_context_takeover ;\tclient_no_context_takeover", true},
      {usual, "permessage-deflate; server_max_window_bits=8", true},
      {usual, "permessage-deflate; client_max_window_bits", false},
      {usual, "permessage-deflate; client_max_window_bits=7", false},
      {usual, "permessage-deflate; client_max_window_bits=08", false},
      {usual, "permessage-deflate; server_max_window_bits=16", false},
      {usual, "permessage-deflate; server_max_window_bits", false},
      {usual, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", false},
      {usual, "permessage-deflate; server_no_context_takeover=1", false},
      {usual, "permessage-deflate; unknown_parameter", false},
      {usual, "permessage-deflate;", false},
      {usual, "permessage-deflate, permessage-deflate", false},
      {usual, "x-webkit-deflate-frame", false},
      {"permessage-deflate", "permessage-deflate; client_max_window_bits=15", false},
      {"permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10", true},
      {"permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=11", false},
      {"permessage-deflate; server_max_window_bits=10", "permessage-deflate", true},
      {"permessage-deflate; server_no_context_takeover", "permessage-deflate", false},
      {"permessage-deflate; client_max_window_bits=10", "permessage-deflate; client_max_window_bits=11", false},
  };
  bool agrees = true;
  for (const sample& x : samples) {
    bool valid = true;
    try {
      (void)check_answer(std::string{x.answer}, read_offer(x.offer));
    } catch (const std::runtime_error&) {
      valid = false;
    }
    if (valid != x.valid) {
      fmt::print(stderr, "conformance: our check calls the answer '{}' to '{}' {}\n", x.answer, x.offer, valid ? "valid" : "invalid");
      agrees = false;
    }
  }
  return agrees;
}

struct outcome {
  const test_case* which = nullptr;
  bool passed = false;
  std::string expected{};
  std::string observed{};
  bool run = true; ///< false: the server had died before the case
  std::size_t messages = 0;   ///< whole messages the server sent
  std::size_t compressed = 0; ///< of those, compressed ones
};

outcome run(const test_case& c, const server_address& server, std::chrono::milliseconds patience) {
  outcome o{.which = &c};
  try {
    session s{server, c.id, c.slow ? std::max(patience, std::chrono::milliseconds{30s}) : patience, c.offer};
    try {
      c.run(s);
    } catch (...) {
      o.messages = s.messages_received();
      o.compressed = s.compressed_received();
      throw;
    }
    o.messages = s.messages_received();
    o.compressed = s.compressed_received();
    if (!s.finished()) throw case_failed{"the server's TCP close", "the case ended with the connection open"};
    o.passed = true;
  } catch (const case_failed& f) {
    o.expected = f.expected;
    o.observed = f.observed;
  } catch (const std::exception& e) {
    o.expected = "the case to run";
    o.observed = e.what();
  }
  return o;
}

struct tally {
  int cases = 0;
  int passed = 0;
  double seconds = 0;
};

/// Numeric order of families: 1, 2, ..., 9, 10.
struct by_number {
  bool operator()(const std::string& a, const std::string& b) const {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  }
};

void print_report(const std::vector<outcome>& outcomes, const std::map<std::string, tally, by_number>& families) {
  fmt::print("\n{:<28} {:>6} {:>7} {:>7} {:>9}\n", "family", "cases", "passed", "failed", "seconds");
  tally total;
  for (const auto& [family, t] : families) {
    fmt::print("{:<28} {:>6} {:>7} {:>7} {:>9.1f}\n", fmt::format("{:>2} {}", family, family_title(family)), t.cases, t.passed,
               t.cases - t.passed, t.seconds);
    total.cases += t.cases;
    total.passed += t.passed;
    total.seconds += t.seconds;
  }
  fmt::print("{:<28} {:>6} {:>7} {:>7} {:>9.1f}\n", "   total", total.cases, total.passed, total.cases - total.passed, total.seconds);
  // The first failures in full; past those (a crashed server fails everything) the ids.
  constexpr int in_full = 20;
  int failed = 0;
  std::string more;
  const outcome* first_not_run = nullptr;
  for (const outcome& o : outcomes) {
    if (o.passed) continue;
    if (!o.run) {
      if (!first_not_run) first_not_run = &o;
      continue;
    }
    if (++failed <= in_full)
      fmt::print("\nFAIL {}: {}\n  expected: {}\n  observed: {}\n", o.which->id, o.which->title, o.expected, o.observed);
    else
      more += " " + o.which->id;
  }
  if (!more.empty()) fmt::print("\nFAIL as well:{}\n", more);
  std::size_t messages = 0, compressed = 0;
  for (const outcome& o : outcomes) {
    messages += o.messages;
    compressed += o.compressed;
  }
  if (compressed != 0) fmt::print("\n{} of the server's {} messages came compressed\n", compressed, messages);
  if (first_not_run) {
    const auto not_run = std::count_if(outcomes.begin(), outcomes.end(), [](const outcome& o) { return !o.run; });
    fmt::print("\nFAIL {} cases not run, from {} on: {}\n", not_run, first_not_run->which->id, first_not_run->observed);
  }
}

} // namespace

int main(int argc, char** argv) {
  const arguments args = parse(argc, argv);
  std::vector<test_case> cases = all_cases({.deflate = args.deflate});
  std::erase_if(cases, [&](const test_case& c) { return !is_selected(c.id, args.selected); });
  if (cases.empty()) bad_usage("no case matches");
  if (args.list) {
    for (const test_case& c : cases) fmt::print("{:<18} {}\n", c.id, c.title);
    return 0;
  }
  if (!utf8_checker_agrees() || !answer_checker_agrees()) return 1;
  ::signal(SIGPIPE, SIG_IGN);

  try {
    std::optional<echo_process> echo;
    if (!args.echo_program.empty()) echo.emplace(args.echo_program, args.deflate);
    const std::string url = echo ? echo->url() : args.server_url;
    const server_address server = parse_ws_url(url);
    fmt::print("conformance: {} cases against {}{}\n", cases.size(), url,
               args.deflate ? fmt::format(" with permessage-deflate (offering '{}')", default_offer) : "");
    std::fflush(stdout);

    std::vector<outcome> outcomes;
    std::map<std::string, tally, by_number> families;
    for (const test_case& c : cases) {
      const auto start = std::chrono::steady_clock::now();
      if (const auto status = echo ? echo->died() : std::nullopt)
        outcomes.push_back({&c, false, "the echo running", fmt::format("the echo exited with status {}", *status), false});
      else
        outcomes.push_back(run(c, server, args.patience));
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      tally& t = families[family_of(c.id)];
      ++t.cases;
      t.passed += outcomes.back().passed ? 1 : 0;
      t.seconds += took.count();
      if (args.verbose) {
        fmt::print("{} {:<18} {:6.3f} s  {}\n", outcomes.back().passed ? "pass" : "FAIL", c.id, took.count(), c.title);
        std::fflush(stdout);
      }
    }
    print_report(outcomes, families);

    bool all_passed = std::all_of(outcomes.begin(), outcomes.end(), [](const outcome& o) { return o.passed; });
    if (echo) {
      const int status = echo->stop();
      if (status != 0) {
        fmt::print("\nFAIL the echo exited with status {} (0 expected, after SIGTERM)\n", status);
        all_passed = false;
      }
    }
    return all_passed ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "conformance: {}\n", e.what());
    return 1;
  }
}
