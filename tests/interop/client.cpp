// interop-client: our client (websockets::connect) against an echo server of another
// implementation (node_server.mjs, python_server.py; their commands are in README.md):
// messages of both types from 0 B to 16 MiB, fragmented messages from the peer (whole and
// as streams), pings both ways, every normal close path and many connections at once;
// all of it once without extensions and once with permessage-deflate. One line per
// case; exits 1 when any case failed.
//
// Against a wss:// peer: the permessage-deflate cases over TLS, our client verifying the
// peer's certificate against a test CA and the url's host, and first the cases proving
// that verification is real (no trust in the CA, a name the certificate lacks: refused).
//
//   interop-client [--connections N] [--make-certificates PROGRAM] --server PROGRAM [ARGS...]
//       starts the peer, takes its url from the `listening on URL` line it prints, and
//       stops it at the end (it also dies with this program: PR_SET_PDEATHSIG); with
//       --make-certificates (tests/make_certificates.cpp), makes a test CA and a
//       certificate for 127.0.0.1 in a temporary directory, appends `--cert CHAIN --key
//       KEY` to the peer's command, trusts the CA and requires a wss:// url
//   interop-client [--connections N] [--ca CA.pem] --url URL
//       a peer that is already running (for wss://, --ca names the CA to trust)
#include <websockets/client.hpp>
#include <websockets/socket.hpp>

#include <websockets/error.hpp>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/ssl/error.hpp>
#include <asio/steady_timer.hpp>

#include <fmt/core.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using websockets::close_code;
using websockets::opcode;
using socket_ptr = std::shared_ptr<websockets::socket>;
// Completion token that returns errors (here: a cancelled timer) instead of throwing.
constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);

// ---- The peer server, as a child process ----

/// A peer server started from its command line. Its stdout is a pipe we read its url
/// from; its stderr is ours, so whatever it complains about shows in the test log.
class peer_process {
public:
  explicit peer_process(const std::vector<std::string>& command) : command_(command.front()) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid_ == 0) {
#ifdef __linux__
      // Killed with us, even when we are killed (a test time-out) before stop() runs.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
#endif
      ::dup2(out[1], STDOUT_FILENO); // dup2 clears O_CLOEXEC on the copy
      std::vector<char*> argv;
      for (const auto& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      std::fprintf(stderr, "interop-client: cannot run %s: %s\n", argv[0], std::strerror(errno));
      ::_exit(127);
    }
    (void)parent;
    ::close(out[1]);
    out_ = out[0];
  }
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;
  ~peer_process() { (void)stop(); }

  /// The url of the `listening on URL` line the peer prints when it is ready.
  std::string read_url(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::string line;
    for (;;) {
      if (const auto end = line.find('\n'); end != std::string::npos) {
        const std::string_view prefix = "listening on ";
        const auto at = line.find(prefix);
        if (at == std::string::npos)
          throw std::runtime_error(fmt::format("{} printed '{}', not 'listening on URL'", command_, line.substr(0, end)));
        std::string url = line.substr(at + prefix.size(), end - at - prefix.size());
        while (!url.empty() && (url.back() == '\r' || url.back() == ' ')) url.pop_back();
        return url;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) throw std::runtime_error(fmt::format("{} printed no url within {} s", command_, limit.count() / 1000));
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR)
        throw std::system_error(errno, std::generic_category(), "poll");
      if (p.revents == 0) continue;
      char chunk[256];
      const auto n = ::read(out_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error(fmt::format("{} ended before printing its url ({})", command_, stop()));
      line.append(chunk, static_cast<std::size_t>(n));
    }
  }

  /// Ends the peer (SIGTERM, then SIGKILL after 5 s) and says how it ended; a peer that
  /// was already gone when asked ended on its own, which the caller reports as a failure.
  std::string stop() {
    if (pid_ <= 0) return "stopped";
    int status = 0;
    std::string how;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      how = "it had ended on its own: " + describe(status);
      exited_early_ = true;
    } else {
      ::kill(pid_, SIGTERM);
      pid_t ended = 0;
      for (int i = 0; i < 50 && (ended = ::waitpid(pid_, &status, WNOHANG)) == 0; ++i)
        std::this_thread::sleep_for(100ms);
      if (ended == 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        how = "killed after ignoring SIGTERM";
      } else {
        how = describe(status);
      }
    }
    pid_ = -1;
    ::close(out_);
    return how;
  }

  /// True when stop() found the peer already gone.
  [[nodiscard]] bool exited_early() const noexcept { return exited_early_; }

