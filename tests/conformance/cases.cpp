#include "cases.hpp"

#include "utf8_battery.hpp"

#include <fmt/core.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>
#include <utility>

namespace conformance {
namespace {

using namespace std::chrono_literals;
using script = std::function<void(session&)>;

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;
/// The echo runs with --max-message-size 16 MiB (conformance.cpp).
constexpr std::size_t max_message = 16 * MiB;

constexpr std::uint16_t protocol_error = 1002;
constexpr std::uint16_t invalid_payload = 1007;
constexpr std::uint16_t message_too_big = 1009;

// ---- Frames ----

frame text_frame(std::string payload, bool fin = true) { return {.opcode = op::text, .payload = std::move(payload), .fin = fin}; }
frame binary_frame(std::string payload, bool fin = true) { return {.opcode = op::binary, .payload = std::move(payload), .fin = fin}; }
frame continuation_frame(std::string payload, bool fin = true) {
  return {.opcode = op::continuation, .payload = std::move(payload), .fin = fin};
}
frame ping_frame(std::string payload = {}) { return {.opcode = op::ping, .payload = std::move(payload)}; }
frame pong_frame(std::string payload = {}) { return {.opcode = op::pong, .payload = std::move(payload)}; }
frame close_frame(std::uint16_t code, std::string_view reason = {}) {
  return {.opcode = op::close, .payload = close_payload(code, reason)};
}
frame with_rsv(frame f, std::uint8_t rsv) {
  f.rsv = rsv;
  return f;
}

/// A message as frames of `size` bytes each (the last may be shorter); 0 is one frame.
std::vector<frame> fragments(std::uint8_t opcode, const std::string& payload, std::size_t size = 0) {
  if (size == 0 || payload.size() <= size) return {{.opcode = opcode, .payload = payload}};
  std::vector<frame> out;
  for (std::size_t at = 0; at < payload.size(); at += size) {
    const bool last = at + size >= payload.size();
    out.push_back({.opcode = at == 0 ? opcode : op::continuation, .payload = payload.substr(at, size), .fin = last});
  }
  return out;
}

// ---- Payloads ----

/// Valid UTF-8 of exactly `size` bytes, with code points of 1 to 4 bytes all along (so
/// that the server's reads split them), and a letter that changes every 16 bytes (so
/// that a piece lost or repeated shows).
std::string text_payload(std::size_t size) {
  constexpr std::string_view unit = "\xce\xba\xe1\xbd\xb9\xf0\x9f\x98\x80-okay-?"; // 2+3+4+7 bytes; the ? varies
  static_assert(unit.size() == 16);
  std::string out;
  out.reserve(size);
  for (std::size_t n = 0; out.size() + unit.size() <= size; ++n) {
    out += unit;
    out.back() = static_cast<char>('a' + n % 26);
  }
  out.append(size - out.size(), '*');
  return out;
}

/// Every byte value, in an order with a long period.
std::string binary_payload(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 7 + (i >> 8) + (i >> 16)) & 0xFF);
  return out;
}

std::string payload_of(std::uint8_t opcode, std::size_t size) {
  return opcode == op::text ? text_payload(size) : binary_payload(size);
}

std::string size_name(std::size_t size) {
  if (size >= MiB && size % MiB == 0) return fmt::format("{} MiB", size / MiB);
  if (size >= KiB && size % KiB == 0) return fmt::format("{} KiB", size / KiB);
  return fmt::format("{} bytes", size);
}

const char* type_name(std::uint8_t opcode) { return opcode == op::text ? "text" : "binary"; }

// ---- Scripts ----

/// How the frames of a case go on the wire.
enum class writes {
  together,  ///< in one write (Autobahn's "one chop")
  per_frame, ///< one write per frame, 1 ms apart (Autobahn's "per-frame chops", sync)
  per_octet, ///< one write per byte (Autobahn's "octet-wise chops")
};

void send_as(session& s, const std::vector<frame>& frames, writes how) {
  switch (how) {
  case writes::together: s.send(frames); break;
  case writes::per_frame: s.send_each(frames, 1ms); break;
  case writes::per_octet: s.send(frames, 1); break;
  }
}

/// The server answers the frames with exactly `replies`, then closes normally with us.
script answers(std::vector<frame> frames, std::vector<expectation> replies, writes how = writes::together) {
  return [=](session& s) {
    send_as(s, frames, how);
    s.expect(replies);
    s.close_normally();
  };
}

/// The server answers the frames with `before`, then fails the connection with `code`.
script fails(std::vector<frame> frames, std::uint16_t code, std::vector<expectation> before = {},
             writes how = writes::together) {
  return [=](session& s) {
    send_as(s, frames, how);
    s.expect_failure(code, before);
  };
}

/// A message of `size` bytes, in fragments of `fragment` bytes (0: one frame), written
/// in chops of `chop` bytes (0: in one go), comes back whole. The payload is made when
/// the case runs, not when the table is built.
script echoes(std::uint8_t opcode, std::size_t size, std::size_t fragment = 0, std::size_t chop = 0) {
  return [=](session& s) {
    const std::string payload = payload_of(opcode, size);
    s.send(fragments(opcode, payload, fragment), chop);
    s.expect({message(opcode, payload)});
    s.close_normally();
  };
}

/// One message after the other, each frame written in two parts split at `offset`, for
/// each offset: a server reading whatever has arrived meets every possible boundary.
script split_at(std::uint8_t opcode, std::size_t size, std::vector<std::size_t> offsets) {
  return [=](session& s) {
    const std::string payload = payload_of(opcode, size);
    for (const std::size_t offset : offsets) {
      const std::string bytes = s.encode({.opcode = opcode, .payload = payload});
      s.send_bytes(std::string_view{bytes}.substr(0, offset));
      std::this_thread::sleep_for(200us); // let the server read the first part alone
      s.send_bytes(std::string_view{bytes}.substr(offset));
      s.expect({message(opcode, payload)});
    }
    s.close_normally();
  };
}

std::vector<std::size_t> offsets(std::size_t first, std::size_t last) {
  std::vector<std::size_t> out;
  for (std::size_t k = first; k <= last; ++k) out.push_back(k);
  return out;
}

// ---- The families ----

