#include <websockets/frame_writer.hpp>

#include <websockets/random.hpp>

#include <algorithm>
#include <cassert>
#include <cstring>

namespace websockets {

encoded_head::encoded_head(const frame_head& head) noexcept
    : masked_(head.masked), key_(head.key) {
  size_ = static_cast<std::uint8_t>(encode_head(head, bytes_));
}

void encoded_head::mask(std::span<std::byte> payload, std::uint64_t offset) const noexcept {
  if (masked_) apply_mask(payload, key_, offset);
}

void encoded_head::mask_copy(std::span<const std::byte> from, std::span<std::byte> to,
                             std::uint64_t offset) const noexcept {
  assert(to.size() >= from.size());
  if (masked_)
    copy_masked(from, to, key_, offset);
  else if (!from.empty())
    std::memcpy(to.data(), from.data(), from.size());
}

control_frame::control_frame(opcode op, std::span<const std::byte> payload,
                             std::optional<mask_key> key) noexcept {
  assert(is_control(op) && is_defined(op));
  assert(payload.size() <= max_control_payload);
  payload = payload.first(std::min(payload.size(), max_control_payload));

  frame_head head;
  head.opcode = op;
  head.payload_size = payload.size();
  head.masked = key.has_value();
  if (key) head.key = *key;
  std::size_t size = encode_head(head, std::span<std::byte, max_head_size>{bytes_.data(), max_head_size});
  const std::span<std::byte> body{bytes_.data() + size, payload.size()};
  if (key)
    copy_masked(payload, body, *key);
  else if (!payload.empty())
    std::memcpy(body.data(), payload.data(), payload.size());
  size += payload.size();
  size_ = static_cast<std::uint8_t>(size);
}

std::size_t encode_close_payload(close_code code, std::string_view reason,
                                 std::span<std::byte, max_control_payload> out) noexcept {
  assert(code == close_code::no_status || is_sendable(code));
  if (code == close_code::no_status) return 0;
  const auto value = static_cast<std::uint16_t>(code);
  out[0] = static_cast<std::byte>(value >> 8);
  out[1] = static_cast<std::byte>(value & 0xFF);
  std::size_t length = std::min(reason.size(), max_close_reason);
  // Cut before a code point, never inside one: back up over continuation bytes.
  if (length < reason.size())
    while (length > 0 && (static_cast<unsigned char>(reason[length]) & 0xC0) == 0x80) --length;
  if (length != 0) std::memcpy(out.data() + 2, reason.data(), length);
  return 2 + length;
}

encoded_head frame_writer::head(opcode op, std::uint64_t payload_size, bool fin,
                                bool compressed) const {
  assert(is_defined(op));
  assert(!is_control(op) || (fin && !compressed && payload_size <= max_control_payload));
  assert(!compressed || op != opcode::continuation);
  frame_head head;
  head.fin = fin;
  head.rsv1 = compressed;
  head.opcode = op;
  head.payload_size = payload_size;
  if (role_ == websockets::role::client) {
    head.masked = true;
    head.key = random_mask_key();
  }
  return encoded_head{head};
}

control_frame frame_writer::control(opcode op, std::span<const std::byte> payload) const {
  if (role_ == websockets::role::client) return control_frame{op, payload, random_mask_key()};
  return control_frame{op, payload};
}

control_frame frame_writer::close(close_code code, std::string_view reason) const {
  std::array<std::byte, max_control_payload> payload;
  const std::size_t size = encode_close_payload(code, reason, payload);
  return control(opcode::close, std::span{payload.data(), size});
}

} // namespace websockets
