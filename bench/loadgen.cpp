// loadgen: the benchmark's load generator. It measures a WebSocket server from outside,
// so it uses neither our library nor Beast: one thread, epoll (edge-triggered),
// non-blocking sockets, reads of up to 1 MiB at a time, and frames masked once per size
// (sending a message copies a template and patches its 8-byte tag).
//
// Every message a client sends carries a tag in its first 8 bytes (little-endian) and a
// fixed pattern after it; every byte that comes back is checked against what it must be,
// and the tags against the order they must come in. Any wrong byte, unexpected frame,
// dropped or refused connection, or a stall (nothing received for --timeout seconds)
// ends the program with status 1 and a line starting "loadgen: FAILED:", never with a
// figure. On success the last line is "result key=value ...", which bench/run reads.
//
// Modes:
//   echo         N connections with K messages in flight each: messages/s, MB/s (echoed
//                payload), p50/p99 round trip, over --duration s after --warmup s.
//   broadcast    N connections, the first one the sender; the server sends every message
//                to all N (the sender included). --window 16: at most 16 messages not yet
//                received by everyone; --window 0: all --messages at once. Deliveries/s
//                and the time until the last receiver has the last message.
//   connections  N connections, each upgraded and one 16-byte message echoed, then idle:
//                the server's resident memory per connection (/proc/PID/status, VmRSS,
//                after minus before; before is taken after 100 connections were opened,
//                echoed and closed, as a warm-up).
// Every mode ends with a close handshake on every connection.
#include <fmt/core.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;

template <class... T>
[[noreturn]] void fail(fmt::format_string<T...> format, T&&... args) {
  fmt::print(stderr, "loadgen: FAILED: {}\n", fmt::format(format, std::forward<T>(args)...));
  std::exit(1);
}

double seconds(clock_type::duration d) { return std::chrono::duration<double>(d).count(); }
clock_type::duration after(double seconds) {
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
}

/// CPU time this process has used, user and system: over a measured stretch, divided by
/// its length, it tells whether the load generator (one thread) was the bottleneck.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto in_seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return in_seconds(usage.ru_utime) + in_seconds(usage.ru_stime);
}

constexpr std::string_view usage = R"(usage: loadgen MODE --port N [options]

MODE: echo | broadcast | connections
  --port N           the server's port on 127.0.0.1 (required)
  --second-port N    broadcast: every other receiver connects here instead (a second
                     server sharing broadcasts with the first, through Redis)
  --connections N    connections (default 100)
  --size BYTES       payload of each message, at least 8 (default 16)
  --inflight K       echo: messages in flight per connection (default 10)
  --warmup S         echo: seconds before measuring (default 1)
  --duration S       echo: seconds measured (default 5)
  --messages M       broadcast: messages the sender sends (default 2000)
  --window W         broadcast: messages not yet received everywhere, at most;
                     0 sends all at once (default 16)
  --server-pid PID   connections: the server whose memory is measured (required there)
  --settle S         connections: seconds idle before measuring (default 1)
  --timeout S        fail when nothing arrives for this long (default 10)
  --concurrency N    upgrades in progress at once while connecting (default 256)
)";

struct options {
  std::string mode;
  std::uint16_t port = 0;
  std::uint16_t second_port = 0;
  std::size_t connections = 100;
  std::size_t size = 16;
  std::size_t inflight = 10;
  double warmup = 1;
  double duration = 5;
  std::size_t messages = 2000;
  std::size_t window = 16;
  long server_pid = 0;
  double settle = 1;
  double timeout = 10;
  std::size_t concurrency = 256;
};

template <class T>
T number(std::string_view option, std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
    fail("{} needs a number, not '{}'", option, text);
  return value;
}

