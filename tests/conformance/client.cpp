#include "client.hpp"

#include <fmt/core.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace conformance {
namespace {

using std::chrono::steady_clock;

std::string lower(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

int remaining_ms(steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now()).count();
  return static_cast<int>(std::max<long long>(left, 0));
}

/// " 2a2a..." after a size, or nothing for no bytes.
std::string bytes_shown(std::string_view bytes) { return bytes.empty() ? "" : " " + hex(bytes); }

event violation(std::string detail) {
  return event{.what = event::kind::violation, .detail = std::move(detail)};
}

int connect_to(const server_address& server) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(server.port);
  if (const int rc = getaddrinfo(server.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw std::runtime_error(fmt::format("cannot resolve {}: {}", server.host, gai_strerror(rc)));
  int fd = -1;
  int error = 0;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      error = errno;
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot connect to {}:{}: {}", server.host, server.port, std::strerror(error)));
  // Every write of a chopped frame goes out as its own segment; poll() decides when to
  // read and write, so a write never blocks while the server waits for us to read.
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/// The value of header `name` (lower case) in a response head, if present.
std::optional<std::string> header(std::string_view head, std::string_view name) {
  std::size_t at = head.find("\r\n");
  while (at != std::string_view::npos && at + 2 < head.size()) {
    const std::size_t start = at + 2;
    const std::size_t end = head.find("\r\n", start);
    const std::string_view line = head.substr(start, end - start);
    const std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && lower(line.substr(0, colon)) == name) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      return std::string{value};
    }
    at = end;
  }
  return std::nullopt;
}

} // namespace

server_address parse_ws_url(std::string_view url) {
  const auto bad = [&] { return std::invalid_argument(fmt::format("not a ws://host:port/ url: '{}'", url)); };
  if (!url.starts_with("ws://")) throw bad();
  url.remove_prefix(5);
  const std::size_t slash = url.find('/');
  const std::string_view authority = url.substr(0, slash);
  server_address out;
  out.path = slash == std::string_view::npos ? "/" : std::string{url.substr(slash)};
  const std::size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos) throw bad();
  out.host = std::string{authority.substr(0, colon)};
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') out.host = out.host.substr(1, out.host.size() - 2);
  const std::string_view port = authority.substr(colon + 1);
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), out.port);
  if (ec != std::errc{} || end != port.data() + port.size() || out.host.empty()) throw bad();
  return out;
}

std::string describe(const event& e) {
  switch (e.what) {
  case event::kind::message: {
    const char* type = e.opcode == op::text ? "text" : e.opcode == op::binary ? "binary" : "opcode?";
    return fmt::format("{} message of {} bytes{}", type, e.payload.size(), bytes_shown(e.payload));
  }
  case event::kind::ping: return fmt::format("ping of {} bytes{}", e.payload.size(), bytes_shown(e.payload));
  case event::kind::pong: return fmt::format("pong of {} bytes{}", e.payload.size(), bytes_shown(e.payload));
  case event::kind::close:
    if (!e.code) return "close without a code";
    return e.payload.empty() ? fmt::format("close {}", *e.code) : fmt::format("close {} '{}'", *e.code, e.payload);
  case event::kind::tcp_closed: return "TCP closed by the server";
  case event::kind::tcp_reset: return "TCP reset by the server";
  case event::kind::timeout: return "nothing (timed out)";
  case event::kind::violation: return "protocol violation: " + e.detail;
  }
  return "?";
}

