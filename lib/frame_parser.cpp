#include <websockets/frame_parser.hpp>

#include <websockets/close_code.hpp>

#include <algorithm>
#include <cstring>

namespace websockets {
namespace {

constexpr unsigned u8(std::byte b) noexcept { return std::to_integer<unsigned>(b); }

constexpr error no_error{};

// The head's size, known from its first two bytes.
constexpr std::size_t full_head_size(unsigned b1) noexcept {
  const unsigned length7 = b1 & 0x7F;
  return 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + ((b1 & 0x80) != 0 ? 4 : 0);
}

} // namespace

frame_parser::frame_parser(parser_options options) noexcept : options_(options) {}

parse_result frame_parser::fail(error code, std::size_t consumed) noexcept {
  state_ = state::failed;
  failure_ = code;
  return {parse::failure{code}, consumed};
}

std::size_t frame_parser::gather_head(std::span<const std::byte> input, std::size_t want) noexcept {
  const std::size_t take = std::min(want - head_have_, input.size());
  if (take == 0) return 0; // input.data() may be null
  std::memcpy(head_bytes_.data() + head_have_, input.data(), take);
  head_have_ = static_cast<std::uint8_t>(head_have_ + take);
  return take;
}

// Everything the first two bytes decide, in this order (the first broken rule is the
// one reported, whatever the split of the input):
//   1. RSV2 or RSV3 set                                  reserved_bits
//   2. a reserved opcode                                 unknown_opcode
//   3. RSV1 where no negotiated extension allows it      reserved_bits
//   4. a control frame without FIN                       fragmented_control_frame
//   5. a control frame longer than 125                   control_frame_too_big
//   6. a continuation with no message open               unexpected_continuation
//   7. a text or binary frame inside an open message     expected_continuation
//   8. the mask bit wrong for the role                   unmasked_frame / masked_frame
// The length's encoding (decode_head) and the size limits (check_limits) follow once
// the whole head is here.
error frame_parser::check_start() const noexcept {
  const unsigned b0 = u8(head_bytes_[0]);
  const unsigned b1 = u8(head_bytes_[1]);
  const bool fin = (b0 & 0x80) != 0;
  const bool rsv1 = (b0 & 0x40) != 0;
  const auto op = static_cast<opcode>(b0 & 0x0F);
  const bool masked = (b1 & 0x80) != 0;

  if ((b0 & 0x30) != 0) return error::reserved_bits;
  if (!is_defined(op)) return error::unknown_opcode;
  // RSV1 marks a compressed message (RFC 7692 section 6): only on its first frame.
  if (rsv1 && (!options_.allow_compression || op == opcode::continuation || is_control(op)))
    return error::reserved_bits;
  if (is_control(op)) {
    if (!fin) return error::fragmented_control_frame;
    if ((b1 & 0x7F) > max_control_payload) return error::control_frame_too_big;
  } else if (op == opcode::continuation) {
    if (!in_message()) return error::unexpected_continuation;
  } else if (in_message()) {
    return error::expected_continuation;
  }
  if (options_.role == role::server && !masked) return error::unmasked_frame;
  if (options_.role == role::client && masked) return error::masked_frame;
  return no_error;
}

// The limits, for data frames, in this order: the frame's size, the message's size
// with this frame, the message's frame count with this frame.
error frame_parser::check_limits() const noexcept {
  const parser_limits& limits = options_.limits;
  const bool continues = head_.opcode == opcode::continuation;
  const std::uint64_t size = head_.payload_size;
  if (size > limits.max_frame_size) return error::frame_too_big;
  const std::uint64_t before = continues ? message_size_ : 0;
  if (before > limits.max_message_size || size > limits.max_message_size - before)
    return error::message_too_big;
  const std::uint32_t frames = continues ? message_frames_ : 0;
  if (frames >= limits.max_fragments) return error::too_many_fragments;
  return no_error;
}

parse_result frame_parser::parse(std::span<std::byte> input) noexcept {
  switch (state_) {
  case state::head: return read_head(input, 0);
  case state::payload: return read_payload(input, 0);
  case state::control_payload: return read_control(input, 0);
  case state::failed: break;
  }
  return {parse::failure{failure_}, 0};
}

parse_result frame_parser::read_head(std::span<std::byte> input, std::size_t used) noexcept {
  if (head_have_ < 2) {
    used += gather_head(input.subspan(used), 2);
    if (head_have_ < 2) return {parse::need_more{}, used};
    if (const error e = check_start(); e != no_error) return fail(e, used);
  }
  const std::size_t want = full_head_size(u8(head_bytes_[1]));
  used += gather_head(input.subspan(used), want);
  if (head_have_ < want) return {parse::need_more{}, used};

  const head_decode_result decoded = decode_head(std::span{head_bytes_.data(), head_have_});
  head_have_ = 0;
  if (decoded.state != head_decode_result::status::complete) return fail(decoded.failure, used);
  head_ = decoded.head;
  payload_left_ = head_.payload_size;
  payload_done_ = 0;

  if (is_control(head_.opcode)) {
    control_have_ = 0;
    state_ = state::control_payload;
    return read_control(input, used);
  }

  if (const error e = check_limits(); e != no_error) return fail(e, used);
  state_ = state::payload;
  if (head_.opcode == opcode::continuation) {
    message_size_ += head_.payload_size;
    ++message_frames_;
    return read_payload(input, used);
  }
  message_opcode_ = head_.opcode;
  message_compressed_ = head_.rsv1;
  message_size_ = head_.payload_size;
  message_frames_ = 1;
  text_.reset();
  return {parse::message_begin{head_.opcode, head_.rsv1, !head_.fin, head_.payload_size}, used};
}

parse_result frame_parser::read_payload(std::span<std::byte> input, std::size_t used) noexcept {
  if (payload_left_ == 0) return finish_data_frame(used);
  const std::size_t available = input.size() - used;
  if (available == 0) return {parse::need_more{}, used};
  const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, available));
  const std::span<std::byte> piece = input.subspan(used, n);
  if (head_.masked) apply_mask(piece, head_.key, payload_done_);
  payload_done_ += n;
  payload_left_ -= n;
  used += n;
  // Fail-fast: a piece with a bad byte is not handed on.
  if (validating_text() && !text_.feed(piece)) return fail(error::invalid_utf8, used);
  return {parse::data{piece}, used};
}