options parse(int argc, char** argv) {
  options o;
  if (argc < 2 || std::string_view{argv[1]} == "--help") {
    fmt::print(stderr, "{}", usage);
    std::exit(argc < 2 ? 2 : 0);
  }
  o.mode = argv[1];
  if (o.mode != "echo" && o.mode != "broadcast" && o.mode != "connections") fail("unknown mode '{}'", o.mode);
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) fail("{} needs a value", arg);
    const std::string_view value = argv[++i];
    if (arg == "--port") o.port = number<std::uint16_t>(arg, value);
    else if (arg == "--second-port") o.second_port = number<std::uint16_t>(arg, value);
    else if (arg == "--connections") o.connections = number<std::size_t>(arg, value);
    else if (arg == "--size") o.size = number<std::size_t>(arg, value);
    else if (arg == "--inflight") o.inflight = number<std::size_t>(arg, value);
    else if (arg == "--warmup") o.warmup = number<double>(arg, value);
    else if (arg == "--duration") o.duration = number<double>(arg, value);
    else if (arg == "--messages") o.messages = number<std::size_t>(arg, value);
    else if (arg == "--window") o.window = number<std::size_t>(arg, value);
    else if (arg == "--server-pid") o.server_pid = number<long>(arg, value);
    else if (arg == "--settle") o.settle = number<double>(arg, value);
    else if (arg == "--timeout") o.timeout = number<double>(arg, value);
    else if (arg == "--concurrency") o.concurrency = number<std::size_t>(arg, value);
    else fail("unknown option '{}'", arg);
  }
  if (o.port == 0) fail("--port is required");
  if (o.size < 8) fail("--size must be at least 8 (the tag)");
  if (o.connections == 0 || o.inflight == 0 || o.messages == 0 || o.concurrency == 0)
    fail("--connections, --inflight, --messages and --concurrency must be positive");
  if (o.mode == "broadcast" && o.connections < 2) fail("broadcast needs at least 2 connections");
  if (o.second_port != 0 && o.mode != "broadcast") fail("--second-port goes with broadcast");
  if (o.mode == "connections" && o.server_pid == 0) fail("connections needs --server-pid");
  if (o.settle >= o.timeout) fail("--settle must be shorter than --timeout: nothing arrives while idle");
  return o;
}

/// Latencies in nanoseconds, in log-linear buckets: exact below 128 ns, then 128 buckets
/// per power of two (under 1 % error), so that millions of samples cost no memory.
class histogram {
public:
  void add(clock_type::duration d) {
    const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(0, std::chrono::nanoseconds{d}.count()));
    ++buckets_[index(ns)];
    ++count_;
  }
  void clear() {
    buckets_.fill(0);
    count_ = 0;
  }
  /// The `p` quantile (0 to 1) in microseconds; 0 without samples.
  [[nodiscard]] double quantile_us(double p) const {
    if (count_ == 0) return 0;
    const auto wanted = static_cast<std::uint64_t>(std::ceil(p * static_cast<double>(count_)));
    const auto rank = std::max<std::uint64_t>(1, wanted);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) return value(i) / 1000.0;
    }
    return value(buckets_.size() - 1) / 1000.0;
  }

private:
  static constexpr int sub_bits = 7;
  static constexpr std::uint64_t sub = 1U << sub_bits;
  static std::size_t index(std::uint64_t v) {
    if (v < sub) return v;
    const auto shift = static_cast<std::uint64_t>(std::bit_width(v)) - sub_bits - 1;
    return sub + shift * sub + ((v >> shift) - sub);
  }
  static double value(std::size_t i) { // a bucket's middle
    if (i < sub) return static_cast<double>(i);
    const auto shift = (i - sub) / sub;
    const auto mantissa = (i - sub) % sub + sub;
    return (static_cast<double>(mantissa) + 0.5) * std::ldexp(1.0, static_cast<int>(shift));
  }
  std::array<std::uint64_t, sub + 64 * sub> buckets_{};
  std::uint64_t count_ = 0;
};

// ---- Frames ----

constexpr std::array<std::uint8_t, 4> mask_key{0x37, 0xfa, 0x21, 0x3d};
constexpr std::size_t tag_size = 8;

/// Byte `i` of every payload past the tag: varied, so that shifted or mixed-up bytes show.
std::uint8_t pattern_byte(std::size_t i) { return static_cast<std::uint8_t>(i * 131 + (i >> 8) + 7); }

/// A client frame (FIN, masked) with `payload`, masked here once.
std::vector<std::uint8_t> masked_frame(std::uint8_t opcode, const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> f{static_cast<std::uint8_t>(0x80 | opcode)};
  const auto n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<std::uint8_t>(0x80 | n));
  } else if (n < 65536) {
    f.push_back(0x80 | 126);
    f.push_back(static_cast<std::uint8_t>(n >> 8));
    f.push_back(static_cast<std::uint8_t>(n));
  } else {
    f.push_back(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<std::uint8_t>(n >> shift));
  }
  f.insert(f.end(), mask_key.begin(), mask_key.end());
  for (std::size_t i = 0; i < n; ++i) f.push_back(payload[i] ^ mask_key[i % 4]);
  return f;
}

