// libFuzzer target: websockets::frame_parser, built twice: fuzz-frame_parser_server
// (the role that requires masked frames) and, with FUZZ_ROLE_CLIENT, fuzz-frame_parser_client.
//
// Input: 4 settings bytes, then the bytes off the wire.
//   [0] bit 0: allow_compression; bit 1: small limits, with max_fragments = 1 + bits 4-7
//   [1] small limits: max_frame_size = 8 * [1]
//   [2] small limits: max_message_size = 16 * [2]
//   [3] the seed of the random split
//
// The wire bytes go through the parser three times: whole, byte by byte, and in random
// pieces (each an exact heap copy, so ASan sees a read past a piece). Every run must
// produce the events of a reference model written here from RFC 6455 and the parser's
// documented rule order, with consecutive data pieces joined. That checks, beyond "no
// crash": data never exceeds a frame's declared size and is the unmasked payload,
// message_begin and message_end pair up, the limits hold, a failure is terminal and the
// same whatever the split, and uncompressed text is valid UTF-8 up to each piece's end.
// One exception, documented: on invalid UTF-8 the parser hands on no piece holding the
// bad byte, so how much of the valid prefix arrives depends on the split.
#include "fuzz.hpp"

#include <websockets/frame_parser.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace {

using namespace websockets;

#ifdef FUZZ_ROLE_CLIENT
constexpr role fuzz_role = role::client;
#else
constexpr role fuzz_role = role::server;
#endif

// One event, comparable: consecutive `data` events are joined into one record.
struct record {
  enum kind_t : std::uint8_t { begin, data, frame_end, message_end, control, close, failure } kind;
  unsigned value = 0;        // begin/control: the opcode; close: the code; failure: the error
  bool compressed = false;   // begin
  bool fragmented = false;   // begin
  std::uint64_t size = 0;    // begin: the first frame's size
  std::string bytes;         // data, control payload, close reason
  bool operator==(const record&) const = default;
};

std::string describe(const record& r) {
  static constexpr const char* names[] = {"begin", "data", "frame_end", "message_end", "control", "close", "failure"};
  std::string s = names[r.kind];
  switch (r.kind) {
  case record::begin:
    s += " op=" + std::to_string(r.value) + (r.compressed ? " compressed" : "") +
         (r.fragmented ? " fragmented" : "") + " size=" + std::to_string(r.size);
    break;
  case record::control: s += " op=" + std::to_string(r.value) + " " + fuzz::show(r.bytes); break;
  case record::close: s += " code=" + std::to_string(r.value) + " " + fuzz::show(r.bytes); break;
  case record::data: s += " " + fuzz::show(r.bytes); break;
  case record::failure: s += " error=" + std::to_string(r.value); break;
  default: break;
  }
  return s;
}

// What a run ends with.
struct outcome {
  std::vector<record> events;
  // Only meaningful without a failure: a message is open at the end of the input.
  bool in_message = false;
  // Reference only: the last data record before an invalid_utf8 failure holds the
  // valid part of the frame; a run may deliver any prefix of it.
  bool utf8_prefix = false;
};

std::string describe(const outcome& o) {
  std::string s;
  for (std::size_t i = 0; i < o.events.size() && i < 40; ++i) s += "  " + describe(o.events[i]) + "\n";
  if (o.events.size() > 40) s += "  ... " + std::to_string(o.events.size()) + " events\n";
  s += o.in_message ? "  (in a message)\n" : "";
  return s;
}

void add_data(std::vector<record>& events, std::string_view piece) {
  if (!events.empty() && events.back().kind == record::data)
    events.back().bytes += piece;
  else
    events.push_back({.kind = record::data, .bytes = std::string(piece)});
}

// ---- The reference model ----

// UTF-8 by Unicode's table of well-formed byte sequences (Table 3-7), independent of
// lib/utf8.cpp: each lead byte fixes the range of the byte after it, so a byte fails
// exactly when no valid text can have it there.
class reference_utf8 {
public:
  bool feed(std::uint8_t c) noexcept {
    if (need_ == 0) {
      lo_ = 0x80, hi_ = 0xBF;
      if (c < 0x80) return true;
      if (c >= 0xC2 && c <= 0xDF) need_ = 1;
      else if (c == 0xE0) need_ = 2, lo_ = 0xA0;
      else if (c == 0xED) need_ = 2, hi_ = 0x9F;
      else if (c >= 0xE1 && c <= 0xEF) need_ = 2;
      else if (c == 0xF0) need_ = 3, lo_ = 0x90;
      else if (c == 0xF4) need_ = 3, hi_ = 0x8F;
      else if (c >= 0xF1 && c <= 0xF3) need_ = 3;
      else return false;
      return true;
    }
    if (c < lo_ || c > hi_) return false;
    --need_;
    lo_ = 0x80, hi_ = 0xBF;
    return true;
  }
  [[nodiscard]] bool complete() const noexcept { return need_ == 0; }

private:
  int need_ = 0;
  std::uint8_t lo_ = 0x80, hi_ = 0xBF;
};

