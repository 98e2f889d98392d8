#include "wire.hpp"

#include <openssl/evp.h>

#include <fmt/core.h>

#include <stdexcept>

namespace conformance {
namespace {

std::uint8_t byte_at(const std::string& s, std::size_t i) { return static_cast<std::uint8_t>(s[i]); }

void put_big_endian(std::string& out, std::uint64_t value, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((value >> shift) & 0xFF));
}

std::uint64_t get_big_endian(const std::string& in, std::size_t at, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = value << 8 | byte_at(in, at + static_cast<std::size_t>(i));
  return value;
}

// Masking and unmasking are the same XOR (RFC 6455 section 5.3).
void xor_mask(char* data, std::size_t size, const mask_key& key) {
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>(data[i] ^ key[i % 4]);
}

} // namespace

std::string encode(const frame& f, const mask_key& key) {
  const std::uint64_t length = f.declared_length.value_or(f.payload.size());
  std::string out;
  out.reserve(14 + f.payload.size());
  out.push_back(static_cast<char>((f.fin ? 0x80 : 0) | (f.rsv & 0x7) << 4 | (f.opcode & 0xF)));
  const std::uint8_t mask_bit = f.masked ? 0x80 : 0;
  const bool short_form = f.form == length_form::minimal && length <= 125;
  const bool form16 = f.form == length_form::bits16 || (f.form == length_form::minimal && length > 125 && length <= 0xFFFF);
  if (short_form) {
    out.push_back(static_cast<char>(mask_bit | length));
  } else if (form16) {
    out.push_back(static_cast<char>(mask_bit | 126));
    put_big_endian(out, length, 2);
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    put_big_endian(out, length, 8);
  }
  if (f.masked) out.append(reinterpret_cast<const char*>(key.data()), key.size());
  const std::size_t payload_at = out.size();
  out += f.payload;
  if (f.masked) xor_mask(out.data() + payload_at, f.payload.size(), key);
  return out;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string out;
  put_big_endian(out, code, 2);
  out += reason;
  return out;
}

std::optional<wire_frame> inbound_bytes::take_frame() {
  const std::size_t have = size();
  if (have < 2) return std::nullopt;
  const std::uint8_t b0 = byte_at(bytes_, start_);
  const std::uint8_t b1 = byte_at(bytes_, start_ + 1);
  const std::uint8_t length7 = b1 & 0x7F;
  const int extended = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
  const bool masked = (b1 & 0x80) != 0;
  const std::size_t head = 2 + static_cast<std::size_t>(extended) + (masked ? 4 : 0);
  if (have < head) return std::nullopt;

  wire_frame f;
  f.fin = (b0 & 0x80) != 0;
  f.rsv = (b0 >> 4) & 0x7;
  f.opcode = b0 & 0xF;
  f.masked = masked;
  std::uint64_t length = length7;
  if (extended != 0) length = get_big_endian(bytes_, start_ + 2, extended);
  f.minimal_length = extended == 0 || (extended == 2 ? length > 125 : length > 0xFFFF);
  f.length_top_bit = extended == 8 && (length >> 63) != 0;
  if (f.length_top_bit) length = 0; // a broken frame: report it without waiting for 2^63 bytes
  if (have - head < length) return std::nullopt;

  f.payload = bytes_.substr(start_ + head, static_cast<std::size_t>(length));
  if (masked) {
    mask_key key{};
    for (std::size_t i = 0; i < 4; ++i) key[i] = byte_at(bytes_, start_ + head - 4 + i);
    xor_mask(f.payload.data(), f.payload.size(), key);
  }
  start_ += head + static_cast<std::size_t>(length);
  // Forget consumed bytes once they outweigh the rest, so appending stays cheap.
  if (start_ > bytes_.size() / 2) {
    bytes_.erase(0, start_);
    start_ = 0;
  }
  return f;
}

utf8_check check_utf8(std::string_view text) {
  const auto at = [&](std::size_t i) { return static_cast<std::uint8_t>(text[i]); };
  std::size_t i = 0;
  while (i < text.size()) {
    const std::uint8_t lead = at(i);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    // The well-formed byte sequences of Unicode's table 3-7: the lead byte fixes how
    // many continuation bytes follow and the range of the first one.
    std::size_t continuations = 0;
    std::uint8_t low = 0x80, high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      continuations = 1;
    } else if (lead == 0xE0) {
      continuations = 2;
      low = 0xA0;
    } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
      continuations = 2;
    } else if (lead == 0xED) {
      continuations = 2;
      high = 0x9F;
    } else if (lead == 0xF0) {
      continuations = 3;
      low = 0x90;
    } else if (lead >= 0xF1 && lead <= 0xF3) {
      continuations = 3;
    } else if (lead == 0xF4) {
      continuations = 3;
      high = 0x8F;
    } else {
      return {.error_at = i};
    }
    for (std::size_t k = 1; k <= continuations; ++k) {
      if (i + k == text.size()) return {.truncated = true};
      const std::uint8_t b = at(i + k);
      if (b < low || b > high) return {.error_at = i + k};
      low = 0x80; // only the first continuation byte has a narrower range
      high = 0xBF;
    }
    i += continuations + 1;
  }
  return {};
}

bool is_valid_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0'); // EVP_EncodeBlock adds a NUL
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string accept_for(std::string_view key) {
  const std::string input = std::string{key} + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &size, EVP_sha1(), nullptr) != 1)
    throw std::runtime_error("SHA-1 failed");
  return base64({reinterpret_cast<const char*>(digest), size});
}

std::string hex(std::string_view bytes, std::size_t at_most) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < at_most; ++i)
    out += fmt::format("{:02x}", static_cast<std::uint8_t>(bytes[i]));
  if (bytes.size() > at_most) out += "...";
  return out;
}

} // namespace conformance