/// The binary message every client sends, masked once: sending one is a copy with its
/// tag patched in, already masked.
class message_template {
public:
  explicit message_template(std::size_t size) {
    std::vector<std::uint8_t> payload(size);
    for (std::size_t i = tag_size; i < size; ++i) payload[i] = pattern_byte(i);
    bytes_ = masked_frame(0x2, payload);
    tag_at_ = bytes_.size() - size;
  }
  void append(std::vector<std::uint8_t>& out, std::uint64_t tag) const {
    const auto at = out.size() + tag_at_;
    out.insert(out.end(), bytes_.begin(), bytes_.end());
    for (std::size_t j = 0; j < tag_size; ++j)
      out[at + j] = static_cast<std::uint8_t>(tag >> (8 * j)) ^ mask_key[j % 4];
  }

private:
  std::vector<std::uint8_t> bytes_;
  std::size_t tag_at_ = 0;
};

/// Where a connection's frame parser is: the server's frames arrive in any pieces.
struct frame_reader {
  std::array<std::uint8_t, 10> head{}; // up to 2 + 8 length bytes (server frames are unmasked)
  std::size_t head_have = 0;
  bool in_payload = false;
  std::uint8_t opcode = 0; // of the current frame
  bool fin = false;
  std::uint64_t remaining = 0; // payload bytes of the current frame still to come
  std::string control;         // a control frame's payload
  // The data message being received; continuation frames extend it.
  bool in_message = false;
  std::uint64_t offset = 0; // its payload bytes so far
  std::uint64_t tag = 0;
};

// ---- Connections ----

/// Connections opened and closed before the `connections` mode's baseline.
constexpr std::size_t warm_up_connections = 100;

enum class phase { connecting, upgrading, open, closing, closed };

struct connection {
  int fd = -1;
  std::size_t index = 0;
  phase state = phase::connecting;
  std::string response; // the upgrade response head, as it arrives
  std::vector<std::uint8_t> out;
  std::size_t out_at = 0; // bytes of `out` already written
  frame_reader reader;
  // echo: tags sent and received; when each message in flight went out
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::vector<time_point> sent_at;
  // broadcast: the next message expected, the last probe seen
  std::uint64_t expected = 0;
  std::uint64_t probe = 0;
};

constexpr std::string_view request_key = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455's example key
constexpr std::string_view accept_value = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; // and its accept value