// The close codes an endpoint may receive: RFC 6455 section 7.4 plus the IANA registry's
// 1012-1014, and the ranges for libraries and applications.
bool receivable_close_code(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// The events the whole input must give, computed in one pass over all of it. Follows
// RFC 6455 section 5 and the rule order lib/frame_parser.cpp documents: the first two
// head bytes are judged at once, the length encoding and the limits once the whole head
// (mask key included) is here.
outcome reference(std::span<const std::uint8_t> in, const parser_options& options) {
  outcome out;
  auto& ev = out.events;
  const parser_limits& limits = options.limits;
  const auto failed = [&](error e) {
    ev.push_back({.kind = record::failure, .value = static_cast<unsigned>(e)});
    return out;
  };
  bool in_message = false;
  bool validating = false; // text, not compressed
  std::uint64_t message_size = 0;
  std::uint32_t message_frames = 0;
  reference_utf8 text;

  std::size_t pos = 0;
  while (in.size() - pos >= 2) {
    const unsigned b0 = in[pos], b1 = in[pos + 1];
    const bool fin = (b0 & 0x80) != 0, rsv1 = (b0 & 0x40) != 0, masked = (b1 & 0x80) != 0;
    const unsigned op = b0 & 0x0F;
    const bool control = (op & 0x8) != 0;
    const unsigned length7 = b1 & 0x7F;

    if ((b0 & 0x30) != 0) return failed(error::reserved_bits);
    if (!(op <= 2 || (op >= 8 && op <= 10))) return failed(error::unknown_opcode);
    if (rsv1 && (!options.allow_compression || op == 0 || control)) return failed(error::reserved_bits);
    if (control) {
      if (!fin) return failed(error::fragmented_control_frame);
      if (length7 > 125) return failed(error::control_frame_too_big);
    } else if (op == 0) {
      if (!in_message) return failed(error::unexpected_continuation);
    } else if (in_message) {
      return failed(error::expected_continuation);
    }
    if (options.role == role::server && !masked) return failed(error::unmasked_frame);
    if (options.role == role::client && masked) return failed(error::masked_frame);

    const std::size_t length_bytes = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
    const std::size_t head = 2 + length_bytes + (masked ? 4 : 0);
    if (in.size() - pos < head) break;
    std::uint64_t size = length7;
    if (length_bytes != 0) {
      size = 0;
      for (std::size_t i = 0; i < length_bytes; ++i) size = size << 8 | in[pos + 2 + i];
      if (size >> 63 != 0) return failed(error::length_out_of_range);
      if (size < (length_bytes == 2 ? 126U : 0x10000U)) return failed(error::non_minimal_length);
    }
    std::uint8_t key[4] = {0, 0, 0, 0};
    if (masked) std::memcpy(key, &in[pos + 2 + length_bytes], 4);
    pos += head;
    const std::size_t available = static_cast<std::size_t>(std::min<std::uint64_t>(size, in.size() - pos));
    std::string payload(available, '\0');
    for (std::size_t i = 0; i < available; ++i) payload[i] = static_cast<char>(in[pos + i] ^ key[i % 4]);

    if (control) {
      if (available < size) break; // a control frame is handed on whole
      pos += available;
      if (op != 8) {
        ev.push_back({.kind = record::control, .value = op, .bytes = payload});
        continue;
      }
      if (payload.empty()) {
        ev.push_back({.kind = record::close, .value = 1005});
        continue;
      }
      if (payload.size() == 1) return failed(error::bad_close_size);
      const unsigned code = static_cast<unsigned>(static_cast<std::uint8_t>(payload[0])) << 8 |
                            static_cast<std::uint8_t>(payload[1]);
      if (!receivable_close_code(code)) return failed(error::bad_close_code);
      reference_utf8 reason;
      for (std::size_t i = 2; i < payload.size(); ++i)
        if (!reason.feed(static_cast<std::uint8_t>(payload[i]))) return failed(error::bad_close_reason);
      if (!reason.complete()) return failed(error::bad_close_reason);
      ev.push_back({.kind = record::close, .value = code, .bytes = payload.substr(2)});
      continue;
    }

    // A data frame: the limits first, judged from its head alone.
    if (size > limits.max_frame_size) return failed(error::frame_too_big);
    const std::uint64_t before = op == 0 ? message_size : 0;
    if (before > limits.max_message_size || size > limits.max_message_size - before)
      return failed(error::message_too_big);
    if ((op == 0 ? message_frames : 0) >= limits.max_fragments) return failed(error::too_many_fragments);
    if (op != 0) {
      ev.push_back({.kind = record::begin, .value = op, .compressed = rsv1, .fragmented = !fin, .size = size});
      in_message = true;
      validating = op == 1 && !rsv1;
      message_size = size;
      message_frames = 1;
      text = {};
    } else {
      message_size += size;
      ++message_frames;
    }
    if (validating) {
      for (std::size_t i = 0; i < payload.size(); ++i) {
        if (!text.feed(static_cast<std::uint8_t>(payload[i]))) {
          ev.push_back({.kind = record::data, .bytes = payload.substr(0, i)});
          out.utf8_prefix = true;
          return failed(error::invalid_utf8);
        }
      }
    }
    if (!payload.empty()) ev.push_back({.kind = record::data, .bytes = payload});
    pos += available;
    if (available < size) break;
    if (!fin) {
      ev.push_back({.kind = record::frame_end});
      continue;
    }
    if (validating && !text.complete()) return failed(error::invalid_utf8);
    ev.push_back({.kind = record::message_end});
    in_message = false;
  }
  out.in_message = in_message;
  return out;
}

// ---- Running the parser ----

// Feeds `wire` to a fresh parser in pieces of `kind`, checking each event as it comes.
outcome run(std::span<const std::uint8_t> wire, const parser_options& options, fuzz::split_kind kind,
            std::uint8_t seed) {
  frame_parser parser(options);
  fuzz::splitter split(seed);
  outcome out;
  auto& ev = out.events;
  const auto as_bytes = std::as_bytes(wire);

  // Whole and byte by byte run over one buffer that the parser unmasks in place (so a
  // byte unmasked twice would show); random splits get an exact copy of each piece.
  std::vector<std::byte> buffer(as_bytes.begin(), as_bytes.end());
  std::vector<std::byte> copy;
  std::size_t pos = 0;       // bytes the parser has consumed
  std::size_t available = 0; // bytes given to it so far
  bool in_message = false;
  bool validating = false;
  std::uint64_t frame_left = 0;   // payload still due in the current data frame, when known
  bool frame_size_known = false;  // false for continuation frames, whose size is not reported
  websockets::utf8_validator text;
  // A bound on the number of calls: each event consumes a byte or follows one that did.
  const std::size_t max_calls = 8 * wire.size() + 64;

  for (std::size_t calls = 0;; ++calls) {
    FUZZ_CHECK(calls < max_calls, "the parser makes no progress");
    std::span<std::byte> input{buffer.data() + pos, available - pos};
    if (kind == fuzz::split_kind::random) {
      copy = fuzz::exact_copy(input);
      input = copy;
    }
    const auto [event, used] = parser.parse(input);
    FUZZ_CHECK(used <= input.size());
    if (kind == fuzz::split_kind::random) // what the parser unmasked goes back in place
      std::copy_n(copy.begin(), used, buffer.begin() + static_cast<std::ptrdiff_t>(pos));
    pos += used;

    if (std::holds_alternative<parse::need_more>(event)) {
      FUZZ_CHECK(used == input.size(), "need_more before the input is used up");
      if (available == wire.size()) break;
      available += fuzz::next_piece(kind, split, wire.size() - available);
      continue;
    }
    if (const auto* f = std::get_if<parse::failure>(&event)) {
      ev.push_back({.kind = record::failure, .value = static_cast<unsigned>(f->code)});
      // Terminal: every later call, with or without more input, fails the same way
      // and takes nothing.
      std::vector<std::byte> more = fuzz::exact_copy(std::span(buffer).subspan(pos));
      for (const std::span<std::byte> again : {std::span<std::byte>(more), std::span<std::byte>()}) {
        const auto [later, later_used] = parser.parse(again);
        const auto* lf = std::get_if<parse::failure>(&later);
        FUZZ_CHECK(lf != nullptr && lf->code == f->code && later_used == 0, "a failure is not terminal");
      }
      return out;
    }
    if (const auto* b = std::get_if<parse::message_begin>(&event)) {
      FUZZ_CHECK(!in_message, "message_begin inside a message");
      FUZZ_CHECK(b->opcode == opcode::text || b->opcode == opcode::binary);
      FUZZ_CHECK(options.allow_compression || !b->compressed);
      FUZZ_CHECK(b->frame_size <= options.limits.max_frame_size && b->frame_size <= options.limits.max_message_size);
      in_message = true;
      validating = b->opcode == opcode::text && !b->compressed;
      text.reset();
      frame_left = b->frame_size;
      frame_size_known = true;
      ev.push_back({.kind = record::begin, .value = static_cast<unsigned>(b->opcode),
                    .compressed = b->compressed, .fragmented = b->fragmented, .size = b->frame_size});
    } else if (const auto* d = std::get_if<parse::data>(&event)) {
      FUZZ_CHECK(in_message, "data outside a message");
      FUZZ_CHECK(!d->bytes.empty(), "an empty data piece");
      // The piece is the tail of what this call consumed, in the caller's buffer.
      FUZZ_CHECK(d->bytes.data() + d->bytes.size() == input.data() + used && d->bytes.data() >= input.data(),
                 "a data piece outside the input");
      if (frame_size_known) {
        FUZZ_CHECK(d->bytes.size() <= frame_left, "more data than the frame's declared size");
        frame_left -= d->bytes.size();
      }
      // Text is validated up to the end of every piece handed on.
      if (validating) FUZZ_CHECK(text.feed(d->bytes), "invalid UTF-8 handed on as text");
      add_data(ev, fuzz::chars(d->bytes));
    } else if (std::holds_alternative<parse::frame_end>(event) || std::holds_alternative<parse::message_end>(event)) {
      const bool end = std::holds_alternative<parse::message_end>(event);
      FUZZ_CHECK(in_message, "a frame end outside a message");
      FUZZ_CHECK(!frame_size_known || frame_left == 0, "a frame ended before its declared size");
      if (end && validating) FUZZ_CHECK(text.complete(), "text ended inside a code point");
      ev.push_back({.kind = end ? record::message_end : record::frame_end});
      frame_size_known = false; // the next frame is a continuation, whose size is not told
      if (end) in_message = false;
    } else if (const auto* c = std::get_if<parse::control>(&event)) {
      FUZZ_CHECK(c->opcode == opcode::ping || c->opcode == opcode::pong);
      FUZZ_CHECK(c->payload.size() <= max_control_payload);
      ev.push_back({.kind = record::control, .value = static_cast<unsigned>(c->opcode),
                    .bytes = std::string(fuzz::chars(c->payload))});
    } else if (const auto* cl = std::get_if<parse::close>(&event)) {
      FUZZ_CHECK(cl->reason.size() <= max_control_payload - 2);
      FUZZ_CHECK(websockets::is_valid_utf8(cl->reason));
      ev.push_back({.kind = record::close, .value = cl->code, .bytes = std::string(cl->reason)});
    }
    FUZZ_CHECK(parser.in_message() == in_message, "in_message() disagrees with the events");
  }
  out.in_message = in_message;
  return out;
}

// `actual` must equal `expected`, except where the reference allows a prefix of the
// valid text before an invalid_utf8 failure.
void compare(outcome expected, outcome actual, const char* how) {
  if (expected.utf8_prefix) {
    // expected ends with [data (the valid part), failure]: any prefix of that data may
    // arrive, or none when the frame's first piece already holds the bad byte.
    auto& e = expected.events;
    auto& a = actual.events;
    const std::string valid = e[e.size() - 2].bytes;
    e.erase(e.end() - 2);
    if (a.size() >= 2 && a[a.size() - 2].kind == record::data) {
      const std::string& got = a[a.size() - 2].bytes;
      // Joined data runs across frames only when a frame_end separates them, so the
      // record before the failure is this frame's alone.
      FUZZ_CHECK(got.size() <= valid.size() && valid.compare(0, got.size(), got) == 0,
                 std::string(how) + ": text before the bad byte is not a prefix of the payload");
      a.erase(a.end() - 2);
    }
  }
  const bool failed = !expected.events.empty() && expected.events.back().kind == record::failure;
  if (failed) expected.in_message = actual.in_message = false;
  FUZZ_CHECK(expected.events == actual.events && expected.in_message == actual.in_message,
             std::string(how) + " differs from the reference\nexpected:\n" + describe(expected) +
                 "actual:\n" + describe(actual));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t settings_size = 4;
  const fuzz::settings s(data, size, settings_size);
  const auto wire = fuzz::rest(data, size, settings_size);

  parser_options options{.role = fuzz_role, .limits = {}, .allow_compression = s.bit(0, 0)};
  if (s.bit(0, 1)) {
    options.limits.max_fragments = 1 + (s.byte(0) >> 4);
    options.limits.max_frame_size = 8U * s.byte(1);
    options.limits.max_message_size = 16U * s.byte(2);
  }
  const outcome expected = reference(wire, options);
  for (const auto kind : fuzz::split_kinds) compare(expected, run(wire, options, kind, s.byte(3)), fuzz::name(kind));
  return 0;
}
