// The frame parser: the RFC 6455 section 5.7 examples, one test per framing rule (each
// fails if its rule is removed), UTF-8 fail-fast across fragments, the limits at and
// one past their values, split-independence over long mixed streams, and no heap
// allocation.
#include <websockets/frame_parser.hpp>

#include <websockets/close_code.hpp>

#include <doctest/doctest.h>

#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using namespace websockets;

// Counts heap allocations while `counting` is set, to show the parser makes none.
namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
} // namespace

// ThreadSanitizer's runtime defines operator new itself (statically): nothing is counted
// there, and the check below is skipped.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEBSOCKETS_TEST_NO_COUNTING 1
#endif
#endif

#ifndef WEBSOCKETS_TEST_NO_COUNTING
// GCC, seeing these inlined into std::allocator, takes the malloc/free pair for a
// mismatch with operator new; replacing both ends is what the standard allows.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
  if (counting) ++allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

// Events print as a list when a check fails.
template <>
struct doctest::StringMaker<std::vector<std::string>> {
  static doctest::String convert(const std::vector<std::string>& events) {
    std::string out = "[";
    for (const std::string& s : events) out += (out.size() > 1 ? " | " : "") + s;
    out += "]";
    return out.c_str();
  }
};

namespace {

using test_support::bytes;
using test_support::of;
using test_support::text;

bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const bytes& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

constexpr mask_key rfc_key{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};

// How to build one frame; the defaults make a final, unflagged frame.
struct spec {
  bool fin = true;
  bool rsv1 = false;
  bool rsv2 = false;
  bool rsv3 = false;
  std::optional<mask_key> key{};
};

// A frame from its parts, through encode_head and copy_masked (tested in frame.cpp).
bytes frame(opcode op, const bytes& payload, spec s = {}) {
  frame_head head;
  head.opcode = op;
  head.fin = s.fin;
  head.rsv1 = s.rsv1;
  head.rsv2 = s.rsv2;
  head.rsv3 = s.rsv3;
  head.masked = s.key.has_value();
  if (s.key) head.key = *s.key;
  head.payload_size = payload.size();
  std::array<std::byte, max_head_size> h{};
  const std::size_t n = encode_head(head, h);
  bytes out(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(n));
  out.resize(n + payload.size());
  if (s.key)
    copy_masked(payload, std::span{out}.subspan(n), *s.key);
  else
    std::copy(payload.begin(), payload.end(), out.begin() + static_cast<std::ptrdiff_t>(n));
  return out;
}

// A frame as a client sends it (masked, for a server parser), with a key that changes
// from frame to frame so that masking offsets are exercised.
mask_key next_key() {
  static std::uint32_t counter = 0x9e3779b9;
  counter = counter * 1664525u + 1013904223u;
  return {static_cast<std::byte>(counter >> 24), static_cast<std::byte>(counter >> 16),
          static_cast<std::byte>(counter >> 8), static_cast<std::byte>(counter)};
}
bytes client_frame(opcode op, const bytes& payload, spec s = {}) {
  s.key = next_key();
  return frame(op, payload, s);
}
bytes server_frame(opcode op, const bytes& payload, spec s = {}) { return frame(op, payload, s); }

bytes close_payload(std::uint16_t code, std::string_view reason = {}) {
  return cat({of({unsigned{code} >> 8, unsigned{code} & 0xFF}), text(reason)});
}

std::string hex(std::span<const std::byte> b) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (std::byte x : b) {
    out += digits[std::to_integer<unsigned>(x) >> 4];
    out += digits[std::to_integer<unsigned>(x) & 15];
  }
  return out;
}

// What a run of the parser produced: the events as text (adjacent data pieces merged
// into one "data N"), all data bytes, and the failure if any.
struct run_result {
  std::vector<std::string> events;
  bytes data;
  std::optional<error> failure;
  bool operator==(const run_result&) const = default;
};

std::string describe(const parse_event& event) {
  struct visitor {
    std::string operator()(const parse::need_more&) const { return "need_more"; }
    std::string operator()(const parse::message_begin& e) const {
      return std::string("begin ") + (e.opcode == opcode::text ? "text" : "binary") +
             (e.fragmented ? " fragmented" : "") + (e.compressed ? " compressed" : "");
    }
    std::string operator()(const parse::data& e) const { return "data " + std::to_string(e.bytes.size()); }
    std::string operator()(const parse::frame_end&) const { return "frame_end"; }
    std::string operator()(const parse::message_end&) const { return "end"; }
    std::string operator()(const parse::control& e) const {
      return std::string(e.opcode == opcode::ping ? "ping " : "pong ") + hex(e.payload);
    }
    std::string operator()(const parse::close& e) const {
      return "close " + std::to_string(e.code) + " " + std::string(e.reason);
    }
    std::string operator()(const parse::failure& e) const {
      return "failure " + std::to_string(static_cast<int>(e.code));
    }
  };
  return std::visit(visitor{}, event);
}