/// The connections, the event loop and the frame checks; the modes give it what to do
/// with each message.
class load {
public:
  explicit load(const options& o) : o_(o), message_(o.size), expected_(o.size) {
    for (std::size_t i = tag_size; i < o.size; ++i) expected_[i] = pattern_byte(i);
    close_frame_ = masked_frame(0x8, {0x03, 0xe8}); // 1000, normal closure
    request_ = fmt::format(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        o.port, request_key);
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) fail("epoll_create1: {}", std::strerror(errno));
    read_buffer_.resize(1 << 20);
  }
  load(const load&) = delete;
  load& operator=(const load&) = delete;
  ~load() { ::close(epoll_); }

  /// A message arrived whole and right: its connection, its tag, when it was read.
  std::function<void(connection&, std::uint64_t, time_point)> on_message;
  /// A connection completed its upgrade.
  std::function<void(connection&)> on_open;

  std::vector<connection>& connections() { return conns_; }
  const message_template& message() const { return message_; }

  /// Opens `count` connections, at most --concurrency upgrades at a time (the server's
  /// listen backlog is finite), and waits until all are upgraded.
  void open_all(std::size_t count) {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < count + 16)
      fail("{} connections need {} file descriptors; the limit is {} (raise it: ulimit -n)", count, count + 16,
           limit.rlim_cur);
    conns_.resize(count);
    std::size_t started = 0;
    run("connecting", [&] {
      while (started < count && started - opened_ < o_.concurrency) start(started++);
      return opened_ == count;
    });
  }

  /// Sends a close frame on every connection and waits for every answer.
  void close_all() {
    for (auto& c : conns_) {
      if (c.state != phase::open) fail("connection {} is not open at the end", c.index);
      c.out.insert(c.out.end(), close_frame_.begin(), close_frame_.end());
      c.state = phase::closing;
      flush(c);
    }
    run("closing", [&] { return closed_ == conns_.size(); });
  }

  /// Runs the event loop until `step()` returns true; `step` also runs the mode's clock.
  /// Fails when nothing has arrived for --timeout seconds.
  void run(std::string_view what, const std::function<bool()>& step) {
    last_progress_ = clock_type::now();
    std::array<epoll_event, 512> events{};
    while (!step()) {
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 10);
      if (n < 0 && errno != EINTR) fail("epoll_wait: {}", std::strerror(errno));
      for (const auto& event : std::span{events.data(), static_cast<std::size_t>(std::max(n, 0))})
        handle(conns_[event.data.u64], event.events);
      if (seconds(clock_type::now() - last_progress_) > o_.timeout)
        fail("{}: nothing received for {} s ({} of {} connections open)", what, o_.timeout, opened_,
             conns_.size());
    }
  }

  /// Writes what is queued on `c`; the rest goes when the socket has room (EPOLLOUT).
  void flush(connection& c) {
    while (c.out_at < c.out.size()) {
      const auto n = ::send(c.fd, c.out.data() + c.out_at, c.out.size() - c.out_at, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_at += static_cast<std::size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else if (n < 0 && errno != EINTR) {
        fail("connection {}: send: {}", c.index, std::strerror(errno));
      }
    }
    if (c.out_at == c.out.size()) {
      c.out.clear();
      c.out_at = 0;
    } else if (c.out_at > (1U << 20)) {
      c.out.erase(c.out.begin(), c.out.begin() + static_cast<std::ptrdiff_t>(c.out_at));
      c.out_at = 0;
    }
  }

private:
  void start(std::size_t i) {
    auto& c = conns_[i];
    c.index = i;
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) fail("socket: {}", std::strerror(errno));
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    // Connection 0 is the sender: on the first server, with half of the receivers.
    to.sin_port = htons(o_.second_port != 0 && i % 2 == 1 ? o_.second_port : o_.port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS)
      fail("connection {}: connect: {}", i, std::strerror(errno));
    // Edge-triggered: each readiness is reported once, and handled until EAGAIN.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = i;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) != 0) fail("epoll_ctl: {}", std::strerror(errno));
  }

  void handle(connection& c, std::uint32_t events) {
    if (c.state == phase::closed) return;
    if (c.state == phase::connecting) {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
      int error = 0;
      socklen_t len = sizeof error;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len);
      if (error != 0) fail("connection {}: connect: {}", c.index, std::strerror(error));
      c.state = phase::upgrading;
      c.out.assign(request_.begin(), request_.end());
    }
    const bool ended = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    if (ended || (events & EPOLLIN)) read(c, ended);
    if (c.state != phase::closed && c.out_at < c.out.size()) flush(c);
  }

  /// Reads until the socket is drained: a short read means it is, unless the peer has
  /// closed too (`to_end`), in which case the end must be read to be noticed.
  void read(connection& c, bool to_end) {
    for (;;) {
      const auto n = ::recv(c.fd, read_buffer_.data(), read_buffer_.size(), 0);
      if (n > 0) {
        last_progress_ = clock_type::now();
        received(c, read_buffer_.data(), static_cast<std::size_t>(n), last_progress_);
        if (c.state == phase::closed) return;
        if (static_cast<std::size_t>(n) < read_buffer_.size() && !to_end) return;
      } else if (n == 0) {
        fail("connection {}: the server closed the connection{}", c.index,
             c.state == phase::closing ? " without answering our close frame" : "");
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      } else if (errno != EINTR) {
        fail("connection {}: recv: {}", c.index, std::strerror(errno));
      }
    }
  }

  void received(connection& c, const std::uint8_t* p, std::size_t n, time_point now) {
    if (c.state == phase::upgrading) {
      const auto before = c.response.size();
      c.response.append(reinterpret_cast<const char*>(p), n);
      const auto end = c.response.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (c.response.size() > 8192) fail("connection {}: upgrade response head over 8 KiB", c.index);
        return;
      }
      const std::string_view head{c.response.data(), end};
      if (!head.starts_with("HTTP/1.1 101") || head.find(accept_value) == std::string_view::npos)
        fail("connection {}: upgrade refused or wrong: {}", c.index, head.substr(0, head.find('\r')));
      c.state = phase::open;
      ++opened_;
      const auto used = end + 4 - before; // of these n bytes; the rest are frames
      c.response = {};
      if (on_open) on_open(c);
      p += used;
      n -= used;
    }
    parse(c, p, n, now);
  }

  // ---- Frame parsing and checking ----

  void parse(connection& c, const std::uint8_t* p, std::size_t n, time_point now) {
    auto& r = c.reader;
    while (n > 0 && c.state != phase::closed) {
      if (!r.in_payload) {
        r.head[r.head_have++] = *p++;
        --n;
        if (r.head_have < 2) continue;
        if (r.head[1] & 0x80) fail("connection {}: the server masked a frame", c.index);
        const auto len7 = r.head[1] & 0x7f;
        const std::size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
        if (r.head_have == need) begin_frame(c, now);
        continue;
      }
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(r.remaining, n));
      payload(c, p, take);
      p += take;
      n -= take;
      r.remaining -= take;
      if (r.remaining == 0) end_frame(c, now);
    }
  }

  void begin_frame(connection& c, time_point now) {
    auto& r = c.reader;
    r.fin = (r.head[0] & 0x80) != 0;
    r.opcode = r.head[0] & 0x0f;
    if (r.head[0] & 0x70) fail("connection {}: RSV bits set without an extension", c.index);
    std::uint64_t len = r.head[1] & 0x7f;
    if (len >= 126) {
      const std::size_t bytes = len == 126 ? 2 : 8;
      len = 0;
      for (std::size_t i = 0; i < bytes; ++i) len = len << 8 | r.head[2 + i];
    }
    r.head_have = 0;
    if (r.opcode & 0x8) {
      if (!r.fin || len > 125) fail("connection {}: malformed control frame", c.index);
      r.control.clear();
    } else if (r.opcode == 0x1 || r.opcode == 0x2) {
      if (r.in_message) fail("connection {}: a new message inside a fragmented one", c.index);
      if (r.opcode != 0x2) fail("connection {}: a text message; every message sent was binary", c.index);
      r.in_message = true;
      r.offset = 0;
      r.tag = 0;
    } else if (r.opcode != 0x0 || !r.in_message) {
      fail("connection {}: unexpected opcode {}", c.index, r.opcode);
    }
    if (!(r.opcode & 0x8) && r.offset + len > o_.size)
      fail("connection {}: a message longer than the {} bytes sent", c.index, o_.size);
    r.remaining = len;
    r.in_payload = true;
    if (len == 0) end_frame(c, now);
  }

  /// Checks payload bytes at their offset in the message: the tag is collected for the
  /// mode to check; the rest must be the pattern.
  void payload(connection& c, const std::uint8_t* p, std::size_t n) {
    auto& r = c.reader;
    if (r.opcode & 0x8) {
      r.control.append(reinterpret_cast<const char*>(p), n);
      return;
    }
    for (; n > 0 && r.offset < tag_size; ++p, --n, ++r.offset) r.tag |= std::uint64_t{*p} << (8 * r.offset);
    if (n == 0) return;
    if (std::memcmp(p, expected_.data() + r.offset, n) != 0) {
      std::size_t i = 0;
      while (p[i] == expected_[r.offset + i]) ++i;
      fail("connection {}: wrong byte at offset {} of a message: {:#04x}, expected {:#04x}", c.index, r.offset + i,
           p[i], expected_[r.offset + i]);
    }
    r.offset += n;
  }

  void end_frame(connection& c, time_point now) {
    auto& r = c.reader;
    r.in_payload = false;
    switch (r.opcode) {
    case 0x8: // close: the answer to ours, or the server giving up on us
      if (c.state != phase::closing) fail("connection {}: the server sent a close frame", c.index);
      ::close(c.fd);
      c.state = phase::closed;
      ++closed_;
      return;
    case 0x9: { // ping (a server's keep-alive): answer it
      std::vector<std::uint8_t> body(r.control.begin(), r.control.end());
      const auto pong = masked_frame(0xA, body);
      c.out.insert(c.out.end(), pong.begin(), pong.end());
      return;
    }
    case 0xA: return; // pong
    default: break;
    }
    if (!r.fin) return;
    r.in_message = false;
    if (r.offset != o_.size) fail("connection {}: a message of {} bytes, {} sent", c.index, r.offset, o_.size);
    if (!on_message) fail("connection {}: a message before any was sent", c.index);
    on_message(c, r.tag, now);
  }

  const options& o_;
  message_template message_;
  std::vector<std::uint8_t> expected_; // the payload past the tag
  std::vector<std::uint8_t> close_frame_;
  std::string request_;
  int epoll_ = -1;
  std::vector<std::uint8_t> read_buffer_; // one for all connections: reads go straight to the parser
  std::vector<connection> conns_;
  std::size_t opened_ = 0;
  std::size_t closed_ = 0;
  time_point last_progress_{};
};