class case_list {
public:
  explicit case_list(suite_mode mode) : mode_(mode) {}
  [[nodiscard]] suite_mode mode() const { return mode_; }
  /// A case whose handshake offers permessage-deflate in deflate mode (default_offer).
  void add(std::string id, std::string title, script run, bool slow = false) {
    std::optional<std::string> offer;
    if (mode_.deflate) offer = std::string{default_offer};
    cases_.push_back({std::move(id), std::move(title), std::move(run), slow, std::move(offer)});
  }
  /// A case whose handshake offers `offer`, or nothing, in either mode.
  void add_offering(std::optional<std::string> offer, std::string id, std::string title, script run, bool slow = false) {
    cases_.push_back({std::move(id), std::move(title), std::move(run), slow, std::move(offer)});
  }
  std::vector<test_case> take() { return std::move(cases_); }

private:
  suite_mode mode_;
  std::vector<test_case> cases_;
};

void framing(case_list& c) {
  constexpr std::array sizes{0, 125, 126, 127, 128, 65535, 65536};
  for (const std::uint8_t opcode : {op::text, op::binary}) {
    const int sub = opcode == op::text ? 1 : 2;
    for (std::size_t i = 0; i < sizes.size(); ++i)
      c.add(fmt::format("1.{}.{}", sub, i + 1), fmt::format("{} message of {} bytes", type_name(opcode), sizes[i]),
            echoes(opcode, static_cast<std::size_t>(sizes[i])));
    c.add(fmt::format("1.{}.8", sub), fmt::format("{} message of 65536 bytes written in chops of 997 bytes", type_name(opcode)),
          echoes(opcode, 65536, 0, 997));
  }
  // Ours: every split of the byte stream, for the three length forms (head 6, 8, 14 bytes).
  c.add("1.3.1", "a 20-byte text frame written in two parts, split at every offset", split_at(op::text, 20, offsets(1, 25)));
  c.add("1.3.2", "a 200-byte text frame written in two parts, split at every offset", split_at(op::text, 200, offsets(1, 207)));
  std::vector<std::size_t> long_splits = offsets(1, 22); // the 14-byte head and into the payload
  for (std::size_t k = 65550 - 8; k < 65550; ++k) long_splits.push_back(k);
  c.add("1.3.3", "a 64 KiB binary frame written in two parts, split at every offset of its head and ends",
        split_at(op::binary, 65536, long_splits));
  // Ours: framing rules of RFC 6455 section 5 that Autobahn leaves out.
  c.add("1.4.1", "unmasked text frame: 1002", fails({{.payload = "Hello, world!", .masked = false}}, protocol_error));
  c.add("1.4.2", "payload length 5 in the 16-bit form: 1002",
        fails({{.payload = "Hello", .form = length_form::bits16}}, protocol_error));
  c.add("1.4.3", "payload length 200 in the 64-bit form: 1002",
        fails({{.payload = std::string(200, '*'), .form = length_form::bits64}}, protocol_error));
  c.add("1.4.4", "64-bit payload length with its top bit set (head only): 1002",
        fails({{.opcode = op::binary, .declared_length = std::uint64_t{1} << 63}}, protocol_error));
}

void pings(case_list& c) {
  const std::string binary{"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", 8};
  const std::string max(125, '\xfe');
  c.add("2.1", "ping without payload: pong without payload", answers({ping_frame()}, {pong("")}));
  c.add("2.2", "ping with a small text payload: identical pong", answers({ping_frame("Hello, world!")}, {pong("Hello, world!")}));
  c.add("2.3", "ping with a small binary payload: identical pong", answers({ping_frame(binary)}, {pong(binary)}));
  c.add("2.4", "ping with a 125-byte payload: identical pong", answers({ping_frame(max)}, {pong(max)}));
  c.add("2.5", "ping with a 126-byte payload: 1002", fails({ping_frame(std::string(126, '\xfe'))}, protocol_error));
  c.add("2.6", "ping with a 125-byte payload, written byte by byte: identical pong",
        answers({ping_frame(max)}, {pong(max)}, writes::per_octet));
  c.add("2.7", "unsolicited pong without payload: ignored", answers({pong_frame()}, {}));
  c.add("2.8", "unsolicited pong with payload: ignored", answers({pong_frame("unsolicited pong payload")}, {}));
  c.add("2.9", "unsolicited pong, then ping: only the ping's pong",
        answers({pong_frame("unsolicited pong payload"), ping_frame("ping payload")}, {pong("ping payload")}));
  std::vector<frame> ten;
  std::vector<expectation> ten_pongs;
  for (int i = 0; i < 10; ++i) {
    ten.push_back(ping_frame(fmt::format("payload-{}", i)));
    ten_pongs.push_back(pong(fmt::format("payload-{}", i)));
  }
  c.add("2.10", "10 pings in one write: 10 identical pongs, in order", answers(ten, ten_pongs));
  c.add("2.11", "10 pings, one write each: 10 identical pongs, in order", answers(ten, ten_pongs, writes::per_frame));
}

void reserved_bits(case_list& c) {
  const std::string hello = "Hello, world!";
  const std::string binary{"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", 8};
  // 3.2 to 3.4: the ping after the bad frame is not answered. The message before it may
  // be echoed or not: failing at once is allowed (Autobahn's "non-strict").
  // With permessage-deflate agreed, RSV = 4 (RSV1 alone) on a text frame marks it
  // compressed: "Hello, world!" is then a stored block whose lengths do not match, 1007.
  const auto code_for = [&](std::uint8_t rsv) { return rsv == 4 && c.mode().deflate ? invalid_payload : protocol_error; };
  const auto after_echo = [&](std::uint8_t rsv, writes how) {
    return fails({text_frame(hello), with_rsv(text_frame(hello), rsv), ping_frame()}, code_for(rsv),
                 {optional(message(op::text, hello))}, how);
  };
  c.add("3.1", "text frame with RSV = 1: 1002", fails({with_rsv(text_frame(hello), 1)}, protocol_error));
  c.add("3.2", "text, text with RSV = 2, ping in one write: 1002 (after an echo or not)", after_echo(2, writes::together));
  c.add("3.3", "text, text with RSV = 3, ping, one write each: 1002 (after an echo or not)", after_echo(3, writes::per_frame));
  c.add("3.4", fmt::format("text, text with RSV = 4, ping, byte by byte: {} (after an echo or not)", code_for(4)),
        after_echo(4, writes::per_octet));
  c.add("3.5", "binary frame with RSV = 5: 1002", fails({with_rsv(binary_frame(binary), 5)}, protocol_error));
  c.add("3.6", "ping with RSV = 6: 1002", fails({with_rsv(ping_frame(hello), 6)}, protocol_error));
  c.add("3.7", "close with RSV = 7: 1002", fails({with_rsv(close_frame(1000), 7)}, protocol_error));
  // Ours: RSV1 alone where even a negotiated permessage-deflate would not allow it.
  c.add("3.8", "text fragment, then a continuation with RSV = 4: 1002",
        fails({text_frame("fragment1", false), with_rsv(continuation_frame("fragment2"), 4)}, protocol_error));
  c.add("3.9", "ping with RSV = 4: 1002", fails({with_rsv(ping_frame(hello), 4)}, protocol_error));
}