client::client(const server_address& server, const std::string& key, std::chrono::milliseconds patience,
               const std::optional<std::string>& offer)
    : fd_(connect_to(server)), patience_(patience) {
  try {
    handshake(server, key, offer);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

client::~client() { ::close(fd_); }

void client::handshake(const server_address& server, const std::string& key, const std::optional<std::string>& offer) {
  const std::string host = server.host.find(':') != std::string::npos ? "[" + server.host + "]" : server.host;
  const std::string extensions = offer ? fmt::format("Sec-WebSocket-Extensions: {}\r\n", *offer) : "";
  send(fmt::format("GET {} HTTP/1.1\r\n"
                   "Host: {}:{}\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: {}\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "{}"
                   "\r\n",
                   server.path, host, server.port, key, extensions));
  // Read the response head; the bytes after it are already frames.
  std::string response;
  const auto deadline = steady_clock::now() + patience_;
  std::size_t end = std::string::npos;
  while ((end = response.find("\r\n\r\n")) == std::string::npos) {
    char buffer[4096];
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) throw std::runtime_error("no handshake response");
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) throw std::runtime_error(fmt::format("connection closed during the handshake after '{}'", response));
    response.append(buffer, static_cast<std::size_t>(n));
  }
  const std::string head = response.substr(0, end + 2);
  inbound_.append(response.data() + end + 4, response.size() - end - 4);

  const auto refuse = [&](std::string_view why) {
    return std::runtime_error(fmt::format("bad handshake response ({}): {}", why, head.substr(0, head.find("\r\n"))));
  };
  if (!head.starts_with("HTTP/1.1 101 ")) throw refuse("status is not 101");
  if (lower(header(head, "upgrade").value_or("")) != "websocket") throw refuse("Upgrade is not websocket");
  if (lower(header(head, "connection").value_or("")).find("upgrade") == std::string::npos) throw refuse("Connection lacks upgrade");
  if (header(head, "sec-websocket-accept") != accept_for(key)) throw refuse("wrong Sec-WebSocket-Accept");
  // We offered no subprotocol, and no extension but permessage-deflate if any.
  if (header(head, "sec-websocket-protocol")) throw refuse("a subprotocol nobody asked for");
  const auto answer = header(head, "sec-websocket-extensions");
  if (!offer && answer) throw refuse("an extension nobody asked for");
  if (!offer) return;
  try {
    agreed_ = check_answer(answer, read_offer(*offer));
  } catch (const std::runtime_error& e) {
    throw refuse(e.what());
  }
  if (agreed_) inflater_ = std::make_unique<message_inflater>(agreed_->server_max_window_bits, agreed_->server_no_context_takeover);
}

void client::send(std::string_view bytes, std::size_t chop, std::chrono::microseconds pause) {
  const std::size_t chunk = chop == 0 ? bytes.size() : chop;
  std::size_t sent = 0;
  std::size_t chunk_left = std::min(chunk, bytes.size());
  auto stall_deadline = steady_clock::now() + patience_;
  while (sent < bytes.size() && !write_failed_) {
    const short reading = eof_ || reset_ ? 0 : POLLIN;
    pollfd p{fd_, static_cast<short>(POLLOUT | reading), 0};
    if (::poll(&p, 1, remaining_ms(stall_deadline)) == 0)
      throw std::runtime_error(fmt::format("the server stopped reading after {} of {} bytes", sent, bytes.size()));
    if ((p.revents & POLLIN) != 0) read_some(0);
    if ((p.revents & (POLLOUT | POLLERR | POLLHUP)) == 0) continue;
    const ssize_t n = ::send(fd_, bytes.data() + sent, chunk_left, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      write_failed_ = true; // the server closed: what it said is in the events
      break;
    }
    sent += static_cast<std::size_t>(n);
    chunk_left -= static_cast<std::size_t>(n);
    stall_deadline = steady_clock::now() + patience_;
    if (chunk_left == 0 && sent < bytes.size()) {
      chunk_left = std::min(chunk, bytes.size() - sent);
      if (pause.count() > 0) std::this_thread::sleep_for(pause);
    }
  }
}

bool client::read_some(int wait_ms) {
  if (eof_ || reset_) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, wait_ms) <= 0) return false;
  char buffer[64 * 1024];
  const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
  if (n > 0) {
    inbound_.append(buffer, static_cast<std::size_t>(n));
  } else if (n == 0) {
    eof_ = true;
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    reset_ = true;
  }
  return true;
}