// ---- Modes ----

void echo(const options& o) {
  load l{o};
  l.open_all(o.connections);
  auto& conns = l.connections();

  histogram rtt;
  bool measuring = false;
  bool sending = true;
  std::uint64_t in_flight = 0;
  std::uint64_t counted = 0;
  const auto send_one = [&](connection& c, time_point now) {
    c.sent_at[c.sent % o.inflight] = now;
    l.message().append(c.out, c.sent++);
    ++in_flight;
  };
  l.on_message = [&](connection& c, std::uint64_t tag, time_point now) {
    if (tag != c.received) fail("connection {}: message {} came back, expected {}", c.index, tag, c.received);
    --in_flight;
    if (measuring) {
      ++counted;
      rtt.add(now - c.sent_at[c.received % o.inflight]);
    }
    ++c.received;
    if (sending) send_one(c, now); // written once the whole read is parsed
  };

  const auto start = clock_type::now();
  for (auto& c : conns) {
    c.sent_at.resize(o.inflight);
    for (std::size_t k = 0; k < o.inflight; ++k) send_one(c, start);
    l.flush(c);
  }
  const auto measure_from = start + after(o.warmup);
  const auto measure_to = measure_from + after(o.duration);
  time_point began{};
  time_point ended{};
  double cpu_began = 0;
  double cpu_ended = 0;
  l.run("echo", [&] {
    const auto now = clock_type::now();
    if (!measuring && sending && now >= measure_from) {
      measuring = true;
      began = now;
      cpu_began = cpu_seconds();
    } else if (measuring && now >= measure_to) {
      measuring = false;
      sending = false; // then wait for the messages in flight, which are checked too
      ended = now;
      cpu_ended = cpu_seconds();
    }
    return !sending && in_flight == 0;
  });
  l.close_all();

  const double secs = seconds(ended - began);
  const double rate = static_cast<double>(counted) / secs;
  fmt::print("result mode=echo connections={} inflight={} size={} seconds={:.3f} messages={} "
             "messages_per_s={:.0f} mb_per_s={:.2f} p50_us={:.1f} p99_us={:.1f} loadgen_busy={:.2f}\n",
             o.connections, o.inflight, o.size, secs, counted, rate, rate * static_cast<double>(o.size) / 1e6,
             rtt.quantile_us(0.50), rtt.quantile_us(0.99), (cpu_ended - cpu_began) / secs);
}