void opcodes(case_list& c) {
  const std::string hello = "Hello, world!";
  const std::string payload = "reserved opcode payload";
  for (const std::uint8_t first : {std::uint8_t{3}, std::uint8_t{11}}) {
    const int sub = first == 3 ? 1 : 2;
    const auto reserved = [](std::uint8_t opcode, std::string p = {}) { return frame{.opcode = opcode, .payload = std::move(p)}; };
    const auto id = [&](int n) { return fmt::format("4.{}.{}", sub, n); };
    const auto kind = first == 3 ? "non-control" : "control";
    c.add(id(1), fmt::format("reserved {} opcode {}: 1002", kind, first), fails({reserved(first)}, protocol_error));
    c.add(id(2), fmt::format("reserved {} opcode {} with payload: 1002", kind, first + 1),
          fails({reserved(static_cast<std::uint8_t>(first + 1), payload)}, protocol_error));
    const auto between = [&](std::uint8_t opcode, std::string p, writes how) {
      // The echo may be missing, as in 3.2.
      return fails({text_frame(hello), reserved(opcode, std::move(p)), ping_frame()}, protocol_error,
                   {optional(message(op::text, hello))}, how);
    };
    c.add(id(3), fmt::format("text, reserved opcode {}, ping: 1002 (after an echo or not)", first + 2),
          between(static_cast<std::uint8_t>(first + 2), {}, writes::together));
    c.add(id(4), fmt::format("text, reserved opcode {} with payload, ping: 1002 (after an echo or not)", first + 3),
          between(static_cast<std::uint8_t>(first + 3), payload, writes::together));
    c.add(id(5), fmt::format("text, reserved opcode {} with payload, ping, byte by byte: 1002 (after an echo or not)", first + 4),
          between(static_cast<std::uint8_t>(first + 4), payload, writes::per_octet));
  }
}

/// Autobahn 5.19 and 5.20: pings between the fragments of a message are answered at
/// once, before the message ends (we wait for the first pong before going on).
script pings_between_fragments(writes how) {
  return [how](session& s) {
    send_as(s, {text_frame("fragment1", false), continuation_frame("fragment2", false), ping_frame("pongme 1!")}, how);
    s.expect({pong("pongme 1!")});
    send_as(s,
            {continuation_frame("fragment3", false), continuation_frame("fragment4", false), ping_frame("pongme 2!"),
             continuation_frame("fragment5")},
            how);
    s.expect({pong("pongme 2!"), message(op::text, "fragment1fragment2fragment3fragment4fragment5")});
    s.close_normally();
  };
}

void fragmentation(case_list& c) {
  const std::vector<frame> two = {text_frame("fragment1", false), continuation_frame("fragment2")};
  const std::vector<frame> with_ping = {text_frame("fragment1", false), ping_frame("ping payload"), continuation_frame("fragment2")};
  const expectation joined = message(op::text, "fragment1fragment2");
  c.add("5.1", "ping in two fragments: 1002", fails({{.opcode = op::ping, .payload = "fragment1", .fin = false},
                                                      continuation_frame("fragment2")}, protocol_error));
  c.add("5.2", "pong in two fragments: 1002", fails({{.opcode = op::pong, .payload = "fragment1", .fin = false},
                                                      continuation_frame("fragment2")}, protocol_error));
  c.add("5.3", "text in two fragments, one write: echoed whole", answers(two, {joined}));
  c.add("5.4", "text in two fragments, one write each: echoed whole", answers(two, {joined}, writes::per_frame));
  c.add("5.5", "text in two fragments, byte by byte: echoed whole", answers(two, {joined}, writes::per_octet));
  c.add("5.6", "text in two fragments with a ping between, one write: pong, then the echo", answers(with_ping, {pong("ping payload"), joined}));
  c.add("5.7", "same, one write each", answers(with_ping, {pong("ping payload"), joined}, writes::per_frame));
  c.add("5.8", "same, byte by byte", answers(with_ping, {pong("ping payload"), joined}, writes::per_octet));

  const auto nothing_to_continue = [&](int first_id, bool fin) {
    const std::vector<frame> frames = {continuation_frame("non-continuation payload", fin), text_frame("Hello, world!")};
    const char* what = fin ? "final continuation" : "continuation";
    const writes hows[] = {writes::together, writes::per_frame, writes::per_octet};
    const char* how_names[] = {"one write", "one write each", "byte by byte"};
    for (int i = 0; i < 3; ++i)
      c.add(fmt::format("5.{}", first_id + i), fmt::format("{} with nothing to continue, then text, {}: 1002", what, how_names[i]),
            fails(frames, protocol_error, {}, hows[i]));
  };
  nothing_to_continue(9, true);
  nothing_to_continue(12, false);

  c.add("5.15", "text in two fragments, then a continuation with nothing to continue, then text: 1002 (after an echo or not)",
        fails({text_frame("fragment1", false), continuation_frame("fragment2"), continuation_frame("fragment3", false),
               text_frame("fragment4")},
              protocol_error, {optional(joined)})); // the echo may be missing, as in 3.2
  const auto twice = [](bool first_fin) {
    std::vector<frame> out;
    for (int i = 0; i < 2; ++i)
      for (frame f : {continuation_frame("fragment1", first_fin), text_frame("fragment2", false), continuation_frame("fragment3")})
        out.push_back(f);
    return out;
  };
  c.add("5.16", "twice: continuation (not final) with nothing to continue, text fragment, final continuation: 1002",
        fails(twice(false), protocol_error));
  c.add("5.17", "twice: final continuation with nothing to continue, text fragment, final continuation: 1002",
        fails(twice(true), protocol_error));
  c.add("5.18", "text fragment, then a text frame instead of a continuation: 1002",
        fails({text_frame("fragment1", false), text_frame("fragment2")}, protocol_error));
  c.add("5.19", "text in 5 fragments with 2 pings between: each pong at once, then the echo", pings_between_fragments(writes::together));
  c.add("5.20", "same, one write per frame", pings_between_fragments(writes::per_frame));
  // Ours: a close frame is a control frame too.
  c.add("5.21", "close frame without FIN: 1002",
        fails({{.opcode = op::close, .payload = close_payload(1000), .fin = false}}, protocol_error));
}