private:
  static std::string describe(int status) {
    if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return fmt::format("signal {}", WTERMSIG(status));
    return "ended";
  }

  std::string command_;
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_early_ = false;
};

// ---- Test certificates ----

/// A fresh test CA and a server certificate it signs for localhost, 127.0.0.1 and ::1,
/// made by tests/make-certificates in a temporary directory that goes when this does.
class test_certificates {
public:
  explicit test_certificates(const std::string& program) {
    std::string dir = (std::filesystem::temp_directory_path() / "interop-client-XXXXXX").string();
    if (::mkdtemp(dir.data()) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    dir_ = dir;
    const pid_t pid = ::fork();
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid == 0) {
      // It prints the paths it wrote; ours are known, and the log stays the cases'.
      const int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) ::dup2(null, STDOUT_FILENO);
      ::execl(program.c_str(), program.c_str(), dir.c_str(), static_cast<char*>(nullptr));
      std::fprintf(stderr, "interop-client: cannot run %s: %s\n", program.c_str(), std::strerror(errno));
      ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw std::runtime_error(fmt::format("{} {} failed", program, dir));
  }
  test_certificates(const test_certificates&) = delete;
  test_certificates& operator=(const test_certificates&) = delete;
  ~test_certificates() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  [[nodiscard]] std::string ca() const { return (dir_ / "ca.pem").string(); }
  [[nodiscard]] std::string chain() const { return (dir_ / "chain.pem").string(); }
  [[nodiscard]] std::string key() const { return (dir_ / "key.pem").string(); }

private:
  std::filesystem::path dir_;
};

// ---- Checks and payloads ----

/// A failed check: the case stops and its line says why.
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void expect(bool ok, std::string_view what) {
  if (!ok) throw failure(std::string(what));
}

/// Where `got` first differs from `expected`, when it does.
void expect_same(std::string_view got, std::string_view expected) {
  if (got == expected) return;
  if (got.size() != expected.size())
    throw failure(fmt::format("{} bytes came back where {} were expected", got.size(), expected.size()));
  const auto at = static_cast<std::size_t>(std::mismatch(got.begin(), got.end(), expected.begin()).first - got.begin());
  throw failure(fmt::format("byte {} of {} differs: {:#04x} instead of {:#04x}", at, got.size(),
                            static_cast<unsigned char>(got[at]), static_cast<unsigned char>(expected[at])));
}

std::string_view name_of(opcode op) { return op == opcode::text ? "text" : op == opcode::binary ? "binary" : "control"; }

void expect_message(const websockets::message& m, opcode op, std::string_view expected) {
  expect(m.opcode == op, fmt::format("a {} message came, not {}", name_of(m.opcode), name_of(op)));
  expect_same(m.payload, expected);
}

/// Byte i is i % 251 (as in ws.mjs and python_server.py): a period no power-of-two
/// boundary lines up with, so a misplaced or repeated chunk shows.
std::string pattern(std::size_t size) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i % 251);
  return bytes;
}

/// Characters of 1, 2, 3 and 4 bytes in UTF-8: the peers' `fragmented:text` unit.
constexpr std::string_view text_unit = "H\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e!"; // Hé€𝄞!

/// Valid UTF-8 of exactly `size` bytes: whole text units, then ASCII.
std::string utf8_text(std::size_t size) {
  std::string text;
  text.reserve(size);
  while (text.size() + text_unit.size() <= size) text += text_unit;
  text.resize(size, '.');
  return text;
}

