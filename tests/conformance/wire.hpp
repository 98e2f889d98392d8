// The conformance client's own RFC 6455 pieces: frame encoding with masking, decoding of
// the server's frames, UTF-8 checking and the opening handshake's key arithmetic.
// Written from the RFC, sharing nothing with the library under test, so that a bug in the
// library's codec cannot hide itself by being on both ends of the wire.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace conformance {

/// Opcodes (RFC 6455 section 5.2). Plain numbers, since the cases also send reserved ones.
namespace op {
constexpr std::uint8_t continuation = 0x0;
constexpr std::uint8_t text = 0x1;
constexpr std::uint8_t binary = 0x2;
constexpr std::uint8_t close = 0x8;
constexpr std::uint8_t ping = 0x9;
constexpr std::uint8_t pong = 0xA;
} // namespace op

[[nodiscard]] constexpr bool is_control(std::uint8_t opcode) { return (opcode & 0x8) != 0; }

using mask_key = std::array<std::uint8_t, 4>;

/// How the payload length is written in a frame head.
enum class length_form {
  minimal, ///< the shortest form, as the RFC requires
  bits16,  ///< always the 16-bit form (126)
  bits64,  ///< always the 64-bit form (127)
};

/// A frame as the client sends it: by default a masked final text frame.
struct frame {
  std::uint8_t opcode = op::text;
  std::string payload{};
  bool fin = true;
  /// The three reserved bits as a number 0-7, RSV1 being 4 (Autobahn numbers them so).
  std::uint8_t rsv = 0;
  bool masked = true;
  length_form form = length_form::minimal;
  /// The length written in the head when it is not the payload's (a head sent alone).
  std::optional<std::uint64_t> declared_length{};
};

/// The frame's bytes on the wire, its payload masked with `key` when `masked`.
[[nodiscard]] std::string encode(const frame& f, const mask_key& key);

/// The payload of a close frame: the code in network order, then the reason.
[[nodiscard]] std::string close_payload(std::uint16_t code, std::string_view reason = {});

/// A frame as the server sent it, its payload unmasked if it was masked.
struct wire_frame {
  bool fin = false;
  std::uint8_t rsv = 0;
  std::uint8_t opcode = 0;
  bool masked = false;
  bool minimal_length = true; ///< the length used its shortest form
  bool length_top_bit = false; ///< a 64-bit length with its most significant bit set
  std::string payload{};
};

/// Bytes read from the server, consumed frame by frame from the front.
class inbound_bytes {
public:
  void append(const char* data, std::size_t size) { bytes_.append(data, size); }
  [[nodiscard]] bool empty() const { return start_ == bytes_.size(); }
  [[nodiscard]] std::size_t size() const { return bytes_.size() - start_; }
  /// Removes and returns the first whole frame; nothing while the frame is incomplete.
  [[nodiscard]] std::optional<wire_frame> take_frame();

private:
  std::string bytes_;
  std::size_t start_ = 0; // bytes before it are consumed
};

/// Where a byte string stops being valid UTF-8 (RFC 3629, Unicode table 3-7).
struct utf8_check {
  /// Index of the first byte that no continuation can make valid, or npos.
  std::size_t error_at = std::string_view::npos;
  /// Without an error, the text ends inside a code point.
  bool truncated = false;
  [[nodiscard]] bool valid() const { return error_at == std::string_view::npos && !truncated; }
};

[[nodiscard]] utf8_check check_utf8(std::string_view text);

/// True for a close code an endpoint may send (RFC 6455 section 7.4 and the IANA
/// registry): 1000-1003, 1007-1014 and 3000-4999.
[[nodiscard]] bool is_valid_close_code(std::uint16_t code);

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
[[nodiscard]] std::string accept_for(std::string_view key);

/// Standard base64 with padding.
[[nodiscard]] std::string base64(std::string_view bytes);

/// Printable form of bytes for failure reports: hex, cut short when long.
[[nodiscard]] std::string hex(std::string_view bytes, std::size_t at_most = 32);

} // namespace conformance
