// Frame writing (RFC 6455 section 5.2): frame heads are built in small fixed buffers and
// payloads stay where the caller keeps them, so a frame goes out as one gather write
// (head, payload) without copying the payload. Control frames, which are small, are
// built whole. Nothing here allocates.
//
//     frame_writer writer{role::client};
//     encoded_head head = writer.head(opcode::binary, payload.size());
//     head.mask(payload);                       // clients only; a no-op for servers
//     write_all(socket, {head.bytes(), payload});
#pragma once

#include <websockets/close_code.hpp>
#include <websockets/frame.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace websockets {

/// An encoded frame head, held by value: the 2 to 14 bytes sent before the payload,
/// and the key the payload must be masked with when the head says it is masked.
class encoded_head {
public:
  /// An empty head, with no bytes.
  encoded_head() noexcept = default;

  /// Encodes `head` with the shortest length encoding (see `encode_head`).
  explicit encoded_head(const frame_head& head) noexcept;

  /// The bytes to send before the payload.
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {bytes_.data(), size_}; }

  /// The number of bytes: 2 to 14 (0 for an empty head).
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// True when the payload must be masked with `key()`: a client's frame.
  [[nodiscard]] bool masked() const noexcept { return masked_; }

  /// The mask key written in the head; meaningful when `masked()`.
  [[nodiscard]] const mask_key& key() const noexcept { return key_; }

  /// Masks `payload` in place for this frame, as the piece starting `offset` bytes into
  /// the frame's payload (so a payload may be masked in pieces). Does nothing when the
  /// head is not masked.
  void mask(std::span<std::byte> payload, std::uint64_t offset = 0) const noexcept;

  /// Copies `from` to `to` (at least as long), masked for this frame as the piece
  /// starting `offset` bytes into its payload: for payload the caller must not change.
  /// A plain copy when the head is not masked.
  void mask_copy(std::span<const std::byte> from, std::span<std::byte> to,
                 std::uint64_t offset = 0) const noexcept;

private:
  std::array<std::byte, max_head_size> bytes_{};
  std::uint8_t size_ = 0;
  bool masked_ = false;
  mask_key key_{};
};

/// The largest control frame: a 2-byte head, a 4-byte mask key and 125 payload bytes.
inline constexpr std::size_t max_control_frame_size = 2 + 4 + max_control_payload;

/// A whole control frame (ping, pong or close): head and payload, masked when built
/// with a key, in a fixed buffer ready to send as is.
class control_frame {
public:
  /// An empty frame, with no bytes.
  control_frame() noexcept = default;

  /// Builds a frame of opcode `op` carrying `payload`, masked with `key` when one is
  /// given (a client's frame). Preconditions, asserted in debug builds: `op` is ping,
  /// pong or close, and `payload` has at most 125 bytes (past that it is cut to 125).
  control_frame(opcode op, std::span<const std::byte> payload,
                std::optional<mask_key> key = std::nullopt) noexcept;

  /// The frame's bytes: 2 to 131.
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {bytes_.data(), size_}; }

  /// The number of bytes.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

private:
  std::array<std::byte, max_control_frame_size> bytes_{};
  std::uint8_t size_ = 0;
};

/// The longest close reason: a close payload has 125 bytes, 2 of them the code.
inline constexpr std::size_t max_close_reason = max_control_payload - 2;

/// Writes a close frame's payload to `out`: `code` in network byte order, then
/// `reason` cut to at most 123 bytes at a code point boundary, so that valid UTF-8
/// stays valid. `close_code::no_status` (1005) writes nothing at all, the way to close
/// without a code; the reason is then dropped. Returns the bytes written.
/// Preconditions: `code` is `no_status` or `is_sendable` (asserted in debug builds),
/// and `reason` is UTF-8.
std::size_t encode_close_payload(close_code code, std::string_view reason,
                                 std::span<std::byte, max_control_payload> out) noexcept;

/// Makes frames for one end of a connection: unmasked for a server; for a client,
/// masked with a fresh key from `random_mask_key()` for every frame.
class frame_writer {
public:
  /// A writer for the given end.
  explicit frame_writer(websockets::role role) noexcept : role_(role) {}

  /// The end it writes for.
  [[nodiscard]] websockets::role role() const noexcept { return role_; }

  /// The head of a frame carrying `payload_size` bytes. `fin` is false for every frame
  /// of a fragmented message but the last; later frames use `opcode::continuation`.
  /// `compressed` sets RSV1, only on a message's first frame and only with
  /// permessage-deflate negotiated. A client must then mask the payload with the
  /// returned head's `mask` or `mask_copy`. Control frames (prefer `control`) must
  /// have `fin`, no `compressed`, and at most 125 bytes (asserted in debug builds).
  /// Throws only if the system's random generator fails (client role).
  [[nodiscard]] encoded_head head(opcode op, std::uint64_t payload_size, bool fin = true,
                                  bool compressed = false) const;

  /// A whole ping, pong or close frame carrying `payload`, masked for a client; the
  /// preconditions of `control_frame`'s constructor apply.
  [[nodiscard]] control_frame control(opcode op, std::span<const std::byte> payload) const;

  /// A whole close frame with `code` and `reason`, as `encode_close_payload` writes them.
  [[nodiscard]] control_frame close(close_code code, std::string_view reason = {}) const;

private:
  websockets::role role_;
};

} // namespace websockets