std::string repeat(std::string_view unit, std::size_t times) {
  std::string s;
  s.reserve(unit.size() * times);
  for (std::size_t i = 0; i < times; ++i) s += unit;
  return s;
}

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span{s.data(), s.size()}); }

// ---- Waiting, always with a limit ----

asio::awaitable<void> sleep(std::chrono::milliseconds duration) {
  asio::steady_timer timer{co_await asio::this_coro::executor, duration};
  (void)co_await timer.async_wait(nothrow);
}

/// The next item of `gen`; a failure naming `what` when none comes within `limit`.
template <class T>
asio::awaitable<T> next(websockets::generator<T>& gen, const char* what, std::chrono::milliseconds limit = 15s) {
  auto item = co_await (gen.next() || sleep(limit));
  if (item.index() == 1) throw failure(fmt::format("no {} within {} s", what, limit.count() / 1000));
  auto& got = std::get<0>(item);
  if (!got) throw failure(fmt::format("the connection ended before the {}", what));
  co_return std::move(*got);
}

/// The next event of kind E, skipping others but failing on an error event.
template <class E>
asio::awaitable<E> next_of(websockets::generator<websockets::event>& events, const char* what) {
  for (;;) {
    auto ev = co_await next(events, what);
    if (auto* e = std::get_if<E>(&ev)) co_return std::move(*e);
    if (auto* e = std::get_if<websockets::error_event>(&ev))
      throw failure(fmt::format("error event before the {}: {}", what, e->error.message()));
  }
}

/// Where the cases connect, and how.
struct target {
  std::string url;
  bool deflate = false; ///< Offer permessage-deflate (the peer servers accept it).
  /// For wss://: the CA our client trusts besides the system's (verification stays on).
  std::string ca_file{};
  /// For wss://: the name checked against the certificate instead of the url's host.
  std::string server_name{};

  [[nodiscard]] bool secure() const { return url.starts_with("wss://"); }
};

asio::awaitable<socket_ptr> open(target peer) {
  websockets::connect_options options; // named: g++ 12 and aggregates in co_await
  options.deflate.enabled = peer.deflate;
  // Not a speed check: each wss:// connect builds its own TLS context and reads the
  // system's trust anchors into it, on the one thread every connection of the crowd
  // shares, so 100 at once under the sanitizers on a busy machine pass 10 s.
  options.handshake_timeout = 60s;
  options.tls.ca_file = peer.ca_file;
  options.tls.server_name = peer.server_name;
  co_return co_await websockets::connect(co_await asio::this_coro::executor, peer.url, options);
}

/// Our normal close, which the peer must answer.
asio::awaitable<void> finish(socket_ptr sock) {
  const auto ec = co_await sock->close(close_code::normal, "done");
  expect(!ec, fmt::format("our close was not answered: {}", ec.message()));
}

// ---- The cases ----

/// The peer reports the extensions it agreed on: permessage-deflate when we offered it.
asio::awaitable<void> extensions(target peer) {
  auto sock = co_await open(peer);
  auto inbox = sock->messages();
  (void)co_await sock->send("extensions");
  const auto answer = co_await next(inbox, "peer's list of extensions");
  const std::string_view expected = peer.deflate ? "extensions:permessage-deflate" : "extensions:";
  expect(answer.text() == expected, fmt::format("the peer reports '{}', not '{}'", answer.text(), expected));
  co_await finish(sock);
}

/// A message of `size` bytes comes back byte for byte.
asio::awaitable<void> echo(target peer, opcode op, std::size_t size) {
  auto sock = co_await open(peer);
  auto inbox = sock->messages();
  const std::string payload = op == opcode::text ? utf8_text(size) : pattern(size);
  const auto ec = co_await sock->send(op, bytes_of(payload));
  expect(!ec, fmt::format("send: {}", ec.message()));
  expect_message(co_await next(inbox, "echo", 60s), op, payload);
  co_await finish(sock);
}