void broadcast(const options& o) {
  load l{o};
  l.open_all(o.connections);
  auto& conns = l.connections();
  auto& sender = conns[0];
  const auto n = conns.size();

  // First make sure the server has every connection in its list: a connection's upgrade
  // is answered before the server registers it, so a message sent at once could miss
  // some. Probes (tags with the top bit) go out until one reaches all N; they may only
  // come before the first real message.
  constexpr std::uint64_t probe_bit = std::uint64_t{1} << 63;
  std::uint64_t probe = 0;
  std::size_t probe_reached = 0;
  time_point probe_sent{};

  std::vector<std::uint32_t> reached(o.messages, 0); // receivers that have each message
  std::vector<time_point> sent_at(o.messages);
  std::size_t sent = 0;
  std::size_t everywhere = 0; // messages 0 .. everywhere-1 are received by all
  time_point last{};
  histogram delivery;
  std::uint64_t deliveries = 0;

  // Sends while the window allows (all at once with --window 0).
  const auto pump = [&](time_point now) {
    const auto before = sent;
    while (sent < o.messages && (o.window == 0 || sent - everywhere < o.window)) {
      sent_at[sent] = now;
      l.message().append(sender.out, sent++);
    }
    if (sent != before) l.flush(sender);
  };

  l.on_message = [&](connection& c, std::uint64_t tag, time_point now) {
    if (tag & probe_bit) {
      const auto k = tag & ~probe_bit;
      if (c.expected != 0 || (c.probe != 0 && k <= c.probe - 1))
        fail("connection {}: probe {} out of order", c.index, k);
      c.probe = k + 1;
      if (k == probe) ++probe_reached;
      return;
    }
    if (tag != c.expected) fail("connection {}: message {} arrived, expected {}", c.index, tag, c.expected);
    ++c.expected;
    ++deliveries;
    delivery.add(now - sent_at[tag]);
    if (++reached[tag] != n) return;
    const auto before = everywhere;
    while (everywhere < o.messages && reached[everywhere] == n) ++everywhere;
    if (everywhere != before) {
      last = now;
      if (o.window != 0) pump(now);
    }
  };

  l.run("broadcast: waiting for every connection to join", [&] {
    const auto now = clock_type::now();
    if (probe_reached == n) return true;
    if (probe_sent == time_point{} || now - probe_sent > std::chrono::milliseconds{200}) {
      if (probe_sent != time_point{}) ++probe;
      probe_reached = 0;
      probe_sent = now;
      l.message().append(sender.out, probe_bit | probe);
      l.flush(sender);
    }
    return false;
  });

  const auto start = clock_type::now();
  const auto cpu_start = cpu_seconds();
  pump(start);
  l.run("broadcast", [&] { return everywhere == o.messages; });
  const auto cpu = cpu_seconds() - cpu_start;
  l.close_all();

  const double secs = seconds(last - start);
  const double rate = static_cast<double>(deliveries) / secs;
  fmt::print("result mode=broadcast connections={} size={} messages={} window={} seconds={:.4f} deliveries={} "
             "deliveries_per_s={:.0f} mb_per_s={:.2f} time_to_last_ms={:.2f} p50_us={:.1f} p99_us={:.1f} "
             "loadgen_busy={:.2f}\n",
             n, o.size, o.messages, o.window, secs, deliveries, rate, rate * static_cast<double>(o.size) / 1e6,
             secs * 1000, delivery.quantile_us(0.50), delivery.quantile_us(0.99), cpu / secs);
}