// A contract check inside the feeding loop: silent when it holds, so that millions of
// events do not count as millions of assertions.
#define CONTRACT(condition)                                                                \
  do {                                                                                     \
    if (!(condition)) FAIL("parser contract broken: " #condition);                        \
  } while (false)

// Feeds `wire` to `parser`, making more of it visible `next_chunk()` bytes at a time as
// a socket would, and passing the unread rest back each time. Checks the contract on
// the way: need_more only when the input is used up, data never empty and inside the
// caller's buffer, control payloads inside the parser, failure sticky.
run_result run(frame_parser& parser, bytes wire, const std::function<std::size_t()>& next_chunk) {
  run_result result;
  std::size_t pos = 0;
  std::size_t end = 0;
  const std::span<std::byte> all{wire};
  std::size_t data_run = 0; // bytes of the data pieces since the last other event
  const auto flush = [&] {
    if (data_run != 0) result.events.push_back("data " + std::to_string(data_run));
    data_run = 0;
  };
  for (;;) {
    const std::span<std::byte> input = all.subspan(pos, end - pos);
    const auto [event, used] = parser.parse(input);
    CONTRACT(used <= input.size());
    pos += used;
    if (std::holds_alternative<parse::need_more>(event)) {
      CONTRACT(pos == end);
      if (end == wire.size()) {
        flush();
        break;
      }
      end += std::min(std::max<std::size_t>(next_chunk(), 1), wire.size() - end);
      continue;
    }
    if (const auto* d = std::get_if<parse::data>(&event)) {
      CONTRACT(!d->bytes.empty());
      CONTRACT(d->bytes.data() >= input.data());
      CONTRACT(d->bytes.data() + d->bytes.size() <= input.data() + used);
      result.data.insert(result.data.end(), d->bytes.begin(), d->bytes.end());
      data_run += d->bytes.size();
      continue;
    }
    flush();
    result.events.push_back(describe(event));
    if (const auto* f = std::get_if<parse::failure>(&event)) {
      result.failure = f->code;
      // Failure is forever, whatever comes next.
      bytes more = of({0x81, 0x00});
      const auto again = parser.parse(more);
      REQUIRE(std::holds_alternative<parse::failure>(again.event));
      CHECK(std::get<parse::failure>(again.event).code == f->code);
      CHECK(again.consumed == 0);
      const auto empty = parser.parse({});
      REQUIRE(std::holds_alternative<parse::failure>(empty.event));
      break;
    }
  }
  return result;
}

run_result run_whole(frame_parser parser, const bytes& wire) {
  return run(parser, wire, [&] { return wire.size(); });
}

run_result run_bytewise(frame_parser parser, const bytes& wire) {
  return run(parser, wire, [] { return std::size_t{1}; });
}

run_result run_chunks(frame_parser parser, const bytes& wire, std::size_t chunk) {
  return run(parser, wire, [=] { return chunk; });
}

run_result run_random(frame_parser parser, const bytes& wire, unsigned seed, std::size_t max_chunk) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> size(1, max_chunk);
  std::uniform_int_distribution<int> small(0, 3);
  // Mostly small pieces, sometimes big ones.
  return run(parser, wire, [&] { return small(rng) == 0 ? size(rng) : size(rng) % 16 + 1; });
}

parser_options server_options() {
  parser_options o;
  o.role = role::server;
  return o;
}

parser_options client_options() {
  parser_options o;
  o.role = role::client;
  return o;
}

using events = std::vector<std::string>;

std::string failure_event(error e) { return "failure " + std::to_string(static_cast<int>(e)); }

events without_data(events e) {
  std::erase_if(e, [](const std::string& s) { return s.starts_with("data "); });
  return e;
}

// Runs `wire` whole and expects the events `before`, then `expected` and the close code
// `code` for it; then a byte at a time, which may only add data before the failure
// (text that fails fast hands on the good bytes of the pieces before the bad one).
void expect_failure(const parser_options& options, const bytes& wire, error expected,
                    close_code code, events before = {}) {
  before.push_back(failure_event(expected));
  const run_result whole = run_whole(frame_parser{options}, wire);
  CHECK(whole.failure == expected);
  CHECK(whole.events == before);
  const run_result bytewise = run_bytewise(frame_parser{options}, wire);
  CHECK(bytewise.failure == expected);
  CHECK(without_data(bytewise.events) == without_data(before));
  CHECK(close_code_for(expected) == code);
}

// Expects `wire` to parse without failure, whole and a byte at a time, into `expected`.
void expect_events(const parser_options& options, const bytes& wire, const events& expected) {
  const run_result whole = run_whole(frame_parser{options}, wire);
  CHECK(!whole.failure);
  CHECK(whole.events == expected);
  const run_result bytewise = run_bytewise(frame_parser{options}, wire);
  CHECK(bytewise == whole);
}

} // namespace

// ---------------------------------------------------------------------------------
// RFC 6455 section 5.7 examples.