/// What the peer's `fragmented:TYPE:COUNT:N` sends, whole.
std::string fragmented_payload(opcode op, std::size_t n) {
  return op == opcode::text ? repeat(text_unit, n) : pattern(n);
}

std::string fragmented_command(opcode op, int count, std::size_t n) {
  return fmt::format("fragmented:{}:{}:{}", name_of(op), count, n);
}

/// A message the peer sends in `count` frames arrives reassembled.
asio::awaitable<void> fragmented(target peer, opcode op, int count, std::size_t n) {
  auto sock = co_await open(peer);
  auto inbox = sock->messages(); // messages only: streamed messages arrive whole here
  (void)co_await sock->send(fragmented_command(op, count, n));
  expect_message(co_await next(inbox, "fragmented message"), op, fragmented_payload(op, n));
  // The connection is still in step: an ordinary echo follows.
  (void)co_await sock->send("after the fragments");
  expect_message(co_await next(inbox, "echo after the fragments"), opcode::text, "after the fragments");
  co_await finish(sock);
}

/// The same, read as a stream: stream_start, its pieces in order, stream_end.
asio::awaitable<void> fragmented_stream(target peer, opcode op, int count, std::size_t n) {
  auto sock = co_await open(peer);
  auto streams = sock->streams();
  (void)co_await sock->send(fragmented_command(op, count, n));
  auto first = co_await next(streams, "stream_start");
  const auto* start = std::get_if<websockets::stream_start>(&first);
  expect(start != nullptr, "the stream did not begin with stream_start");
  expect(start->opcode == op, fmt::format("a {} stream began, not {}", name_of(start->opcode), name_of(op)));
  std::string whole;
  for (;;) {
    auto ev = co_await next(streams, "stream_end");
    if (const auto* data = std::get_if<websockets::stream_data>(&ev)) {
      expect(!data->chunk.empty(), "an empty stream_data");
      whole += data->chunk;
    } else {
      expect(std::holds_alternative<websockets::stream_end>(ev), "a second stream_start before stream_end");
      break;
    }
  }
  expect_same(whole, fragmented_payload(op, n));
  co_await finish(sock);
}

/// Our ping comes back as a pong event with the same payload.
asio::awaitable<void> our_ping(target peer, std::string payload) {
  auto sock = co_await open(peer);
  auto events = sock->events();
  const auto ec = co_await sock->ping(bytes_of(payload));
  expect(!ec, fmt::format("ping: {}", ec.message()));
  const auto pong = co_await next_of<websockets::pong_event>(events, "pong");
  expect_same(pong.payload, payload);
  co_await finish(sock);
}

/// The peer pings us and tells whether our automatic pong came back.
asio::awaitable<void> peer_ping(target peer) {
  auto sock = co_await open(peer);
  auto inbox = sock->messages();
  (void)co_await sock->send("ping:are you there?");
  const auto answer = co_await next(inbox, "peer's report on our pong");
  expect(answer.text() == "pong:are you there?", fmt::format("the peer reports '{}'", answer.text()));
  co_await finish(sock);
}

/// We close with `code`: the peer answers and our close event reports its answer.
asio::awaitable<void> our_close(target peer, close_code code, std::string reason) {
  auto sock = co_await open(peer);
  auto events = sock->events();
  // A round trip first: the close comes on a connection in use.
  (void)co_await sock->send("before closing");
  (void)co_await next_of<websockets::message>(events, "echo");
  const auto ec = co_await sock->close(code, reason);
  expect(!ec, fmt::format("close() reported '{}'", ec.message()));
  const auto closed = co_await next_of<websockets::close_event>(events, "close event");
  expect(closed.code == static_cast<std::uint16_t>(code),
         fmt::format("the peer answered with {}, not {}", closed.code, static_cast<std::uint16_t>(code)));
  expect(!sock->is_open(), "the socket is still open");
}

