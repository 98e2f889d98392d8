#include "session.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <thread>

namespace conformance {
namespace {

/// How long the server has to close TCP once its close frame is in: less than the echo's
/// close timeout (5 s), so that a server waiting for our close frame instead of closing
/// fails.
constexpr std::chrono::milliseconds tcp_close_patience{2000};

std::string handshake_key(std::mt19937& random) {
  std::string nonce(16, '\0');
  for (char& c : nonce) c = static_cast<char>(random() & 0xFF);
  return base64(nonce);
}

std::string describe(const expectation& e) {
  switch (e.what) {
  case event::kind::message:
    return describe(event{.what = e.what, .opcode = e.opcode, .payload = e.payload});
  case event::kind::pong: return describe(event{.what = e.what, .payload = e.payload});
  case event::kind::close: {
    std::string out = "close";
    for (std::size_t i = 0; i < e.codes.size(); ++i) {
      out += i == 0 ? " " : " or ";
      out += e.codes[i] ? std::to_string(*e.codes[i]) : "without a code";
    }
    return out;
  }
  case event::kind::tcp_closed: return "TCP closed by the server";
  default: return "?";
  }
}

bool matches(const expectation& x, const event& e) {
  using kind = event::kind;
  switch (x.what) {
  case kind::message: return e.what == kind::message && e.opcode == x.opcode && e.payload == x.payload;
  case kind::pong: return e.what == kind::pong && e.payload == x.payload;
  case kind::close: return e.what == kind::close && std::find(x.codes.begin(), x.codes.end(), e.code) != x.codes.end();
  case kind::tcp_closed: return e.what == kind::tcp_closed || e.what == kind::tcp_reset;
  default: return false;
  }
}

/// What was observed, pointing at the first differing byte of a same-sized message.
std::string observed(const expectation& x, const event& e) {
  std::string out = describe(e);
  if (x.what == event::kind::message && e.what == event::kind::message && x.payload.size() == e.payload.size()) {
    const auto diff = std::mismatch(x.payload.begin(), x.payload.end(), e.payload.begin());
    if (diff.first != x.payload.end()) out += fmt::format(" (differs from byte {})", diff.first - x.payload.begin());
  }
  return out;
}

} // namespace

expectation message(std::uint8_t opcode, std::string payload) {
  return {.what = event::kind::message, .opcode = opcode, .payload = std::move(payload)};
}

expectation pong(std::string payload) { return {.what = event::kind::pong, .payload = std::move(payload)}; }

expectation close_with(std::vector<std::optional<std::uint16_t>> codes) {
  return {.what = event::kind::close, .codes = std::move(codes)};
}

expectation tcp_close() { return {.what = event::kind::tcp_closed}; }

expectation optional(expectation e) {
  e.optional = true;
  return e;
}

session::session(const server_address& server, std::string_view seed, std::chrono::milliseconds patience,
                 const std::optional<std::string>& offer)
    : random_(static_cast<std::uint32_t>(std::hash<std::string_view>{}(seed))),
      patience_(patience),
      client_(server, handshake_key(random_), patience, offer) {
  if (offer && !client_.deflate())
    throw case_failed{fmt::format("the server to accept '{}'", *offer), "no Sec-WebSocket-Extensions in its answer"};
}

std::string session::compress(std::string_view data, message_deflater::ending how) {
  if (!deflate()) throw std::logic_error("compressing without permessage-deflate agreed");
  if (!deflater_)
    deflater_ = std::make_unique<message_deflater>(deflate()->client_max_window_bits, deflate()->client_no_context_takeover);
  return deflater_->compress(data, how);
}

mask_key session::fresh_key() {
  const std::uint32_t r = random_();
  return {static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(r >> 8), static_cast<std::uint8_t>(r >> 16),
          static_cast<std::uint8_t>(r >> 24)};
}

std::string session::encode(const frame& f) { return conformance::encode(f, fresh_key()); }

void session::send(const std::vector<frame>& frames, std::size_t chop, std::chrono::microseconds pause) {
  std::string bytes;
  for (const frame& f : frames) bytes += encode(f);
  client_.send(bytes, chop, pause);
}

void session::send_each(const std::vector<frame>& frames, std::chrono::microseconds pause) {
  for (const frame& f : frames) {
    client_.send(encode(f));
    std::this_thread::sleep_for(pause);
  }
}

void session::send_bytes(std::string_view bytes, std::size_t chop, std::chrono::microseconds pause) {
  client_.send(bytes, chop, pause);
}

void session::expect(const std::vector<expectation>& expected) {
  std::optional<event> pending; // an event that did not match an optional expectation
  for (const expectation& x : expected) {
    const auto wait = x.what == event::kind::tcp_closed ? std::min(patience_, tcp_close_patience) : patience_;
    event e = pending ? std::move(*pending) : client_.next(wait);
    pending.reset();
    if (matches(x, e)) {
      if (x.what == event::kind::tcp_closed) finished_ = true;
      continue;
    }
    if (x.optional) {
      pending = std::move(e);
      continue;
    }
    if (e.what == event::kind::tcp_closed || e.what == event::kind::tcp_reset) finished_ = true;
    throw case_failed{describe(x), observed(x, e)};
  }
  if (pending) throw case_failed{"nothing more", describe(*pending)};
}

void session::expect_quiet(std::chrono::milliseconds quiet) {
  const event e = client_.next(quiet);
  if (e.what == event::kind::timeout) return;
  if (e.what == event::kind::tcp_closed || e.what == event::kind::tcp_reset) finished_ = true;
  throw case_failed{fmt::format("nothing for {} ms", quiet.count()), describe(e)};
}

void session::expect_failure(std::uint16_t code, std::vector<expectation> before) {
  before.push_back(close_with({code}));
  before.push_back(tcp_close());
  expect(before);
}

void session::close_normally() {
  send({frame{.opcode = op::close, .payload = close_payload(1000)}});
  expect({close_with({1000}), tcp_close()});
}

} // namespace conformance