/// The resident memory of a process, in KiB.
std::uint64_t resident_kib(long pid) {
  std::ifstream status{fmt::format("/proc/{}/status", pid)};
  if (!status) fail("cannot read /proc/{}/status: is the server running?", pid);
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmRSS:")) return std::strtoull(line.c_str() + 6, nullptr, 10);
  fail("no VmRSS in /proc/{}/status", pid);
}

/// Opens `count` connections on `l`, each upgraded and with one message echoed, so that
/// the server holds each as a connection in use, not one still in its handshake.
void open_echoed(load& l, std::size_t count) {
  std::size_t echoed = 0;
  l.on_open = [&](connection& c) {
    l.message().append(c.out, 0); // flushed by the event handler that opened it
  };
  l.on_message = [&](connection& c, std::uint64_t tag, time_point) {
    if (tag != 0 || c.received++ != 0) fail("connection {}: unexpected message {}", c.index, tag);
    ++echoed;
  };
  l.open_all(count);
  l.run("connections: echoing one message on each", [&] { return echoed == count; });
}

void idle_connections(const options& o) {
  // A first round of connections, opened and closed before the baseline: a server's
  // first connection pages in code (the handshake, SHA-1) and fills pools once, about
  // 2 MB of our server's resident memory that 10,000 connections would not cost twice.
  {
    load warm_up{o};
    open_echoed(warm_up, std::min<std::size_t>(o.connections, warm_up_connections));
    warm_up.close_all();
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // the server's teardowns
  }
  const auto rss_before = resident_kib(o.server_pid);
  load l{o};
  open_echoed(l, o.connections);
  const auto idle_until = clock_type::now() + after(o.settle);
  l.run("connections: idle", [&] { return clock_type::now() >= idle_until; });
  const auto rss_after = resident_kib(o.server_pid);
  l.close_all();

  const double grown_kib = static_cast<double>(rss_after) - static_cast<double>(rss_before);
  const double per = grown_kib * 1024.0 / static_cast<double>(o.connections);
  fmt::print("result mode=connections connections={} rss_before_kib={} rss_after_kib={} "
             "bytes_per_connection={:.0f} kib_per_connection={:.2f}\n",
             o.connections, rss_before, rss_after, per, per / 1024.0);
}

} // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  if (o.mode == "echo") echo(o);
  else if (o.mode == "broadcast") broadcast(o);
  else idle_connections(o);
}