/// The peer closes with `code` and `reason`: our close event reports both.
asio::awaitable<void> peer_close(target peer, std::uint16_t code, std::string reason) {
  auto sock = co_await open(peer);
  auto events = sock->events();
  (void)co_await sock->send(fmt::format("close:{}:{}", code, reason));
  const auto closed = co_await next_of<websockets::close_event>(events, "close event");
  expect(closed.code == code, fmt::format("close event code {}, not {}", closed.code, code));
  expect(closed.reason == reason, fmt::format("close event reason '{}', not '{}'", closed.reason, reason));
  expect(!sock->is_open(), "the socket is still open");
}

/// The peer ends TCP without a close frame: 1006.
asio::awaitable<void> peer_drop(target peer) {
  auto sock = co_await open(peer);
  auto events = sock->events();
  (void)co_await sock->send("drop");
  const auto closed = co_await next_of<websockets::close_event>(events, "close event");
  expect(closed.code == 1006, fmt::format("close event code {}, not 1006", closed.code));
  expect(!sock->is_open(), "the socket is still open");
  // Sending now is refused, not thrown.
  expect(co_await sock->send("too late") == websockets::error::not_open, "a send after the drop was not refused");
}

/// Our client refuses the peer's certificate: connect throws the TLS error of a failed
/// verification (OpenSSL's `certificate verify failed`), nothing else.
asio::awaitable<void> refused(target peer) {
  std::error_code ec;
  try {
    auto sock = co_await open(peer);
    (void)co_await sock->close(); // reached only when the certificate was accepted
  } catch (const std::system_error& e) {
    ec = e.code();
  }
  expect(ec.operator bool(), "the connection opened: the certificate was accepted");
  expect(ec.category() == asio::error::get_ssl_category(),
         fmt::format("connect failed with '{}' ({} {}), not a TLS error", ec.message(), ec.category().name(), ec.value()));
  expect(ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED,
         fmt::format("the TLS error is '{}', not a failed certificate verification", ec.message()));
}

/// One of many: a text and a binary message of its own come back, then a normal close.
asio::awaitable<void> one_of_many(target peer, int i) {
  auto sock = co_await open(peer);
  auto inbox = sock->messages();
  const std::string text = fmt::format("connection {}", i);
  const std::string binary = pattern(1000 + static_cast<std::size_t>(i));
  (void)co_await sock->send(text);
  (void)co_await sock->send(bytes_of(binary));
  expect_message(co_await next(inbox, "text echo", 60s), opcode::text, text);
  expect_message(co_await next(inbox, "binary echo", 60s), opcode::binary, binary);
  co_await finish(sock);
}

/// `n` connections at once, all open together.
asio::awaitable<void> many(target peer, int n) {
  const auto ex = co_await asio::this_coro::executor;
  struct tally {
    int left;
    std::vector<std::string> failures;
    asio::steady_timer all_done;
  };
  auto t = std::make_shared<tally>(tally{n, {}, asio::steady_timer{ex, asio::steady_timer::time_point::max()}});
  for (int i = 0; i < n; ++i)
    asio::co_spawn(ex, one_of_many(peer, i), [t, i](const std::exception_ptr& e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          t->failures.push_back(fmt::format("connection {}: {}", i, x.what()));
        }
      }
      if (--t->left == 0) t->all_done.cancel();
    });
  while (t->left > 0) (void)co_await t->all_done.async_wait(nothrow);
  expect(t->failures.empty(), fmt::format("{} of {} failed, the first: {}", t->failures.size(), n,
                                          t->failures.empty() ? "" : t->failures.front()));
}

struct test_case {
  std::string name;
  std::function<asio::awaitable<void>()> body;
  std::chrono::seconds limit = 30s;
};