TEST_CASE("RFC 5.7: a single-frame unmasked text message (client side)") {
  const bytes wire = of({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
  expect_events(client_options(), wire, {"begin text", "data 5", "end"});
  CHECK(run_whole(frame_parser{client_options()}, wire).data == text("Hello"));
}

TEST_CASE("RFC 5.7: a single-frame masked text message (server side)") {
  const bytes wire = of({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  expect_events(server_options(), wire, {"begin text", "data 5", "end"});
  CHECK(run_whole(frame_parser{server_options()}, wire).data == text("Hello"));
  // The test's frame builder makes the same bytes.
  CHECK(frame(opcode::text, text("Hello"), {.key = rfc_key}) == wire);
}

TEST_CASE("RFC 5.7: a fragmented unmasked text message") {
  const bytes wire = of({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f});
  expect_events(client_options(), wire,
                {"begin text fragmented", "data 3", "frame_end", "data 2", "end"});
  CHECK(run_whole(frame_parser{client_options()}, wire).data == text("Hello"));
}

TEST_CASE("RFC 5.7: an unmasked ping and a masked pong") {
  expect_events(client_options(), of({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}),
                {"ping " + hex(text("Hello"))});
  expect_events(server_options(),
                of({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}),
                {"pong " + hex(text("Hello"))});
}

TEST_CASE("RFC 5.7: 256 bytes and 64 KiB of binary in one unmasked frame") {
  bytes payload256(256);
  for (std::size_t i = 0; i < payload256.size(); ++i) payload256[i] = static_cast<std::byte>(i);
  const bytes wire256 = cat({of({0x82, 0x7E, 0x01, 0x00}), payload256});
  expect_events(client_options(), wire256, {"begin binary", "data 256", "end"});
  CHECK(run_whole(frame_parser{client_options()}, wire256).data == payload256);

  bytes payload64k(65536);
  for (std::size_t i = 0; i < payload64k.size(); ++i) payload64k[i] = static_cast<std::byte>(i * 7);
  const bytes wire64k = cat({of({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}), payload64k});
  expect_events(client_options(), wire64k, {"begin binary", "data 65536", "end"});
  CHECK(run_whole(frame_parser{client_options()}, wire64k).data == payload64k);
}

// ---------------------------------------------------------------------------------
// Events.

TEST_CASE("each call returns one event; frame_end and message_end come without input") {
  frame_parser parser{client_options()};
  bytes wire = of({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f});
  std::span<std::byte> input{wire};
  auto r = parser.parse(input);
  CHECK(std::holds_alternative<parse::message_begin>(r.event));
  CHECK(r.consumed == 2);
  CHECK(parser.in_message());
  input = input.subspan(r.consumed);
  r = parser.parse(input.first(3));
  REQUIRE(std::holds_alternative<parse::data>(r.event));
  CHECK(r.consumed == 3);
  input = input.subspan(r.consumed);
  // The frame's end needs no more bytes.
  r = parser.parse({});
  CHECK(std::holds_alternative<parse::frame_end>(r.event));
  CHECK(r.consumed == 0);
  CHECK(parser.in_message());
  r = parser.parse({});
  CHECK(std::holds_alternative<parse::need_more>(r.event));
  r = parser.parse(input);
  CHECK(std::holds_alternative<parse::data>(r.event));
  CHECK(r.consumed == 4);
  r = parser.parse({});
  CHECK(std::holds_alternative<parse::message_end>(r.event));
  CHECK(!parser.in_message());
  r = parser.parse({});
  CHECK(std::holds_alternative<parse::need_more>(r.event));
}

TEST_CASE("message_begin says whether the message is fragmented, and the opcode") {
  expect_events(client_options(), server_frame(opcode::binary, text("ab")), {"begin binary", "data 2", "end"});
  expect_events(client_options(),
                cat({server_frame(opcode::binary, text("ab"), {.fin = false}),
                     server_frame(opcode::continuation, text("cd"))}),
                {"begin binary fragmented", "data 2", "frame_end", "data 2", "end"});
}

TEST_CASE("message_begin gives the first frame's payload length before any of it arrives") {
  for (const std::size_t size : {std::size_t{0}, std::size_t{125}, std::size_t{126}, std::size_t{70000}}) {
    const bytes wire = client_frame(opcode::binary, bytes(size), {.fin = size != 126});
    frame_parser parser{server_options()};
    bytes head(wire.begin(), wire.end() - static_cast<std::ptrdiff_t>(size)); // the head alone
    const auto r = parser.parse(head);
    REQUIRE(std::holds_alternative<parse::message_begin>(r.event));
    CHECK(std::get<parse::message_begin>(r.event).frame_size == size);
  }
}

TEST_CASE("zero-length frames still begin, end and continue messages") {
  expect_events(server_options(), client_frame(opcode::text, {}), {"begin text", "end"});
  expect_events(server_options(), client_frame(opcode::binary, {}), {"begin binary", "end"});
  expect_events(server_options(),
                cat({client_frame(opcode::text, {}, {.fin = false}),
                     client_frame(opcode::continuation, {}, {.fin = false}),
                     client_frame(opcode::continuation, text("x"), {.fin = false}),
                     client_frame(opcode::continuation, {})}),
                {"begin text fragmented", "frame_end", "frame_end", "data 1", "frame_end", "end"});
}

TEST_CASE("data is unmasked in place in the caller's buffer") {
  bytes wire = client_frame(opcode::binary, text("in place, please"));
  frame_parser parser{server_options()};
  auto r = parser.parse(wire);
  REQUIRE(std::holds_alternative<parse::message_begin>(r.event));
  const std::size_t head = r.consumed;
  r = parser.parse(std::span{wire}.subspan(head));
  const auto& d = std::get<parse::data>(r.event);
  CHECK(d.bytes.data() == wire.data() + head);
  CHECK(bytes(d.bytes.begin(), d.bytes.end()) == text("in place, please"));
  CHECK(bytes(wire.begin() + static_cast<std::ptrdiff_t>(head), wire.end()) == text("in place, please"));
}

TEST_CASE("a payload split across calls is unmasked at the right key offset") {
  const bytes payload = text("0123456789abcdefghijklmnopqrstuvwxyz");
  const bytes wire = client_frame(opcode::binary, payload);
  for (std::size_t chunk = 1; chunk <= 9; ++chunk) {
    const run_result r = run_chunks(frame_parser{server_options()}, wire, chunk);
    CHECK(r.data == payload);
  }
}

TEST_CASE("control frames between fragments, and split across calls") {
  const bytes wire = cat({client_frame(opcode::text, text("Hel"), {.fin = false}),
                          client_frame(opcode::ping, text("are you there?")),
                          client_frame(opcode::continuation, text("l"), {.fin = false}),
                          client_frame(opcode::pong, {}),
                          client_frame(opcode::close, close_payload(1001, "later")),
                          client_frame(opcode::continuation, text("o"))});
  expect_events(server_options(), wire,
                {"begin text fragmented", "data 3", "frame_end", "ping " + hex(text("are you there?")),
                 "data 1", "frame_end", "pong ", "close 1001 later", "data 1", "end"});
  CHECK(run_bytewise(frame_parser{server_options()}, wire).data == text("Hello"));
}

TEST_CASE("a control payload is gathered in the parser, valid until the next call") {
  bytes payload(125);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(0xA0 + i);
  bytes wire = client_frame(opcode::ping, payload);
  frame_parser parser{server_options()};
  // Head and 124 payload bytes: not yet.
  auto r = parser.parse(std::span{wire}.first(wire.size() - 1));
  CHECK(std::holds_alternative<parse::need_more>(r.event));
  CHECK(r.consumed == wire.size() - 1);
  r = parser.parse(std::span{wire}.last(1));
  const auto& c = std::get<parse::control>(r.event);
  CHECK(c.opcode == opcode::ping);
  CHECK(bytes(c.payload.begin(), c.payload.end()) == payload);
  // Not in the caller's buffer.
  CHECK((c.payload.data() < wire.data() || c.payload.data() >= wire.data() + wire.size()));
}

TEST_CASE("close frames: empty, code only, code and reason") {
  expect_events(server_options(), client_frame(opcode::close, {}), {"close 1005 "});
  expect_events(server_options(), client_frame(opcode::close, close_payload(1000)), {"close 1000 "});
  expect_events(client_options(), server_frame(opcode::close, close_payload(4999, "bye \xc3\xa9")),
                {"close 4999 bye \xc3\xa9"});
  bytes wire = client_frame(opcode::close, close_payload(1000, std::string(123, 'r')));
  frame_parser parser{server_options()};
  const auto r = parser.parse(wire);
  const auto& c = std::get<parse::close>(r.event);
  CHECK(c.code == 1000);
  CHECK(c.reason == std::string(123, 'r'));
  CHECK(r.consumed == wire.size());
}

TEST_CASE("every sendable close code is accepted") {
  for (unsigned code = 0; code < 65536; ++code) {
    if (!is_sendable(static_cast<std::uint16_t>(code))) continue;
    const auto r = run_whole(frame_parser{client_options()},
                             server_frame(opcode::close, close_payload(static_cast<std::uint16_t>(code))));
    REQUIRE(!r.failure);
  }
}

TEST_CASE("compressed messages are reported, not validated, when compression is on") {
  parser_options options = server_options();
  options.allow_compression = true;
  // Deflated bytes are not UTF-8; the decompressor's output is validated elsewhere.
  const bytes deflated = of({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff, 0xfe});
  expect_events(options, client_frame(opcode::text, deflated, {.rsv1 = true}),
                {"begin text compressed", "data 9", "end"});
  expect_events(options,
                cat({client_frame(opcode::text, deflated, {.fin = false, .rsv1 = true}),
                     client_frame(opcode::continuation, deflated)}),
                {"begin text fragmented compressed", "data 9", "frame_end", "data 9", "end"});
  // A later message without RSV1 is plain again, and validated.
  expect_failure(options,
                 cat({client_frame(opcode::text, deflated, {.rsv1 = true}), client_frame(opcode::text, of({0xff}))}),
                 error::invalid_utf8, close_code::invalid_payload,
                 {"begin text compressed", "data 9", "end", "begin text"});
}

TEST_CASE("set_limits applies from the next head") {
  frame_parser parser{server_options()};
  bytes first = client_frame(opcode::binary, bytes(100));
  CHECK(!run(parser, first, [&] { return first.size(); }).failure);
  parser_limits tight;
  tight.max_frame_size = 10;
  parser.set_limits(tight);
  CHECK(parser.options().limits.max_frame_size == 10);
  bytes second = client_frame(opcode::binary, bytes(11));
  const auto r = parser.parse(second);
  REQUIRE(std::holds_alternative<parse::failure>(r.event));
  CHECK(std::get<parse::failure>(r.event).code == error::frame_too_big);
}

// ---------------------------------------------------------------------------------
// One test per rule: the violating bytes, the exact error and its close code. Each
// also shows the same frame without the violation (or under the other role, or with
// the limit raised) passes, so the test fails if the rule is removed.

TEST_CASE("rule: RSV2 and RSV3 are always reserved") {
  parser_options compression = server_options();
  compression.allow_compression = true;
  for (const parser_options& options : {server_options(), compression}) {
    expect_failure(options, client_frame(opcode::text, text("x"), {.rsv2 = true}), error::reserved_bits,
                   close_code::protocol_error);
    expect_failure(options, client_frame(opcode::binary, text("x"), {.rsv3 = true}), error::reserved_bits,
                   close_code::protocol_error);
    expect_failure(options, client_frame(opcode::ping, {}, {.rsv2 = true, .rsv3 = true}),
                   error::reserved_bits, close_code::protocol_error);
    expect_events(options, client_frame(opcode::text, text("x")), {"begin text", "data 1", "end"});
  }
}

TEST_CASE("rule: RSV1 needs compression to be negotiated") {
  expect_failure(server_options(), client_frame(opcode::text, text("x"), {.rsv1 = true}), error::reserved_bits,
                 close_code::protocol_error);
  expect_failure(server_options(), client_frame(opcode::binary, text("x"), {.rsv1 = true}),
                 error::reserved_bits, close_code::protocol_error);
  parser_options options = server_options();
  options.allow_compression = true;
  expect_events(options, client_frame(opcode::binary, text("x"), {.rsv1 = true}),
                {"begin binary compressed", "data 1", "end"});
}

TEST_CASE("rule: RSV1 never on a continuation frame") {
  parser_options options = server_options();
  options.allow_compression = true;
  expect_failure(options,
                 cat({client_frame(opcode::text, text("a"), {.fin = false, .rsv1 = true}),
                      client_frame(opcode::continuation, text("b"), {.rsv1 = true})}),
                 error::reserved_bits, close_code::protocol_error,
                 {"begin text fragmented compressed", "data 1", "frame_end"});
  expect_failure(options,
                 cat({client_frame(opcode::text, text("a"), {.fin = false}),
                      client_frame(opcode::continuation, text("b"), {.rsv1 = true})}),
                 error::reserved_bits, close_code::protocol_error,
                 {"begin text fragmented", "data 1", "frame_end"});
}

TEST_CASE("rule: RSV1 never on a control frame") {
  parser_options options = server_options();
  options.allow_compression = true;
  for (opcode op : {opcode::ping, opcode::pong, opcode::close}) {
    expect_failure(options, client_frame(op, {}, {.rsv1 = true}), error::reserved_bits,
                   close_code::protocol_error);
  }
}

TEST_CASE("rule: reserved opcodes") {
  for (unsigned v : {3u, 4u, 5u, 6u, 7u, 0xBu, 0xCu, 0xDu, 0xEu, 0xFu}) {
    CAPTURE(v);
    expect_failure(server_options(), client_frame(static_cast<opcode>(v), {}), error::unknown_opcode,
                   close_code::protocol_error);
    expect_failure(client_options(), server_frame(static_cast<opcode>(v), text("abc")), error::unknown_opcode,
                   close_code::protocol_error);
  }
}

TEST_CASE("rule: a server needs masked frames") {
  expect_failure(server_options(), server_frame(opcode::text, text("Hello")), error::unmasked_frame,
                 close_code::protocol_error);
  expect_failure(server_options(), server_frame(opcode::ping, {}), error::unmasked_frame,
                 close_code::protocol_error);
  // The same bytes are fine for a client.
  expect_events(client_options(), server_frame(opcode::text, text("Hello")), {"begin text", "data 5", "end"});
}

TEST_CASE("rule: a client needs unmasked frames") {
  expect_failure(client_options(), client_frame(opcode::text, text("Hello")), error::masked_frame,
                 close_code::protocol_error);
  expect_failure(client_options(), client_frame(opcode::close, {}), error::masked_frame,
                 close_code::protocol_error);
  expect_events(server_options(), client_frame(opcode::text, text("Hello")), {"begin text", "data 5", "end"});
}

TEST_CASE("rule: control frames carry at most 125 bytes") {
  for (opcode op : {opcode::ping, opcode::pong, opcode::close}) {
    expect_failure(server_options(), client_frame(op, bytes(126)), error::control_frame_too_big,
                   close_code::protocol_error);
    expect_failure(server_options(), client_frame(op, bytes(65536)), error::control_frame_too_big,
                   close_code::protocol_error);
  }
  // Reported from the first two bytes, before any length or payload.
  expect_failure(server_options(), of({0x89, 0xFE}), error::control_frame_too_big, close_code::protocol_error);
  expect_failure(server_options(), of({0x89, 0xFF}), error::control_frame_too_big, close_code::protocol_error);
  expect_events(server_options(), client_frame(opcode::ping, bytes(125)), {"ping " + hex(bytes(125))});
}

TEST_CASE("rule: control frames are never fragmented") {
  for (opcode op : {opcode::ping, opcode::pong, opcode::close}) {
    expect_failure(server_options(), client_frame(op, {}, {.fin = false}), error::fragmented_control_frame,
                   close_code::protocol_error);
  }
  // Even inside a fragmented message.
  expect_failure(server_options(),
                 cat({client_frame(opcode::binary, text("a"), {.fin = false}),
                      client_frame(opcode::ping, text("p"), {.fin = false})}),
                 error::fragmented_control_frame, close_code::protocol_error,
                 {"begin binary fragmented", "data 1", "frame_end"});
}

TEST_CASE("rule: a continuation needs a message to continue") {
  expect_failure(server_options(), client_frame(opcode::continuation, text("x")), error::unexpected_continuation,
                 close_code::protocol_error);
  // Also right after a message has ended.
  expect_failure(server_options(),
                 cat({client_frame(opcode::text, text("a")), client_frame(opcode::continuation, text("b"))}),
                 error::unexpected_continuation, close_code::protocol_error, {"begin text", "data 1", "end"});
  // And a control frame does not open one.
  expect_failure(server_options(),
                 cat({client_frame(opcode::ping, {}), client_frame(opcode::continuation, {}, {.fin = false})}),
                 error::unexpected_continuation, close_code::protocol_error, {"ping "});
}

TEST_CASE("rule: a new data message may not start inside a fragmented one") {
  for (opcode op : {opcode::text, opcode::binary}) {
    expect_failure(server_options(),
                   cat({client_frame(opcode::binary, text("a"), {.fin = false}), client_frame(op, text("b"))}),
                   error::expected_continuation, close_code::protocol_error,
                   {"begin binary fragmented", "data 1", "frame_end"});
  }
  // With compression allowed, an RSV1 frame inside a message is still a new message.
  parser_options options = server_options();
  options.allow_compression = true;
  expect_failure(options,
                 cat({client_frame(opcode::text, text("a"), {.fin = false}),
                      client_frame(opcode::text, text("b"), {.rsv1 = true})}),
                 error::expected_continuation, close_code::protocol_error,
                 {"begin text fragmented", "data 1", "frame_end"});
}

TEST_CASE("rule: a close payload of one byte") {
  expect_failure(server_options(), client_frame(opcode::close, of({0x03})), error::bad_close_size,
                 close_code::protocol_error);
}

TEST_CASE("rule: close codes that may not be sent") {
  for (unsigned code : {0u, 1u, 999u, 1004u, 1005u, 1006u, 1015u, 1016u, 1100u, 2000u, 2999u, 5000u, 65535u}) {
    CAPTURE(code);
    expect_failure(server_options(), client_frame(opcode::close, close_payload(static_cast<std::uint16_t>(code))),
                   error::bad_close_code, close_code::protocol_error);
  }
}

TEST_CASE("rule: a close reason must be UTF-8") {
  expect_failure(server_options(), client_frame(opcode::close, cat({close_payload(1000, "ok"), of({0xff})})),
                 error::bad_close_reason, close_code::invalid_payload);
  // Truncated code point at the end of the reason.
  expect_failure(server_options(), client_frame(opcode::close, cat({close_payload(1000, "ok"), of({0xe2, 0x82})})),
                 error::bad_close_reason, close_code::invalid_payload);
  expect_events(server_options(), client_frame(opcode::close, cat({close_payload(1000, "ok"), of({0xe2, 0x82, 0xac})})),
                {"close 1000 ok\xe2\x82\xac"});
}

TEST_CASE("rule: text must be UTF-8; binary need not be") {
  const bytes bad = cat({text("valid so far "), of({0xc0, 0xaf}), text(" and more")});
  expect_failure(server_options(), client_frame(opcode::text, bad), error::invalid_utf8, close_code::invalid_payload,
                 {"begin text"});
  expect_events(server_options(), client_frame(opcode::binary, bad), {"begin binary", "data 24", "end"});
  // Surrogates, overlong forms, above U+10FFFF.
  for (const bytes& b : {of({0xed, 0xa0, 0x80}), of({0xe0, 0x80, 0xaf}), of({0xf4, 0x90, 0x80, 0x80}), of({0xff})}) {
    expect_failure(server_options(), client_frame(opcode::text, b), error::invalid_utf8, close_code::invalid_payload,
                   {"begin text"});
  }
}

TEST_CASE("rule: frame size limit, checked at head time") {
  parser_options options = server_options();
  options.limits.max_frame_size = 10;
  options.limits.max_message_size = 1000;
  expect_events(options, client_frame(opcode::binary, bytes(10)), {"begin binary", "data 10", "end"});
  expect_failure(options, client_frame(opcode::binary, bytes(11)), error::frame_too_big, close_code::message_too_big);
  // Per frame: a message of several frames at the limit passes.
  expect_events(options,
                cat({client_frame(opcode::binary, bytes(10), {.fin = false}), client_frame(opcode::continuation, bytes(10))}),
                {"begin binary fragmented", "data 10", "frame_end", "data 10", "end"});
  expect_failure(options,
                 cat({client_frame(opcode::binary, bytes(10), {.fin = false}),
                      client_frame(opcode::continuation, bytes(11))}),
                 error::frame_too_big, close_code::message_too_big, {"begin binary fragmented", "data 10", "frame_end"});
  // Only the head is needed to fail.
  const bytes huge = client_frame(opcode::binary, bytes(100000));
  expect_failure(options, bytes(huge.begin(), huge.begin() + 14), error::frame_too_big, close_code::message_too_big);
}

TEST_CASE("rule: message size limit, checked at head time before the payload") {
  parser_options options = server_options();
  options.limits.max_message_size = 20;
  expect_events(options,
                cat({client_frame(opcode::text, text("0123456789"), {.fin = false}),
                     client_frame(opcode::continuation, text("0123456789"))}),
                {"begin text fragmented", "data 10", "frame_end", "data 10", "end"});
  const bytes over = client_frame(opcode::continuation, text("01234567890"));
  // Only the second frame's head is fed.
  expect_failure(options,
                 cat({client_frame(opcode::text, text("0123456789"), {.fin = false}), bytes(over.begin(), over.begin() + 6)}),
                 error::message_too_big, close_code::message_too_big,
                 {"begin text fragmented", "data 10", "frame_end"});
  // A single frame over the limit, before message_begin.
  expect_events(options, client_frame(opcode::binary, bytes(20)), {"begin binary", "data 20", "end"});
  expect_failure(options, client_frame(opcode::binary, bytes(21)), error::message_too_big,
                 close_code::message_too_big);
  // The count starts again with each message.
  expect_events(options, cat({client_frame(opcode::binary, bytes(20)), client_frame(opcode::binary, bytes(20))}),
                {"begin binary", "data 20", "end", "begin binary", "data 20", "end"});
  // Control frames in between do not count.
  expect_events(options,
                cat({client_frame(opcode::binary, bytes(10), {.fin = false}), client_frame(opcode::ping, bytes(100)),
                     client_frame(opcode::continuation, bytes(10))}),
                {"begin binary fragmented", "data 10", "frame_end", "ping " + hex(bytes(100)), "data 10", "end"});
}

TEST_CASE("rule: fragment count limit") {
  parser_options options = server_options();
  options.limits.max_fragments = 3;
  const bytes three = cat({client_frame(opcode::binary, text("a"), {.fin = false}),
                           client_frame(opcode::continuation, {}, {.fin = false}),
                           client_frame(opcode::continuation, text("c"))});
  expect_events(options, three, {"begin binary fragmented", "data 1", "frame_end", "frame_end", "data 1", "end"});
  const bytes four = cat({client_frame(opcode::binary, text("a"), {.fin = false}),
                          client_frame(opcode::continuation, {}, {.fin = false}),
                          client_frame(opcode::continuation, text("c"), {.fin = false}),
                          client_frame(opcode::continuation, text("d"))});
  expect_failure(options, four, error::too_many_fragments, close_code::message_too_big,
                 {"begin binary fragmented", "data 1", "frame_end", "frame_end", "data 1", "frame_end"});
  // The count starts again with each message, and control frames do not count.
  expect_events(options,
                cat({three, client_frame(opcode::ping, {}), three}),
                {"begin binary fragmented", "data 1", "frame_end", "frame_end", "data 1", "end", "ping ",
                 "begin binary fragmented", "data 1", "frame_end", "frame_end", "data 1", "end"});
}

TEST_CASE("rule: payload lengths in their shortest encoding, and below 2^63") {
  // 16-bit length 5, masked.
  expect_failure(server_options(), of({0x82, 0xFE, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0, 0, 0}), error::non_minimal_length,
                 close_code::protocol_error);
  // 64-bit length 0xFFFF.
  expect_failure(client_options(), of({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}), error::non_minimal_length,
                 close_code::protocol_error);
  expect_failure(client_options(), of({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}), error::length_out_of_range,
                 close_code::protocol_error);
  // With no limits in the way, the largest length is accepted at head time.
  parser_options unlimited = client_options();
  unlimited.limits.max_frame_size = UINT64_MAX;
  unlimited.limits.max_message_size = UINT64_MAX;
  frame_parser parser{unlimited};
  bytes head = of({0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
  CHECK(std::holds_alternative<parse::message_begin>(parser.parse(head).event));
}

TEST_CASE("the first broken rule of a head is the one reported, in the documented order") {
  // RSV2 before the opcode.
  expect_failure(server_options(), client_frame(static_cast<opcode>(3), {}, {.rsv2 = true}), error::reserved_bits,
                 close_code::protocol_error);
  // The opcode before RSV1 and before masking.
  expect_failure(server_options(), server_frame(static_cast<opcode>(0xB), {}, {.rsv1 = true}),
                 error::unknown_opcode, close_code::protocol_error);
  // RSV1 before the control rules.
  expect_failure(server_options(), client_frame(opcode::ping, {}, {.fin = false, .rsv1 = true}),
                 error::reserved_bits, close_code::protocol_error);
  // Fragmented before too big.
  expect_failure(server_options(), client_frame(opcode::ping, bytes(200), {.fin = false}),
                 error::fragmented_control_frame, close_code::protocol_error);
  // The control rules and the message sequence before masking.
  expect_failure(server_options(), server_frame(opcode::ping, bytes(126)), error::control_frame_too_big,
                 close_code::protocol_error);
  expect_failure(server_options(), server_frame(opcode::continuation, {}), error::unexpected_continuation,
                 close_code::protocol_error);
  // Masking before the length encoding.
  expect_failure(client_options(), of({0x82, 0xFE, 0x00, 0x05, 1, 2, 3, 4}), error::masked_frame,
                 close_code::protocol_error);
  // The length encoding before the limits.
  parser_options tiny = client_options();
  tiny.limits.max_frame_size = 1;
  expect_failure(tiny, of({0x82, 0x7E, 0x00, 0x05}), error::non_minimal_length, close_code::protocol_error);
  // The frame limit before the message limit before the fragment count.
  tiny.limits.max_message_size = 1;
  tiny.limits.max_fragments = 0;
  expect_failure(tiny, server_frame(opcode::binary, bytes(2)), error::frame_too_big, close_code::message_too_big);
  tiny.limits.max_frame_size = 100;
  expect_failure(tiny, server_frame(opcode::binary, bytes(2)), error::message_too_big, close_code::message_too_big);
  tiny.limits.max_message_size = 100;
  expect_failure(tiny, server_frame(opcode::binary, bytes(2)), error::too_many_fragments, close_code::message_too_big);
}

// ---------------------------------------------------------------------------------
// UTF-8, fail-fast across fragments.

TEST_CASE("utf8: a bad byte in the first fragment fails before the final frame is fed") {
  const bytes first = client_frame(opcode::text, cat({text("abc"), of({0xfe}), text("def")}), {.fin = false});
  frame_parser parser{server_options()};
  bytes wire = first; // the final frame never arrives
  const run_result r = run_whole(parser, wire);
  CHECK(r.events == events{"begin text fragmented", failure_event(error::invalid_utf8)});
  CHECK(close_code_for(*r.failure) == close_code::invalid_payload);
}

TEST_CASE("utf8: a bad byte fails in the piece that carries it, before the frame ends") {
  bytes payload = text(std::string(1000, 'a'));
  payload[10] = std::byte{0x80};
  bytes wire = client_frame(opcode::text, payload);
  // Feed the head and 20 payload bytes only.
  wire.resize(wire.size() - payload.size() + 20);
  frame_parser parser{server_options()};
  const run_result r = run(parser, wire, [] { return std::size_t{5}; });
  // Pieces of 5: the 8-byte head ends 3 bytes into the second, 2 payload bytes follow;
  // then payload 2-6, then 7-11 with the bad byte at 10.
  CHECK(r.events == events{"begin text", "data 7", failure_event(error::invalid_utf8)});
}

TEST_CASE("utf8: a 4-byte code point split across fragments at every point passes") {
  const bytes smile = of({0xf0, 0x9f, 0x98, 0x80});
  for (std::size_t cut = 1; cut < 4; ++cut) {
    CAPTURE(cut);
    const bytes a(smile.begin(), smile.begin() + static_cast<std::ptrdiff_t>(cut));
    const bytes b(smile.begin() + static_cast<std::ptrdiff_t>(cut), smile.end());
    const bytes wire = cat({client_frame(opcode::text, cat({text("x"), a}), {.fin = false}),
                            client_frame(opcode::ping, text("between")),
                            client_frame(opcode::continuation, b)});
    expect_events(server_options(), wire,
                  {"begin text fragmented", "data " + std::to_string(1 + cut), "frame_end",
                   "ping " + hex(text("between")), "data " + std::to_string(4 - cut), "end"});
    // And one byte per fragment.
    expect_events(server_options(),
                  cat({client_frame(opcode::text, of({0xf0}), {.fin = false}),
                       client_frame(opcode::continuation, of({0x9f}), {.fin = false}),
                       client_frame(opcode::continuation, of({0x98}), {.fin = false}),
                       client_frame(opcode::continuation, of({0x80}))}),
                  {"begin text fragmented", "data 1", "frame_end", "data 1", "frame_end", "data 1", "frame_end",
                   "data 1", "end"});
  }
}

TEST_CASE("utf8: a message that ends mid-code-point fails at its end") {
  expect_failure(server_options(),
                 cat({client_frame(opcode::text, text("ok"), {.fin = false}),
                      client_frame(opcode::continuation, of({0xf0, 0x9f, 0x98}))}),
                 error::invalid_utf8, close_code::invalid_payload,
                 {"begin text fragmented", "data 2", "frame_end", "data 3"});
  // Not at a fragment's end, only at the message's.
  expect_failure(server_options(),
                 cat({client_frame(opcode::text, of({0xe2, 0x82}), {.fin = false}),
                      client_frame(opcode::continuation, {})}),
                 error::invalid_utf8, close_code::invalid_payload, {"begin text fragmented", "data 2", "frame_end"});
  expect_failure(server_options(), client_frame(opcode::text, of({0xc3})), error::invalid_utf8,
                 close_code::invalid_payload, {"begin text", "data 1"});
}

TEST_CASE("utf8: only text is validated, and each text message from a fresh start") {
  // Binary ending mid-code-point, then text: neither fails.
  expect_events(server_options(),
                cat({client_frame(opcode::binary, of({0xf0, 0x9f})), client_frame(opcode::text, text("ok"))}),
                {"begin binary", "data 2", "end", "begin text", "data 2", "end"});
  // A compressed text message leaves the validator untouched too.
  parser_options options = server_options();
  options.allow_compression = true;
  expect_events(options,
                cat({client_frame(opcode::text, of({0xf0, 0x9f}), {.rsv1 = true}), client_frame(opcode::text, text("ok"))}),
                {"begin text compressed", "data 2", "end", "begin text", "data 2", "end"});
}

// ---------------------------------------------------------------------------------
// Limits exactly at and one past, with fragments.

TEST_CASE("limits: frames, message and fragments exactly at the limit pass") {
  parser_options options = server_options();
  options.limits = {.max_frame_size = 100, .max_message_size = 300, .max_fragments = 3};
  const bytes at = cat({client_frame(opcode::binary, bytes(100), {.fin = false}),
                        client_frame(opcode::continuation, bytes(100), {.fin = false}),
                        client_frame(opcode::continuation, bytes(100))});
  expect_events(options, at,
                {"begin binary fragmented", "data 100", "frame_end", "data 100", "frame_end", "data 100", "end"});
  SUBCASE("one byte past the message limit") {
    options.limits.max_message_size = 299;
    expect_failure(options, at, error::message_too_big, close_code::message_too_big,
                   {"begin binary fragmented", "data 100", "frame_end", "data 100", "frame_end"});
  }
  SUBCASE("one byte past the frame limit") {
    options.limits.max_frame_size = 99;
    expect_failure(options, at, error::frame_too_big, close_code::message_too_big);
  }
  SUBCASE("one fragment past the limit") {
    options.limits.max_fragments = 2;
    expect_failure(options, at, error::too_many_fragments, close_code::message_too_big,
                   {"begin binary fragmented", "data 100", "frame_end", "data 100", "frame_end"});
  }
}

// ---------------------------------------------------------------------------------
// Split independence over long streams.

namespace {

// A long stream of frames with the events it must give: text (with multi-byte code
// points cut anywhere between fragments) and binary, single and fragmented, empty
// frames, pings and pongs between fragments, compressed messages, then a close.
struct stream {
  bytes wire;
  events expected;
  bytes data;
};

stream make_stream(unsigned seed, role sender, std::size_t messages, std::size_t max_payload) {
  std::mt19937 rng(seed);
  auto pick = [&](std::size_t lo, std::size_t hi) { return std::uniform_int_distribution<std::size_t>(lo, hi)(rng); };
  const auto build = [&](opcode op, const bytes& payload, spec s) {
    return sender == role::client ? client_frame(op, payload, s) : server_frame(op, payload, s);
  };
  stream s;
  const auto append = [&](const bytes& b) { s.wire.insert(s.wire.end(), b.begin(), b.end()); };
  static const std::string_view pieces[] = {"a", "Z", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                            "\xed\x9f\xbf", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf", "\x7f"};
  std::size_t pending = 0;
  const auto flush = [&] {
    if (pending != 0) s.expected.push_back("data " + std::to_string(pending));
    pending = 0;
  };
  const auto add_data = [&](const bytes& b) {
    pending += b.size();
    s.data.insert(s.data.end(), b.begin(), b.end());
  };
  const auto add_event = [&](std::string e) {
    flush();
    s.expected.push_back(std::move(e));
  };
  const auto maybe_control = [&] {
    const std::size_t what = pick(0, 5);
    if (what == 0) {
      bytes p(pick(0, 125));
      for (auto& b : p) b = static_cast<std::byte>(pick(0, 255));
      append(build(opcode::ping, p, {}));
      add_event("ping " + hex(p));
    } else if (what == 1) {
      bytes p(pick(0, 3));
      for (auto& b : p) b = static_cast<std::byte>(pick(0, 255));
      append(build(opcode::pong, p, {}));
      add_event("pong " + hex(p));
    }
  };
  for (std::size_t m = 0; m < messages; ++m) {
    maybe_control();
    // Text, binary, or compressed (either opcode; the payload is then not UTF-8).
    const std::size_t kind = pick(0, 2);
    const bool compressed = kind == 2;
    const bool is_text = kind == 0 || (compressed && pick(0, 1) == 1);
    bytes payload;
    const std::size_t size = pick(0, 3) == 0 ? 0 : pick(1, max_payload);
    while (payload.size() < size) {
      if (is_text && !compressed) {
        const bytes p = text(pieces[pick(0, std::size(pieces) - 1)]);
        payload.insert(payload.end(), p.begin(), p.end());
      } else {
        payload.push_back(static_cast<std::byte>(pick(0, 255)));
      }
    }
    // Cut into fragments at arbitrary byte positions (zero-length ones included).
    const std::size_t fragments = pick(0, 2) == 0 ? 1 : pick(2, 6);
    std::vector<std::size_t> cuts{0, payload.size()};
    for (std::size_t i = 1; i < fragments; ++i) cuts.push_back(pick(0, payload.size()));
    std::sort(cuts.begin(), cuts.end());
    const opcode op = is_text ? opcode::text : opcode::binary;
    add_event(std::string("begin ") + (is_text ? "text" : "binary") + (fragments > 1 ? " fragmented" : "") +
              (compressed ? " compressed" : ""));
    for (std::size_t f = 0; f + 1 < cuts.size(); ++f) {
      const bytes part(payload.begin() + static_cast<std::ptrdiff_t>(cuts[f]),
                       payload.begin() + static_cast<std::ptrdiff_t>(cuts[f + 1]));
      const bool last = f + 2 == cuts.size();
      append(build(f == 0 ? op : opcode::continuation, part, {.fin = last, .rsv1 = compressed && f == 0}));
      add_data(part);
      if (!last) {
        add_event("frame_end");
        maybe_control();
      }
    }
    add_event("end");
  }
  const bytes close = close_payload(1000, "done \xe2\x9c\x93");
  append(build(opcode::close, close, {}));
  add_event("close 1000 done \xe2\x9c\x93");
  flush();
  return s;
}

void check_splits(const stream& s, const parser_options& options, std::size_t max_chunk, bool bytewise) {
  const run_result whole = run_whole(frame_parser{options}, s.wire);
  REQUIRE(!whole.failure);
  CHECK(whole.events == s.expected);
  CHECK(whole.data == s.data);
  if (bytewise) {
    const run_result one = run_bytewise(frame_parser{options}, s.wire);
    CHECK(one == whole);
  }
  for (unsigned seed = 1; seed <= 12; ++seed) {
    CAPTURE(seed);
    const run_result r = run_random(frame_parser{options}, s.wire, seed, max_chunk);
    CHECK(r == whole);
  }
  for (std::size_t chunk : {2u, 3u, 7u, 13u, 14u, 15u, 127u, 4096u}) {
    CAPTURE(chunk);
    const run_result r = run_chunks(frame_parser{options}, s.wire, chunk);
    CHECK(r == whole);
  }
}

} // namespace

TEST_CASE("splits: any split of a long mixed stream gives the same events and data") {
  for (unsigned seed : {1u, 2u, 3u, 42u}) {
    CAPTURE(seed);
    parser_options server = server_options();
    server.allow_compression = true;
    const stream to_server = make_stream(seed, role::client, 60, 700);
    check_splits(to_server, server, 300, true);

    parser_options client = client_options();
    client.allow_compression = true;
    const stream to_client = make_stream(seed + 100, role::server, 60, 700);
    check_splits(to_client, client, 300, true);
  }
}

TEST_CASE("splits: a multi-megabyte stream, in one call and in random pieces") {
  parser_options server = server_options();
  server.allow_compression = true;
  const stream big = make_stream(7, role::client, 40, 300000);
  REQUIRE(big.wire.size() > 3'000'000);
  check_splits(big, server, 100000, false);
  // Also with a few frames of 16-bit and 64-bit lengths, fed in 1 KiB pieces.
  const run_result kib = run_chunks(frame_parser{server}, big.wire, 1024);
  CHECK(kib.events == big.expected);
  CHECK(kib.data == big.data);
}

// ---------------------------------------------------------------------------------
// No allocation.

TEST_CASE("the parser never allocates") {
  parser_options options = server_options();
  options.allow_compression = true;
  const stream s = make_stream(9, role::client, 50, 2000);
  bytes wire = s.wire;
  frame_parser parser{options};
  std::span<std::byte> input{wire};
  long events_seen = 0;
  frame_parser failing{options};
  bytes bad = server_frame(opcode::text, text("x"));
  allocations = 0;
  counting = true;
  // Whole, then piece by piece.
  for (;;) {
    const auto r = parser.parse(input.first(std::min<std::size_t>(input.size(), 37)));
    input = input.subspan(r.consumed);
    if (std::holds_alternative<parse::failure>(r.event)) break;
    if (std::holds_alternative<parse::need_more>(r.event) && input.empty()) break;
    ++events_seen;
  }
  const auto f = failing.parse(bad);
  counting = false;
#ifndef WEBSOCKETS_TEST_NO_COUNTING
  CHECK(allocations == 0);
#endif
  CHECK(events_seen > 100);
  CHECK(std::holds_alternative<parse::failure>(f.event));
}
