// The frame parser: an incremental, sans-I/O reader of WebSocket frames that enforces
// every framing rule of RFC 6455 and hands data on without copying it.
#pragma once

#include <websockets/error.hpp>
#include <websockets/frame.hpp>
#include <websockets/utf8.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <variant>

namespace websockets {

/// Size limits a parser enforces; past any of them it fails with 1009.
struct parser_limits {
  /// Largest payload of one data frame, checked when its head arrives. Control frames
  /// are bounded by the protocol instead (125 bytes).
  std::uint64_t max_frame_size = 16 * 1024 * 1024;
  /// Largest message (all its frames' payloads), checked when each head arrives, so an
  /// oversized message fails before its payload is read.
  std::uint64_t max_message_size = 16 * 1024 * 1024;
  /// Most frames in one message; bounds the work a flood of tiny fragments causes.
  /// The default lets 4 MiB through in 64-byte fragments (Autobahn case 9.3.1).
  std::uint32_t max_fragments = 1 << 17;
};

/// How a parser is set up for one connection.
struct parser_options {
  /// Servers require masked frames, clients require unmasked ones.
  websockets::role role = role::server;
  /// The limits.
  parser_limits limits{};
  /// Set when permessage-deflate was negotiated: RSV1 is then allowed on the first
  /// frame of a data message, and such a message is reported as `compressed`.
  bool allow_compression = false;
};

/// What one step of the parser produced. Exactly one of the alternatives below.
namespace parse {

/// The input is used up without completing anything; feed more bytes.
struct need_more {};

/// The first frame of a text or binary message has begun.
struct message_begin {
  websockets::opcode opcode; ///< `opcode::text` or `opcode::binary`.
  bool compressed;           ///< RSV1 was set: the payload is deflated (RFC 7692).
  bool fragmented;           ///< The first frame lacks FIN: more frames follow.
  std::uint64_t frame_size;  ///< The payload length of the first frame, from its head.
};

/// A piece of a data message's payload, already unmasked. It points into the buffer
/// given to `frame_parser::parse`, and is valid as long as that buffer is. Text that
/// is not compressed has been validated up to its last byte.
struct data {
  std::span<std::byte> bytes; ///< Never empty.
};

/// A frame of a fragmented message has ended and the message goes on; a relay may end
/// the fragment it forwards here.
struct frame_end {};

/// The message is complete (the final frame's payload has been delivered).
struct message_end {};

/// A whole ping or pong. The payload lives in the parser and is valid until the next
/// call to `parse`.
struct control {
  websockets::opcode opcode;             ///< `opcode::ping` or `opcode::pong`.
  std::span<const std::byte> payload;    ///< 0 to 125 bytes.
};

/// A whole, valid close frame.
struct close {
  std::uint16_t code;      ///< The peer's code; 1005 (`close_code::no_status`) when it sent none.
  std::string_view reason; ///< UTF-8, possibly empty; valid until the next call to `parse`.
};

/// The input broke a rule. The connection must be failed with `close_code_for(code)`;
/// every later call returns the same failure.
struct failure {
  websockets::error code; ///< Which rule.
};

} // namespace parse

/// One parser event.
using parse_event = std::variant<parse::need_more, parse::message_begin, parse::data,
                                 parse::frame_end, parse::message_end, parse::control,
                                 parse::close, parse::failure>;

/// The result of one `frame_parser::parse` call.
struct parse_result {
  parse_event event;     ///< What happened.
  std::size_t consumed;  ///< Input bytes used; pass the rest back in next time.
};

/// Reads frames from bytes as they arrive. Feed it the unread part of the input again
/// and again, until it says `need_more`; each call returns at most one event and the
/// number of bytes it used:
///
///     for (;;) {
///       auto [event, used] = parser.parse(input);
///       input = input.subspan(used);
///       if (std::holds_alternative<parse::need_more>(event)) break;
///       ... handle event ...
///     }
///
/// Keep calling even when the input is used up: the event after a frame's last payload
/// byte (`frame_end` or `message_end`) comes from the next call, which needs no input.
/// `need_more` means the input is used up; the next call may start with new bytes.
///
/// Any split of the same bytes gives the same events, except that payload may arrive in
/// more, smaller `data` pieces. Payload is unmasked in place in the caller's buffer, so
/// the buffer is a mutable span; the parser needs no padding around it. The parser
/// never allocates: control payloads (at most 125 bytes) are gathered in a fixed buffer
/// inside it.
class frame_parser {
public:
  /// A parser for one connection.
  explicit frame_parser(parser_options options = {}) noexcept;

  /// Advances over `input`; see the class comment.
  [[nodiscard]] parse_result parse(std::span<std::byte> input) noexcept;

  /// True between `message_begin` and `message_end`.
  [[nodiscard]] bool in_message() const noexcept { return message_opcode_ != opcode::continuation; }

  /// The options in force.
  [[nodiscard]] const parser_options& options() const noexcept { return options_; }

  /// Lets a connection tighten or relax its limits between messages.
  void set_limits(const parser_limits& limits) noexcept { options_.limits = limits; }

private:
  // head: reading a frame head; payload: handing on a data frame's payload, then its
  // frame_end or message_end; control_payload: gathering a control frame's payload.
  enum class state : std::uint8_t { head, payload, control_payload, failed };

  parse_result fail(websockets::error code, std::size_t consumed) noexcept;
  std::size_t gather_head(std::span<const std::byte> input, std::size_t want) noexcept;
  [[nodiscard]] websockets::error check_start() const noexcept;
  [[nodiscard]] websockets::error check_limits() const noexcept;
  parse_result read_head(std::span<std::byte> input, std::size_t used) noexcept;
  parse_result read_payload(std::span<std::byte> input, std::size_t used) noexcept;
  parse_result read_control(std::span<std::byte> input, std::size_t used) noexcept;
  parse_result finish_control(std::size_t consumed) noexcept;
  parse_result finish_data_frame(std::size_t consumed) noexcept;
  [[nodiscard]] bool validating_text() const noexcept {
    return message_opcode_ == opcode::text && !message_compressed_;
  }

  parser_options options_;
  state state_ = state::head;
  websockets::error failure_{};

  // The head being read, gathered here (at most 14 bytes) so it may arrive split.
  std::array<std::byte, max_head_size> head_bytes_{};
  std::uint8_t head_have_ = 0;
  frame_head head_{};
  std::uint64_t payload_left_ = 0;  // of the current frame
  std::uint64_t payload_done_ = 0;  // of the current frame, for the mask offset

  // The message in progress.
  websockets::opcode message_opcode_ = opcode::continuation; // continuation: none
  bool message_compressed_ = false;
  std::uint64_t message_size_ = 0;   // payload bytes of its frames so far, by their heads
  std::uint32_t message_frames_ = 0;
  utf8_validator text_;

  // The control frame being gathered.
  std::array<std::byte, max_control_payload> control_{};
  std::uint8_t control_have_ = 0;
};

} // namespace websockets