/// Every case against `peer`; with `peer.deflate`, named "deflate: ...", and over TLS
/// "wss, deflate: ...".
void add_battery(std::vector<test_case>& cases, const target& peer, int connections) {
  const std::string mode = std::string(peer.secure() ? "wss, " : "") + (peer.deflate ? "deflate: " : "");
  const auto add = [&](std::string name, std::function<asio::awaitable<void>()> body,
                       std::chrono::seconds limit = 30s) {
    cases.push_back({mode + name, std::move(body), limit});
  };
  add(peer.deflate ? "permessage-deflate offered and agreed" : "no extension offered, none agreed",
      [=] { return extensions(peer); });
  for (const opcode op : {opcode::text, opcode::binary})
    for (const std::size_t size : {0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20})
      add(fmt::format("{} message of {} B echoed", name_of(op), size), [=] { return echo(peer, op, size); }, 120s);
  add("binary message in 5 frames (100000 B) from the peer, reassembled",
      [=] { return fragmented(peer, opcode::binary, 5, 100000); });
  add("binary message in 3 frames (2 B, an empty one) from the peer, reassembled",
      [=] { return fragmented(peer, opcode::binary, 3, 2); });
  add("text message in 9 frames (11000 B) from the peer, reassembled",
      [=] { return fragmented(peer, opcode::text, 9, 1000); });
  add("binary message in 16 frames (1 MiB) from the peer, read as a stream",
      [=] { return fragmented_stream(peer, opcode::binary, 16, 1 << 20); });
  add("text message in 7 frames (11000 B) from the peer, read as a stream",
      [=] { return fragmented_stream(peer, opcode::text, 7, 1000); });
  for (const std::string& payload : {std::string{}, std::string{"interop"}, pattern(125)})
    add(fmt::format("our ping of {} B, pong with the same payload", payload.size()),
        [=] { return our_ping(peer, payload); });
  add("the peer's ping, answered by our pong", [=] { return peer_ping(peer); });
  add("our close 1000, answered with 1000", [=] { return our_close(peer, close_code::normal, "done"); });
  add("our close 1001, answered with 1001", [=] { return our_close(peer, close_code::going_away, "leaving"); });
  add("our close 4000, answered with 4000",
      [=] { return our_close(peer, static_cast<close_code>(4000), "application"); });
  add("the peer's close 4001 with a reason", [=] { return peer_close(peer, 4001, "going elsewhere"); });
  add("the peer's close 1000 without a reason", [=] { return peer_close(peer, 1000, ""); });
  add("the peer drops TCP: 1006", [=] { return peer_drop(peer); });
  add(fmt::format("{} connections at once", connections), [=] { return many(peer, connections); }, 120s);
}

/// Verification is on and real: the peer's certificate is refused without the CA that
/// signed it and for a name it does not carry, and accepted for each name it does carry.
/// Run first: the battery after them shows the peer serving on after refused handshakes.
void add_verification(std::vector<test_case>& cases, const target& peer) {
  const auto add = [&](std::string name, std::function<asio::awaitable<void>()> body) {
    cases.push_back({"wss, verification: " + std::move(name), std::move(body), 30s});
  };
  target untrusted = peer;
  untrusted.ca_file.clear();
  add("without the test CA (system anchors only), the certificate is refused",
      [=] { return refused(untrusted); });
  target elsewhere = peer;
  elsewhere.server_name = "elsewhere.example";
  add("trusted, but checked for a name it lacks (elsewhere.example), it is refused",
      [=] { return refused(elsewhere); });
  add("with the test CA, the url's address (IP:127.0.0.1) is accepted", [=] { return echo(peer, opcode::text, 5); });
  target localhost = peer;
  localhost.server_name = "localhost";
  add("with the test CA, its DNS name (localhost, also sent as SNI) is accepted",
      [=] { return echo(localhost, opcode::text, 5); });
}

/// The whole run: without extensions, then again with permessage-deflate; over TLS, the
/// verification cases, then permessage-deflate only.
std::vector<test_case> battery(const std::string& url, const std::string& ca_file, int connections) {
  std::vector<test_case> cases;
  const target plain{url, false, ca_file};
  if (plain.secure()) {
    add_verification(cases, plain);
  } else {
    add_battery(cases, plain, connections);
  }
  add_battery(cases, {url, true, ca_file}, connections);
  return cases;
}