/// Autobahn 6.4: a text message in three parts whose second part makes it invalid. After
/// the first part the server must wait; after the second it must fail the connection
/// with 1007 at once, before the third is sent. The parts are frames, or pieces of one
/// frame.
script fails_fast(std::string part1, std::string part2, std::string part3, bool one_frame) {
  return [=](session& s) {
    std::vector<std::string> pieces;
    if (one_frame) {
      const std::string bytes = s.encode(text_frame(part1 + part2 + part3));
      const std::size_t head = bytes.size() - (part1.size() + part2.size() + part3.size());
      pieces = {bytes.substr(0, head + part1.size()), bytes.substr(head + part1.size(), part2.size())};
    } else {
      pieces = {s.encode(text_frame(part1, false)), s.encode(continuation_frame(part2, false))};
    }
    s.send_bytes(pieces[0]);
    s.expect_quiet(250ms);
    s.send_bytes(pieces[1]);
    s.expect_failure(invalid_payload);
  };
}

/// The UTF-8 battery, each sample whole (Autobahn 6.5 to 6.23), then in one-byte frames,
/// then, for an invalid one, cut right after the byte that makes it invalid in a frame
/// that announces more: the server must fail on that byte, not at the message's end.
void utf8_battery_cases(case_list& c) {
  const std::vector<utf8_group> battery = utf8_battery();
  for (std::size_t g = 0; g < battery.size(); ++g) {
    for (std::size_t j = 0; j < battery[g].samples.size(); ++j) {
      const utf8_sample& sample = battery[g].samples[j];
      const std::string id = fmt::format("6.{}.{}", g + 5, j + 1);
      const std::string about = fmt::format("{}: {} ({})", battery[g].title, hex(sample.bytes, 16), sample.valid ? "valid" : "invalid");
      const auto run = [&](std::vector<frame> frames) {
        return sample.valid ? answers(std::move(frames), {message(op::text, sample.bytes)})
                            : fails(std::move(frames), invalid_payload);
      };
      c.add(id, about + ", one frame", run(fragments(op::text, sample.bytes)));
      if (sample.bytes.size() > 1) c.add(id + "-bytes", about + ", one frame per byte", run(fragments(op::text, sample.bytes, 1)));
      const std::size_t error_at = check_utf8(sample.bytes).error_at;
      if (sample.valid || error_at == std::string::npos) continue;
      c.add(id + "-failfast", about + ", cut after the bad byte in a longer frame: 1007 at once",
            [bytes = sample.bytes, error_at](session& s) {
              const std::string padded = bytes + std::string(64, ' ');
              const std::string wire = s.encode(text_frame(padded));
              const std::size_t head = wire.size() - padded.size();
              s.send_bytes(std::string_view{wire}.substr(0, head + error_at + 1));
              s.set_patience(1s); // "at once"; and a server that does not fail fast fails here quickly
              s.expect_failure(invalid_payload);
            });
    }
  }
}

void utf8(case_list& c) {
  const std::string hello = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!";
  const std::string kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
  const std::string broken = kosme + "\xed\xa0\x80" + "edited"; // a surrogate at byte 12
  c.add("6.1.1", "empty text message: echoed", answers({text_frame("")}, {message(op::text, "")}));
  c.add("6.1.2", "text message in three empty fragments: echoed empty",
        answers({text_frame("", false), continuation_frame("", false), continuation_frame("")}, {message(op::text, "")}));
  c.add("6.1.3", "text message in three fragments, only the middle one non-empty: echoed",
        answers({text_frame("", false), continuation_frame("middle frame payload", false), continuation_frame("")},
                {message(op::text, "middle frame payload")}));
  c.add("6.2.1", "valid UTF-8 text in one frame: echoed", answers({text_frame(hello)}, {message(op::text, hello)}));
  c.add("6.2.2", "valid UTF-8 text in two fragments split on a code point boundary: echoed",
        answers({text_frame(hello.substr(0, 17), false), continuation_frame(hello.substr(17))}, {message(op::text, hello)}));
  c.add("6.2.3", "valid UTF-8 text in one-byte fragments: echoed", answers(fragments(op::text, hello, 1), {message(op::text, hello)}));
  c.add("6.2.4", "valid UTF-8 text (kosme) in one-byte fragments: echoed",
        answers(fragments(op::text, kosme, 1), {message(op::text, kosme)}));
  c.add("6.3.1", "invalid UTF-8 text in one frame: 1007", fails({text_frame(broken)}, invalid_payload));
  c.add("6.3.2", "invalid UTF-8 text in one-byte fragments: 1007", fails(fragments(op::text, broken, 1), invalid_payload));
  // 6.4: 0xF4 0x90 would be above U+10FFFF; the 0x90 (byte 12) makes the text invalid.
  const std::string past_max = "\xf4\x90\x80\x80";
  c.add("6.4.1", "fail fast: valid fragment, then a fragment out of range: 1007 before the third",
        fails_fast(kosme, past_max, "edited", false));
  c.add("6.4.2", "fail fast: valid fragment, then a fragment of just the bad byte: 1007 before the third",
        fails_fast(kosme + "\xf4", "\x90", "\x80\x80" "edited", false));
  c.add("6.4.3", "fail fast in one frame: valid piece, then a piece out of range: 1007 before the third",
        fails_fast(kosme, past_max, "edited", true));
  c.add("6.4.4", "fail fast in one frame: valid piece, then the bad byte alone: 1007 before the third",
        fails_fast(kosme + "\xf4", "\x90", "\x80\x80" "edited", true));
  utf8_battery_cases(c);
}

