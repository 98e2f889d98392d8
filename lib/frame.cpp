#include <websockets/frame.hpp>

#include <cstring>

namespace websockets {
namespace {

constexpr std::byte bit(bool set, unsigned shift) noexcept {
  return set ? std::byte{static_cast<unsigned char>(1u << shift)} : std::byte{0};
}

constexpr unsigned u8(std::byte b) noexcept { return std::to_integer<unsigned>(b); }

// Big-endian (network order) length fields.
void store_be(std::byte* out, std::uint64_t value, std::size_t size) noexcept {
  for (std::size_t i = size; i-- > 0;) {
    out[i] = static_cast<std::byte>(value & 0xFF);
    value >>= 8;
  }
}

std::uint64_t load_be(const std::byte* in, std::size_t size) noexcept {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < size; ++i) value = (value << 8) | u8(in[i]);
  return value;
}

// The key as it applies from `offset` on: byte i of the result masks payload byte
// offset + i, so a piece starting mid-key lines up with the bytes before it.
mask_key rotate(mask_key key, std::uint64_t offset) noexcept {
  const auto shift = static_cast<std::size_t>(offset % 4);
  mask_key rotated;
  for (std::size_t i = 0; i < 4; ++i) rotated[i] = key[(shift + i) % 4];
  return rotated;
}

// The rotated key twice over, as a machine word in memory order: XORing it over 8
// bytes loaded with memcpy masks them whatever the host's byte order.
std::uint64_t key_word(const mask_key& key) noexcept {
  std::array<std::byte, 8> twice;
  std::memcpy(twice.data(), key.data(), 4);
  std::memcpy(twice.data() + 4, key.data(), 4);
  std::uint64_t word;
  std::memcpy(&word, twice.data(), 8);
  return word;
}

// Masks n bytes from `from` into `to` (which may be the same memory): whole words
// first, through memcpy so no alignment is assumed, then the tail byte by byte.
void mask_bytes(const std::byte* from, std::byte* to, std::size_t n, mask_key key,
                std::uint64_t offset) noexcept {
  const mask_key k = rotate(key, offset);
  const std::uint64_t word = key_word(k);
  std::size_t i = 0;
  for (; n - i >= 8; i += 8) {
    std::uint64_t chunk;
    std::memcpy(&chunk, from + i, 8);
    chunk ^= word;
    std::memcpy(to + i, &chunk, 8);
  }
  // i is a multiple of 8, hence of 4: the tail starts at key byte 0 again.
  for (std::size_t j = 0; i < n; ++i, ++j) to[i] = from[i] ^ k[j % 4];
}

} // namespace

std::size_t encode_head(const frame_head& head, std::span<std::byte, max_head_size> out) noexcept {
  out[0] = bit(head.fin, 7) | bit(head.rsv1, 6) | bit(head.rsv2, 5) | bit(head.rsv3, 4) |
           static_cast<std::byte>(static_cast<std::uint8_t>(head.opcode) & 0x0F);
  const std::byte mask_bit = bit(head.masked, 7);
  std::size_t size = 2;
  if (head.payload_size < 126) {
    out[1] = mask_bit | static_cast<std::byte>(head.payload_size);
  } else if (head.payload_size <= 0xFFFF) {
    out[1] = mask_bit | std::byte{126};
    store_be(out.data() + 2, head.payload_size, 2);
    size += 2;
  } else {
    out[1] = mask_bit | std::byte{127};
    store_be(out.data() + 2, head.payload_size, 8);
    size += 8;
  }
  if (head.masked) {
    std::memcpy(out.data() + size, head.key.data(), head.key.size());
    size += head.key.size();
  }
  return size;
}

head_decode_result decode_head(std::span<const std::byte> bytes) noexcept {
  using status = head_decode_result::status;
  head_decode_result result{status::need_more, {}, 0, {}};
  if (bytes.size() < 2) return result;

  const unsigned b0 = u8(bytes[0]);
  const unsigned b1 = u8(bytes[1]);
  frame_head& head = result.head;
  head.fin = (b0 & 0x80) != 0;
  head.rsv1 = (b0 & 0x40) != 0;
  head.rsv2 = (b0 & 0x20) != 0;
  head.rsv3 = (b0 & 0x10) != 0;
  head.opcode = static_cast<websockets::opcode>(b0 & 0x0F);
  head.masked = (b1 & 0x80) != 0;

  const unsigned length7 = b1 & 0x7F;
  const std::size_t length_bytes = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
  // The length is judged as soon as its bytes are here, before the mask key arrives.
  if (bytes.size() < 2 + length_bytes) return result;
  if (length_bytes == 0) {
    head.payload_size = length7;
  } else {
    head.payload_size = load_be(bytes.data() + 2, length_bytes);
    if (length_bytes == 8 && (head.payload_size >> 63) != 0) {
      result.state = status::invalid;
      result.failure = error::length_out_of_range;
      return result;
    }
    if (head.payload_size < (length_bytes == 2 ? 126u : 0x10000u)) {
      result.state = status::invalid;
      result.failure = error::non_minimal_length;
      return result;
    }
  }

  std::size_t size = 2 + length_bytes;
  if (head.masked) {
    if (bytes.size() < size + 4) return result;
    std::memcpy(head.key.data(), bytes.data() + size, 4);
    size += 4;
  }
  result.state = status::complete;
  result.size = size;
  return result;
}

void apply_mask(std::span<std::byte> payload, mask_key key, std::uint64_t offset) noexcept {
  mask_bytes(payload.data(), payload.data(), payload.size(), key, offset);
}

void copy_masked(std::span<const std::byte> from, std::span<std::byte> to, mask_key key,
                 std::uint64_t offset) noexcept {
  mask_bytes(from.data(), to.data(), from.size(), key, offset);
}

} // namespace websockets