parse_result frame_parser::finish_data_frame(std::size_t consumed) noexcept {
  state_ = state::head;
  if (!head_.fin) return {parse::frame_end{}, consumed};
  // A message may not end inside a code point.
  if (validating_text() && !text_.complete()) return fail(error::invalid_utf8, consumed);
  message_opcode_ = opcode::continuation;
  message_compressed_ = false;
  message_size_ = 0;
  message_frames_ = 0;
  return {parse::message_end{}, consumed};
}

parse_result frame_parser::read_control(std::span<std::byte> input, std::size_t used) noexcept {
  // payload_left_ <= 125 here: check_start rejected longer control frames.
  const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, input.size() - used));
  const std::span<std::byte> piece{control_.data() + control_have_, n};
  if (n != 0) std::memcpy(piece.data(), input.data() + used, n); // input.data() may be null
  if (head_.masked) apply_mask(piece, head_.key, control_have_);
  control_have_ = static_cast<std::uint8_t>(control_have_ + n);
  payload_left_ -= n;
  used += n;
  if (payload_left_ != 0) return {parse::need_more{}, used};
  return finish_control(used);
}

parse_result frame_parser::finish_control(std::size_t consumed) noexcept {
  state_ = state::head;
  const std::span<const std::byte> payload{control_.data(), control_have_};
  if (head_.opcode != opcode::close) return {parse::control{head_.opcode, payload}, consumed};

  // Close (RFC 6455 section 5.5.1): nothing, or a 2-byte code and a UTF-8 reason.
  if (payload.empty())
    return {parse::close{static_cast<std::uint16_t>(close_code::no_status), {}}, consumed};
  if (payload.size() == 1) return fail(error::bad_close_size, consumed);
  const auto code = static_cast<std::uint16_t>(u8(payload[0]) << 8 | u8(payload[1]));
  if (!is_sendable(code)) return fail(error::bad_close_code, consumed);
  const std::span<const std::byte> reason = payload.subspan(2);
  if (!is_valid_utf8(reason)) return fail(error::bad_close_reason, consumed);
  return {parse::close{code, {reinterpret_cast<const char*>(reason.data()), reason.size()}},
          consumed};
}

} // namespace websockets
