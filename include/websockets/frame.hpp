// Frames: the opcode, the frame head (RFC 6455 section 5.2) and masking.
// Pure functions over bytes; no I/O, no allocation.
#pragma once

#include <websockets/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace websockets {

/// Which end of a connection this code speaks for. Clients mask what they send and
/// servers must not; each side rejects frames masked the wrong way.
enum class role : std::uint8_t { server, client };

/// The four-bit frame opcode.
enum class opcode : std::uint8_t {
  continuation = 0x0, ///< The next fragment of a text or binary message.
  text = 0x1,         ///< A message of UTF-8 text.
  binary = 0x2,       ///< A message of bytes.
  close = 0x8,        ///< Starts or answers the closing handshake.
  ping = 0x9,         ///< Asks for a pong with the same payload.
  pong = 0xA,         ///< Answers a ping, or a unidirectional heartbeat.
};

/// True for close, ping and pong (and for the reserved opcodes 0xB-0xF).
[[nodiscard]] constexpr bool is_control(opcode op) noexcept {
  return (static_cast<std::uint8_t>(op) & 0x8) != 0;
}

/// True for the six opcodes RFC 6455 defines; the others are reserved.
[[nodiscard]] constexpr bool is_defined(opcode op) noexcept {
  const auto v = static_cast<std::uint8_t>(op);
  return v <= 0x2 || (v >= 0x8 && v <= 0xA);
}

/// The four bytes a client XORs over its payload.
using mask_key = std::array<std::byte, 4>;

/// The largest control frame payload (RFC 6455 section 5.5).
inline constexpr std::size_t max_control_payload = 125;

/// The longest frame head: 2 bytes, an 8-byte extended length and a 4-byte mask key.
inline constexpr std::size_t max_head_size = 14;

/// The fields of a frame head.
struct frame_head {
  bool fin = true;                 ///< Last frame of its message.
  bool rsv1 = false;               ///< Per-message compressed (RFC 7692), when negotiated.
  bool rsv2 = false;               ///< Reserved; always an error on receipt.
  bool rsv3 = false;               ///< Reserved; always an error on receipt.
  websockets::opcode opcode = opcode::text; ///< What the frame carries.
  bool masked = false;             ///< A mask key follows the length.
  mask_key key{};                  ///< The mask key, meaningful when `masked`.
  std::uint64_t payload_size = 0;  ///< Payload bytes that follow the head.
};

/// The number of bytes `encode_head` writes for `head`: 2 to 14.
[[nodiscard]] constexpr std::size_t head_size(const frame_head& head) noexcept {
  const std::size_t length_bytes =
      head.payload_size < 126 ? 0 : head.payload_size <= 0xFFFF ? 2 : 8;
  return 2 + length_bytes + (head.masked ? 4 : 0);
}

/// Writes `head` with the shortest length encoding; returns the bytes written
/// (`head_size(head)`).
std::size_t encode_head(const frame_head& head, std::span<std::byte, max_head_size> out) noexcept;

/// The outcome of `decode_head`.
struct head_decode_result {
  /// What happened: a head was read, more bytes are needed, or the head is invalid.
  enum class status : std::uint8_t { complete, need_more, invalid } state;
  frame_head head;          ///< The head, when `complete`.
  std::size_t size = 0;     ///< Bytes the head took, when `complete`.
  websockets::error failure{}; ///< Why, when `invalid`: only length encoding errors.
};

/// Reads a frame head from the start of `bytes`. Checks only what the head alone
/// decides about its encoding (minimal length, the 64-bit length's top bit);
/// opcodes, RSV bits and masking are judged by the `frame_parser`, which knows the
/// connection's role and extensions.
[[nodiscard]] head_decode_result decode_head(std::span<const std::byte> bytes) noexcept;

/// XORs `key` over `payload` in place, as if `payload` started `offset` bytes into
/// the frame's payload (so a payload may be masked in pieces). Works a machine word
/// at a time on any alignment; the same call masks and unmasks.
void apply_mask(std::span<std::byte> payload, mask_key key, std::uint64_t offset = 0) noexcept;

/// Like `apply_mask`, but reads `from` and writes the masked bytes to `to`, which must
/// be at least as long; for masking a caller's payload without changing it.
void copy_masked(std::span<const std::byte> from, std::span<std::byte> to, mask_key key,
                 std::uint64_t offset = 0) noexcept;

} // namespace websockets