event client::next(std::chrono::milliseconds wait) {
  const auto deadline = steady_clock::now() + wait;
  for (;;) {
    if (auto e = decode()) return std::move(*e);
    if (eof_ && !inbound_.empty()) {
      inbound_ = {};
      return violation("TCP closed inside a frame");
    }
    if (eof_) return event{.what = event::kind::tcp_closed};
    if (reset_) return event{.what = event::kind::tcp_reset};
    const int left = remaining_ms(deadline);
    if (left == 0) return event{.what = event::kind::timeout};
    read_some(left);
  }
}

std::optional<event> client::decode() {
  while (auto f = inbound_.take_frame())
    if (auto e = on_frame(*f)) return e;
  return std::nullopt;
}

std::optional<event> client::on_frame(const wire_frame& f) {
  using kind = event::kind;
  // RFC 6455 section 5: what a client must check of every frame from a server.
  if (close_seen_) return violation("a frame after the close frame");
  if (f.masked) return violation("masked frame from the server");
  // RFC 7692 section 6: with permessage-deflate agreed, RSV1 marks a compressed message,
  // on its first frame only; never on control frames or continuations.
  constexpr std::uint8_t rsv1 = 4;
  const bool may_compress = agreed_ && (f.opcode == op::text || f.opcode == op::binary);
  if (f.rsv != 0 && !(may_compress && f.rsv == rsv1))
    return violation(fmt::format("reserved bits {} set{}", f.rsv,
                                 !agreed_ ? "" : f.opcode == op::continuation ? " on a continuation" : is_control(f.opcode) ? " on a control frame" : ""));
  if (!f.minimal_length) return violation("payload length not in its shortest form");
  if (f.length_top_bit) return violation("64-bit payload length with its top bit set");
  const bool known = f.opcode <= op::binary || (f.opcode >= op::close && f.opcode <= op::pong);
  if (!known) return violation(fmt::format("reserved opcode {}", f.opcode));

  if (is_control(f.opcode)) {
    if (!f.fin) return violation("fragmented control frame");
    if (f.payload.size() > 125) return violation("control frame longer than 125 bytes");
    if (f.opcode == op::ping) return event{.what = kind::ping, .payload = f.payload};
    if (f.opcode == op::pong) return event{.what = kind::pong, .payload = f.payload};
    close_seen_ = true;
    if (f.payload.empty()) return event{.what = kind::close};
    if (f.payload.size() == 1) return violation("close frame with a 1-byte payload");
    const auto code = static_cast<std::uint16_t>(static_cast<std::uint8_t>(f.payload[0]) << 8 | static_cast<std::uint8_t>(f.payload[1]));
    if (!is_valid_close_code(code)) return violation(fmt::format("close code {} not allowed on the wire", code));
    std::string reason = f.payload.substr(2);
    if (!check_utf8(reason).valid()) return violation(fmt::format("close reason not UTF-8: {}", hex(reason)));
    return event{.what = kind::close, .payload = std::move(reason), .code = code};
  }

  if (f.opcode == op::continuation && !message_opcode_) return violation("continuation with no message to continue");
  if (f.opcode != op::continuation && message_opcode_) return violation("new message inside a fragmented one");
  if (f.opcode != op::continuation) {
    message_opcode_ = f.opcode;
    message_compressed_ = f.rsv == rsv1;
    message_.clear();
  }
  message_ += f.payload;
  if (!f.fin) return std::nullopt;
  event whole{.what = kind::message, .opcode = *message_opcode_, .payload = std::move(message_)};
  message_opcode_.reset();
  message_.clear();
  ++messages_received_;
  if (message_compressed_) {
    ++compressed_received_;
    std::string error;
    auto inflated = inflater_->inflate(whole.payload, error);
    if (!inflated) return violation(fmt::format("compressed {} message of {} bytes: {}", whole.opcode == op::text ? "text" : "binary", whole.payload.size(), error));
    whole.payload = std::move(*inflated);
  }
  if (whole.opcode == op::text && !check_utf8(whole.payload).valid())
    return violation(fmt::format("text message not UTF-8: {}", hex(whole.payload)));
  return whole;
}

} // namespace conformance