void closing(case_list& c) {
  const std::string hello = "Hello World!";
  const std::vector<std::optional<std::uint16_t>> normal = {1000};
  const auto closes = [&](std::vector<frame> frames, std::vector<expectation> replies) {
    return [=](session& s) {
      s.send(frames);
      s.expect(replies);
    };
  };
  c.add("7.1.1", "text, then close: echo, close 1000, TCP close",
        closes({text_frame(hello), close_frame(1000)}, {message(op::text, hello), close_with(normal), tcp_close()}));
  c.add("7.1.2", "two close frames: one close 1000, TCP close", closes({close_frame(1000), close_frame(1000)}, {close_with(normal), tcp_close()}));
  c.add("7.1.3", "close, then ping: close 1000 and no pong", closes({close_frame(1000), ping_frame("ping payload")}, {close_with(normal), tcp_close()}));
  c.add("7.1.4", "close, then text: close 1000 and no echo", closes({close_frame(1000), text_frame(hello)}, {close_with(normal), tcp_close()}));
  c.add("7.1.5", "text fragment, close, final fragment: close 1000 and no echo",
        closes({text_frame("fragment1", false), close_frame(1000), continuation_frame("fragment2")}, {close_with(normal), tcp_close()}));
  c.add("7.1.6", "256 KiB text, close, ping: the echo may come or not, then close 1000, no pong", [](session& s) {
    const std::string big = text_payload(256 * KiB);
    s.send({text_frame(big), close_frame(1000), ping_frame("ping payload")});
    s.expect({optional(message(op::text, big)), close_with({1000}), tcp_close()});
  });

  // 7.3: close payloads. An empty close may be answered empty or with 1000 (RFC 6455 5.5.1).
  c.add("7.3.1", "close without payload: close 1000 or empty, TCP close",
        closes({{.opcode = op::close}}, {close_with({1000, std::nullopt}), tcp_close()}));
  c.add("7.3.2", "close with a 1-byte payload: 1002", fails({{.opcode = op::close, .payload = "*"}}, protocol_error));
  c.add("7.3.3", "close 1000: close 1000", closes({close_frame(1000)}, {close_with(normal), tcp_close()}));
  c.add("7.3.4", "close 1000 with a reason: close 1000", closes({close_frame(1000, hello)}, {close_with(normal), tcp_close()}));
  c.add("7.3.5", "close 1000 with a 123-byte reason (payload 125): close 1000",
        closes({close_frame(1000, std::string(123, '*'))}, {close_with(normal), tcp_close()}));
  c.add("7.3.6", "close 1000 with a 124-byte reason (payload 126): 1002",
        fails({close_frame(1000, std::string(124, '*'))}, protocol_error));
  c.add("7.5.1", "close 1000 with a reason that is not UTF-8: 1007",
        fails({close_frame(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64")}, invalid_payload));

  // 7.7: codes an endpoint may send are echoed. 1012-1014 are registered with IANA
  // (Autobahn's list predates them): ours, 7.7.14 to 7.7.16.
  const std::uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999, 1012, 1013, 1014};
  for (std::size_t i = 0; i < std::size(valid); ++i)
    c.add(fmt::format("7.7.{}", i + 1), fmt::format("close {}: echoed", valid[i]),
          closes({close_frame(valid[i])}, {close_with({valid[i]}), tcp_close()}));
  // 7.9 and 7.13: codes no endpoint may send. 1015 (TLS failure, reported, never sent) is ours: 7.9.10.
  const std::uint16_t invalid[] = {0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 1015};
  for (std::size_t i = 0; i < std::size(invalid); ++i)
    c.add(fmt::format("7.9.{}", i + 1), fmt::format("close {}: 1002", invalid[i]), fails({close_frame(invalid[i])}, protocol_error));
  c.add("7.13.1", "close 5000: 1002", fails({close_frame(5000)}, protocol_error));
  c.add("7.13.2", "close 65535: 1002", fails({close_frame(65535)}, protocol_error));
}

/// `count` messages one after the other, each echoed before the next is sent.
script round_trips(std::uint8_t opcode, std::size_t size, int count) {
  return [=](session& s) {
    const std::string payload = payload_of(opcode, size);
    for (int i = 0; i < count; ++i) {
      s.send({{.opcode = opcode, .payload = payload}});
      s.expect({message(opcode, payload)});
    }
    s.close_normally();
  };
}

void limits(case_list& c) {
  constexpr std::array<std::size_t, 6> sizes{64 * KiB, 256 * KiB, MiB, 4 * MiB, 8 * MiB, 16 * MiB};
  constexpr std::array<std::size_t, 9> fragment_sizes{64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB};
  constexpr std::array<std::size_t, 6> chops{64, 128, 256, 512, 1024, 2048};
  constexpr std::array<std::size_t, 6> round_trip_sizes{0, 16, 64, 256, 1024, 4096};
  for (const std::uint8_t opcode : {op::text, op::binary}) {
    const bool text = opcode == op::text;
    const char* type = type_name(opcode);
    for (std::size_t i = 0; i < sizes.size(); ++i)
      c.add(fmt::format("9.{}.{}", text ? 1 : 2, i + 1), fmt::format("{} message of {} in one frame", type, size_name(sizes[i])),
            echoes(opcode, sizes[i]), true);
    for (std::size_t i = 0; i < fragment_sizes.size(); ++i)
      c.add(fmt::format("9.{}.{}", text ? 3 : 4, i + 1),
            fmt::format("{} message of 4 MiB in fragments of {}", type, size_name(fragment_sizes[i])),
            echoes(opcode, 4 * MiB, fragment_sizes[i]), true);
    for (std::size_t i = 0; i < chops.size(); ++i)
      c.add(fmt::format("9.{}.{}", text ? 5 : 6, i + 1), fmt::format("{} message of 1 MiB written in chops of {}", type, size_name(chops[i])),
            echoes(opcode, MiB, 0, chops[i]), true);
    for (std::size_t i = 0; i < round_trip_sizes.size(); ++i)
      c.add(fmt::format("9.{}.{}", text ? 7 : 8, i + 1),
            fmt::format("1000 {} messages of {}, each echoed before the next", type, size_name(round_trip_sizes[i])),
            round_trips(opcode, round_trip_sizes[i], 1000));
  }
  // Ours: the largest message in fragments, and one byte more.
  c.add("9.4.10", "binary message of 16 MiB (the echo's limit) in fragments of 1 MiB", echoes(op::binary, max_message, MiB), true);
  c.add("9.9.1", "head of a text frame one byte over the message limit: 1009 before any payload",
        fails({{.declared_length = max_message + 1}}, message_too_big));
}

void auto_fragmentation(case_list& c) {
  c.add("10.1.1", "text message of 64 KiB in fragments of 1300 bytes: echoed whole", echoes(op::text, 65536, 1300));
  c.add("10.1.2", "text message of 4 KiB in one-byte fragments: echoed whole", echoes(op::text, 4096, 1));
}


// ---- permessage-deflate (Autobahn 12 and 13 in spirit) ----

constexpr std::uint8_t rsv1 = 4;

/// Bytes no compressor can shrink: deflate sends them in stored blocks.
std::string random_payload(std::size_t size) {
  std::mt19937 random{20240501};
  std::string out(size, '\0');
  for (char& b : out) b = static_cast<char>(random() & 0xFF);
  return out;
}

/// A compressed message (or piece) as frames of `size` bytes of compressed data each (0:
/// one frame); RSV1 on the first only. `opcode` continuation continues a message.
std::vector<frame> compressed_frames(std::uint8_t opcode, const std::string& data, std::size_t size = 0, bool fin = true) {
  std::vector<frame> out = fragments(opcode, data, size);
  if (opcode != op::continuation) out.front().rsv = rsv1;
  out.back().fin = fin;
  return out;
}

enum class content { text, binary, random };

std::string content_payload(content what, std::size_t size) {
  switch (what) {
  case content::text: return text_payload(size);
  case content::binary: return binary_payload(size);
  case content::random: return random_payload(size);
  }
  return {};
}

std::uint8_t content_opcode(content what) { return what == content::text ? op::text : op::binary; }
const char* content_name(content what) {
  return what == content::text ? "text" : what == content::binary ? "binary" : "random binary";
}

/// `count` messages of `size` bytes, each compressed by us (window and context takeover
/// as agreed) in frames of `fragment` compressed bytes (0: one frame), echoed intact.
script compressed_echoes(content what, std::size_t size, int count, std::size_t fragment = 0) {
  return [=](session& s) {
    const std::string payload = content_payload(what, size);
    const std::uint8_t opcode = content_opcode(what);
    for (int i = 0; i < count; ++i) {
      s.send(compressed_frames(opcode, s.compress(payload), fragment));
      s.expect({message(opcode, payload)});
    }
    s.close_normally();
  };
}

/// Messages in a row: more of the small ones.
int in_a_row(std::size_t size) { return size <= 4 * KiB ? 100 : size <= 64 * KiB ? 20 : 4; }

/// The server agreed to `what` (`ok`), or the case fails.
void require_agreement(bool ok, std::string_view what) {
  if (!ok) throw case_failed{fmt::format("an agreement with {}", what), "another (see the handshake)"};
}

void compressed_messages(case_list& c) {
  constexpr std::array<std::size_t, 9> sizes{16, 64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB};
  const std::string takeover_off = "permessage-deflate; client_no_context_takeover; client_max_window_bits";
  // 12.1 to 12.3: messages compressed whole, with context takeover (the default offer).
  int sub = 1;
  for (const content what : {content::text, content::binary, content::random}) {
    for (std::size_t i = 0; i < sizes.size(); ++i)
      c.add(fmt::format("12.{}.{}", sub, i + 1),
            fmt::format("{} {} messages of {}, compressed, with context takeover: echoed", in_a_row(sizes[i]), content_name(what),
                        size_name(sizes[i])),
            compressed_echoes(what, sizes[i], in_a_row(sizes[i])), sizes[i] >= 256 * KiB);
    ++sub;
  }
  // 12.4: the compressed stream split over frames, down to one byte per frame.
  constexpr std::array<std::size_t, 3> message_sizes{256, 64 * KiB, MiB};
  constexpr std::array<std::size_t, 3> fragment_sizes{1, 64, 4 * KiB};
  int n = 0;
  for (const content what : {content::text, content::binary})
    for (const std::size_t size : message_sizes)
      for (const std::size_t fragment : fragment_sizes)
        c.add(fmt::format("12.4.{}", ++n),
              fmt::format("3 {} messages of {}, compressed, in frames of {} of compressed data: echoed", content_name(what),
                          size_name(size), size_name(fragment)),
              compressed_echoes(what, size, 3, fragment), size >= MiB);
  // 12.5: without context takeover (offered: client_no_context_takeover).
  constexpr std::array<std::size_t, 4> few_sizes{16, KiB, 64 * KiB, MiB};
  n = 0;
  for (const content what : {content::text, content::binary})
    for (const std::size_t size : few_sizes)
      c.add_offering(takeover_off, fmt::format("12.5.{}", ++n),
                     fmt::format("{} {} messages of {}, compressed, no context takeover (offered): echoed", in_a_row(size),
                                 content_name(what), size_name(size)),
                     compressed_echoes(what, size, in_a_row(size)), size >= MiB);
  n = 0;
  for (const std::size_t fragment : {std::size_t{1}, std::size_t{100}})
    c.add_offering(takeover_off, fmt::format("12.5.{}", 9 + n++),
                   fmt::format("10 text messages of 16 KiB, compressed, no context takeover, in frames of {}: echoed", size_name(fragment)),
                   compressed_echoes(content::text, 16 * KiB, 10, fragment));
}

/// `size` bytes repeating a random block of 3000: a compressor finds its matches 3000
/// bytes back, or none with a window under 4 KiB (zlib's reach is the window less 262).
std::string far_repeats(std::size_t size) {
  const std::string block = random_payload(3000);
  std::string out;
  while (out.size() < size) out += block;
  out.resize(size);
  return out;
}

/// Text and binary of 64 KiB alternating, 10 of each, compressed with the agreed window;
/// the binary repeats itself 3000 bytes back, out of reach of a window under 12 bits (a
/// server compressing with more than it agreed to is caught by our inflater).
script alternating_compressed(std::function<bool(const deflate_agreement&)> check, std::string what) {
  return [=](session& s) {
    require_agreement(check(*s.deflate()), what);
    const std::string text = text_payload(64 * KiB);
    const std::string binary = far_repeats(64 * KiB);
    for (int i = 0; i < 10; ++i) {
      s.send(compressed_frames(op::text, s.compress(text)));
      s.expect({message(op::text, text)});
      s.send(compressed_frames(op::binary, s.compress(binary)));
      s.expect({message(op::binary, binary)});
    }
    s.close_normally();
  };
}

void window_bits(case_list& c) {
  // 12.6: the client's window. We offer client_max_window_bits=N: the server may ask for
  // less (echo asks for 12), never more; we compress with what was agreed.
  for (int bits = 9; bits <= 15; ++bits)
    c.add_offering(fmt::format("permessage-deflate; client_max_window_bits={}", bits), fmt::format("12.6.{}", bits - 8),
                   fmt::format("client_max_window_bits={} offered: answered with at most {}; 10 text and 10 binary of 64 KiB "
                               "compressed with the window agreed: echoed",
                               bits, bits),
                   alternating_compressed([bits](const deflate_agreement& a) { return a.client_max_window_bits <= bits; },
                                          fmt::format("client_max_window_bits <= {}", bits)));
  c.add_offering("permessage-deflate; client_max_window_bits=9; client_no_context_takeover", "12.6.8",
                 "client_max_window_bits=9 and client_no_context_takeover offered: 20 messages compressed so: echoed",
                 alternating_compressed([](const deflate_agreement& a) { return a.client_max_window_bits <= 9; },
                                        "client_max_window_bits <= 9"));
  // 8 bits: zlib compresses with 9 at least, whose matches reach 250 bytes back (the
  // window less 262), within 2^8. RFC 7692 lets a server decline such an offer; the echo
  // accepts it, and we require that.
  c.add_offering("permessage-deflate; client_max_window_bits=8", "12.6.9",
                 "client_max_window_bits=8 offered: accepted with 8; 20 messages compressed with zlib's smallest "
                 "window, 9 bits (matches within 250 bytes): echoed",
                 alternating_compressed([](const deflate_agreement& a) { return a.client_max_window_bits <= 8; },
                                        "client_max_window_bits <= 8"));
  // 12.7: the server's window and context. We inflate its echoes with the window it
  // agreed to (a back reference further away fails the case), and drop our window
  // between messages when it agreed to server_no_context_takeover.
  for (int bits = 9; bits <= 15; ++bits)
    c.add_offering(fmt::format("permessage-deflate; server_max_window_bits={}; client_max_window_bits", bits),
                   fmt::format("12.7.{}", bits - 8),
                   fmt::format("server_max_window_bits={} offered: answered with at most {}; its compressed echoes keep to it",
                               bits, bits),
                   alternating_compressed([bits](const deflate_agreement& a) { return a.server_max_window_bits <= bits; },
                                          fmt::format("server_max_window_bits <= {}", bits)));
  c.add_offering("permessage-deflate; server_no_context_takeover; client_max_window_bits", "12.7.8",
                 "server_no_context_takeover offered: accepted; 20 identical messages, each echo inflates alone",
                 [](session& s) {
                   require_agreement(s.deflate()->server_no_context_takeover, "server_no_context_takeover");
                   const std::string text = text_payload(300); // its echo could copy the one before
                   for (int i = 0; i < 20; ++i) {
                     s.send({text_frame(text)});
                     s.expect({message(op::text, text)});
                   }
                   s.close_normally();
                 });
  c.add_offering("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; "
                 "client_max_window_bits=9",
                 "12.7.9", "every parameter offered, windows of 9 bits: 20 messages compressed each way: echoed",
                 alternating_compressed(
                     [](const deflate_agreement& a) {
                       return a.server_no_context_takeover && a.server_max_window_bits <= 9 && a.client_max_window_bits <= 9;
                     },
                     "both windows <= 9 and server_no_context_takeover"));
}

/// 300 bytes of a few letters, which deflate codes with fixed Huffman codes in one block.
std::string letters() {
  std::string out;
  for (int i = 0; i < 300; ++i) out += static_cast<char>('a' + i * 7 % 13);
  return out;
}

void mixed(case_list& c) {
  c.add("12.8.1", "compressed and uncompressed messages alternating, 20 of each: echoed", [](session& s) {
    const std::string text = text_payload(4 * KiB);
    for (int i = 0; i < 20; ++i) {
      s.send(compressed_frames(op::text, s.compress(text)));
      s.expect({message(op::text, text)});
      s.send({text_frame(text)});
      s.expect({message(op::text, text)});
    }
    s.close_normally();
  });
  c.add("12.8.2", "empty text and binary messages, compressed (one 00 byte): echoed empty", [](session& s) {
    for (const std::uint8_t opcode : {op::text, op::binary, op::text}) {
      s.send(compressed_frames(opcode, s.compress("")));
      s.expect({message(opcode, "")});
    }
    s.close_normally();
  });
  c.add("12.8.3", "a compressed text message in 3 frames with pings between: each pong at once, then the echo", [](session& s) {
    const std::string text = text_payload(16 * KiB);
    const std::string data = s.compress(text);
    const std::size_t third = data.size() / 3;
    s.send({with_rsv(text_frame(data.substr(0, third), false), rsv1), ping_frame("one")});
    s.expect({pong("one")});
    s.send({continuation_frame(data.substr(third, third), false), ping_frame("two")});
    s.expect({pong("two")});
    s.send({continuation_frame(data.substr(2 * third))});
    s.expect({message(op::text, text)});
    s.close_normally();
  });
  c.add("12.8.4", "3 compressed messages each ending with a final block (BFINAL, RFC 7692 7.2.3.3): echoed", [](session& s) {
    const std::string text = text_payload(4 * KiB);
    for (int i = 0; i < 3; ++i) {
      s.send(compressed_frames(op::text, s.compress(text, message_deflater::ending::final_block)));
      s.expect({message(op::text, text)});
    }
    s.close_normally();
  });
  // An empty payload with RSV1 (not even the 00 of an empty block): an empty message.
  // Inflating 00 00 FF FF alone would leave the stream inside a block header, and the
  // next message (with context takeover) would be read as its rest.
  c.add("12.8.6", "compressed text, then one with RSV1 and no payload at all, then compressed text: echoed, the second empty",
        [](session& s) {
          const std::string text = letters();
          s.send(compressed_frames(op::text, s.compress(text)));
          s.expect({message(op::text, text)});
          s.send({with_rsv(text_frame(""), rsv1)});
          s.expect({message(op::text, "")});
          s.send(compressed_frames(op::text, s.compress(text)));
          s.expect({message(op::text, text)});
          s.close_normally();
        });
  c.add("12.8.5", "a compressed message flushed midway (00 00 FF FF kept inside it), in two frames: echoed", [](session& s) {
    const std::string text = text_payload(8 * KiB);
    const std::string first = s.compress(std::string_view{text}.substr(0, 3000), message_deflater::ending::part);
    const std::string rest = s.compress(std::string_view{text}.substr(3000));
    s.send({with_rsv(text_frame(first, false), rsv1), continuation_frame(rest)});
    s.expect({message(op::text, text)});
    s.close_normally();
  });
}

/// A deflate bomb: `size` zero bytes compressed as hard as zlib can (about 1000 to 1).
std::string bomb(std::size_t size) {
  message_deflater d{15, true, 9};
  return d.compress(std::string(size, '\0'));
}

void compression_errors(case_list& c) {
  const std::string hello = "Hello, world!";
  const std::string kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
  c.add("12.9.1", "a compressed text fragment, then a continuation with RSV1: 1002", [](session& s) {
    const std::string data = s.compress(text_payload(1000));
    s.send({with_rsv(text_frame(data.substr(0, 10), false), rsv1), with_rsv(continuation_frame(data.substr(10)), rsv1)});
    s.expect_failure(protocol_error);
  });
  c.add("12.9.2", "ping with RSV1: 1002", fails({with_rsv(ping_frame(hello), rsv1)}, protocol_error));
  c.add("12.9.3", "pong with RSV1: 1002", fails({with_rsv(pong_frame(hello), rsv1)}, protocol_error));
  c.add("12.9.4", "close 1000 with RSV1: 1002", fails({with_rsv(close_frame(1000), rsv1)}, protocol_error));
  c.add("12.9.5", "RSV1 text whose payload is a block of the reserved type 3: 1007",
        fails({with_rsv(text_frame(std::string(8, '\xff')), rsv1)}, invalid_payload));
  c.add("12.9.6", "RSV1 binary whose payload is a stored block with lengths that do not match: 1007",
        fails({with_rsv(binary_frame(std::string{"\x00\x05\x00\x00\x00hello", 10}), rsv1)}, invalid_payload));
  c.add("12.9.7", "valid compressed text, then RSV1 binary with a back reference before its start (fixed codes): 1007",
        [](session& s) {
          const std::string text = text_payload(100);
          s.send(compressed_frames(op::text, s.compress(text)));
          s.expect({message(op::text, text)});
          // BFINAL 0, fixed codes: length 3 (code 257) at distance 24577 (code 29, extra bits
          // 0), then the end of the block: further back than all 100 bytes inflated so far.
          s.send({with_rsv(binary_frame(std::string{"\x02\x5e\x00\x00\x00", 5}), rsv1)});
          s.expect_failure(invalid_payload);
        });
  // RFC 7692 7.2.1: with 00 00 FF FF put back, a message ends between two blocks. Cut
  // inside one, zlib finds nothing wrong (it waits for the rest), but the message is not
  // what was sent, and the next would be read as its rest.
  c.add("12.9.14", "compressed binary cut inside its block (10 of its 20 bytes), no error from zlib itself: 1007",
        [](session& s) {
          const std::string data = s.compress(letters());
          s.send(compressed_frames(op::binary, data.substr(0, 10)));
          s.expect_failure(invalid_payload);
        });
  // Deflate bombs against the echo's --max-message-size of 16 MiB.
  c.add("12.9.8", "a compressed message of 17 KiB inflating to 17 MiB: 1009", [](session& s) {
    s.send(compressed_frames(op::binary, bomb(max_message + MiB)));
    s.expect_failure(message_too_big);
  }, true);
  c.add("12.9.9", "fail fast: half of a compressed frame inflating to 48 MiB (24 MiB in that half): 1009 before the rest",
        [](session& s) {
          const std::string data = bomb(48 * MiB);
          const std::string wire = s.encode(with_rsv(binary_frame(data), rsv1));
          s.send_bytes(std::string_view{wire}.substr(0, wire.size() - data.size() / 2));
          s.set_patience(1s);
          s.expect_failure(message_too_big);
        }, true);
  c.add("12.9.10", "fail fast: first fragment of a compressed message inflating to 24 MiB: 1009 before the continuation",
        [](session& s) {
          const std::string data = bomb(48 * MiB);
          s.send({with_rsv(binary_frame(data.substr(0, data.size() / 2), false), rsv1)});
          s.set_patience(1s);
          s.expect_failure(message_too_big);
        }, true);
  const std::string broken = kosme + "\xed\xa0\x80" + "edited"; // a surrogate at byte 12
  c.add("12.9.11", "compressed text that inflates to invalid UTF-8: 1007", [broken](session& s) {
    s.send(compressed_frames(op::text, s.compress(broken)));
    s.expect_failure(invalid_payload);
  });
  c.add("12.9.12", "compressed text, 64 KiB, invalid UTF-8 at its end: 1007", [](session& s) {
    const std::string text = text_payload(64 * KiB - 1) + "\xff";
    s.send(compressed_frames(op::text, s.compress(text), 1000));
    s.expect_failure(invalid_payload);
  });
  c.add("12.9.13", "fail fast: first compressed fragment with invalid UTF-8 (flushed): 1007 before the continuation",
        [broken](session& s) {
          s.send({with_rsv(text_frame(s.compress(broken, message_deflater::ending::part), false), rsv1)});
          s.set_patience(1s);
          s.expect_failure(invalid_payload);
        });
}

/// RSV1 on a connection without permessage-deflate: nothing was offered.
void not_agreed(case_list& c) {
  const auto compressed_alone = [](const std::string& payload) {
    message_deflater d{15, true};
    return d.compress(payload);
  };
  const std::string text = text_payload(1000);
  c.add_offering(std::nullopt, "12.10.1", "no extension offered: compressed text with RSV1: 1002",
                 fails(compressed_frames(op::text, compressed_alone(text)), protocol_error));
  c.add_offering(std::nullopt, "12.10.2", "no extension offered: compressed binary in 3 frames, RSV1 on the first: 1002",
                 fails(compressed_frames(op::binary, compressed_alone(binary_payload(1000)), 100), protocol_error));
}

void compression(case_list& c) {
  if (c.mode().deflate) {
    compressed_messages(c);
    window_bits(c);
    mixed(c);
    compression_errors(c);
  }
  not_agreed(c);
}

} // namespace

std::vector<test_case> all_cases(suite_mode mode) {
  case_list c{mode};
  framing(c);
  pings(c);
  reserved_bits(c);
  opcodes(c);
  fragmentation(c);
  utf8(c);
  closing(c);
  limits(c);
  auto_fragmentation(c);
  compression(c);
  return c.take();
}

std::string family_of(std::string_view id) { return std::string{id.substr(0, id.find('.'))}; }

std::string_view family_title(std::string_view family) {
  if (family == "1") return "framing";
  if (family == "2") return "pings and pongs";
  if (family == "3") return "reserved bits";
  if (family == "4") return "opcodes";
  if (family == "5") return "fragmentation";
  if (family == "6") return "UTF-8 handling";
  if (family == "7") return "close handling";
  if (family == "9") return "limits and performance";
  if (family == "10") return "auto-fragmentation";
  if (family == "12") return "permessage-deflate";
  return "?";
}

} // namespace conformance
