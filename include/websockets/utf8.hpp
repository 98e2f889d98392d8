// UTF-8 validation (RFC 3629), incremental and fail-fast: text arrives in pieces, and
// a bad byte is reported when it arrives, not when the message ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace websockets {

/// Validates a stream of bytes as UTF-8, piece by piece. A piece may end in the middle
/// of a code point; the validator carries the partial sequence to the next piece.
///
/// A byte is rejected as soon as no valid text can contain it at that position:
/// overlong forms (C0, C1, E0 80-9F, F0 80-8F), surrogates (ED A0-BF), code points
/// above U+10FFFF (F4 90-BF, F5-FF), stray continuation bytes and truncated
/// sequences followed by anything but a continuation byte.
class utf8_validator {
public:
  /// Validates the next piece. Returns false at the first byte that makes the text
  /// invalid; from then on the validator stays failed until `reset()`.
  bool feed(std::span<const std::byte> piece) noexcept;

  /// Same, for characters.
  bool feed(std::string_view piece) noexcept;

  /// True when the text so far is valid and does not end inside a code point: call it
  /// when the message ends.
  [[nodiscard]] bool complete() const noexcept { return state_ == accept; }

  /// True once a bad byte has been seen.
  [[nodiscard]] bool failed() const noexcept { return state_ == reject; }

  /// Starts over for a new message.
  void reset() noexcept { state_ = accept; }

private:
  static constexpr std::uint8_t accept = 0;
  static constexpr std::uint8_t reject = 1;
  std::uint8_t state_ = accept;
};

/// True when `text` is complete, valid UTF-8.
[[nodiscard]] bool is_valid_utf8(std::span<const std::byte> text) noexcept;

/// Same, for characters.
[[nodiscard]] bool is_valid_utf8(std::string_view text) noexcept;

} // namespace websockets