/// Runs a case: what went wrong, or nothing.
asio::awaitable<std::string> attempt(const test_case& c) {
  try {
    co_await c.body();
  } catch (const std::exception& e) {
    co_return e.what();
  }
  co_return std::string{};
}

/// Runs every case, each within its limit; the number that failed.
asio::awaitable<int> run_all(std::vector<test_case> cases) {
  int failed = 0;
  for (auto& c : cases) {
    // The case's exception is caught inside: Asio's `||` ends on the first branch
    // that *succeeds*, so a throwing case would wait out its limit and lose its reason.
    auto result = co_await (attempt(c) || sleep(c.limit));
    const std::string problem =
        result.index() == 0 ? std::get<0>(result) : fmt::format("no result within {} s", c.limit.count());
    if (problem.empty()) {
      fmt::print("ok   {}\n", c.name);
    } else {
      ++failed;
      fmt::print("FAIL {}: {}\n", c.name, problem);
    }
    std::fflush(stdout);
  }
  fmt::print("{} passed, {} failed\n", cases.size() - static_cast<std::size_t>(failed), failed);
  co_return failed;
}

[[noreturn]] void usage(std::string_view problem) {
  fmt::print(stderr,
             "interop-client: {}\n"
             "usage: interop-client [--connections N] [--make-certificates PROGRAM] --server PROGRAM [ARGS...]\n"
             "       interop-client [--connections N] [--ca CA.pem] --url URL\n",
             problem);
  std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
  std::string url;
  std::vector<std::string> server;
  std::string make_certificates;
  std::string ca_file;
  int connections = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--server") {
      server.assign(argv + i + 1, argv + argc); // everything after it is the command
      break;
    }
    if (i + 1 >= argc) usage(fmt::format("{} needs a value", arg));
    const std::string_view value = argv[++i];
    if (arg == "--url") {
      url = value;
    } else if (arg == "--make-certificates") {
      make_certificates = value;
    } else if (arg == "--ca") {
      ca_file = value;
    } else if (arg == "--connections") {
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), connections);
      if (ec != std::errc{} || end != value.data() + value.size() || connections < 1)
        usage(fmt::format("--connections needs a positive number, not '{}'", value));
    } else {
      usage(fmt::format("unknown argument '{}'", arg));
    }
  }
  if (url.empty() == server.empty()) usage("give either --url or --server");
  if (!make_certificates.empty() && server.empty()) usage("--make-certificates goes with --server");
  if (!make_certificates.empty() && !ca_file.empty()) usage("--make-certificates makes its own CA: no --ca");

  try {
    std::optional<test_certificates> certificates;
    if (!make_certificates.empty()) {
      certificates.emplace(make_certificates);
      ca_file = certificates->ca();
      server.insert(server.end(), {"--cert", certificates->chain(), "--key", certificates->key()});
    }
    std::optional<peer_process> peer;
    if (!server.empty()) {
      peer.emplace(server);
      url = peer->read_url(30s);
    }
    if (certificates && !url.starts_with("wss://")) {
      fmt::print("FAIL the peer was given a certificate but serves {}, not wss://\n", url);
      return 1;
    }
    fmt::print("interop-client: peer at {}\n", url);
    std::fflush(stdout);

    asio::io_context io{1};
    int failed = -1;
    asio::co_spawn(io, run_all(battery(url, ca_file, connections)), [&](const std::exception_ptr& e, int n) {
      failed = e ? -1 : n;
      io.stop(); // connections a timed-out case left behind do not hold us up
    });
    io.run();

    if (peer) {
      const std::string how = peer->stop();
      if (peer->exited_early()) {
        fmt::print("FAIL the peer server: {}\n", how);
        return 1;
      }
    }
    if (failed < 0) fmt::print("FAIL the battery did not complete\n");
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print("FAIL interop-client: {}\n", e.what());
    return 1;
  }
}
