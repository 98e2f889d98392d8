#include <websockets/utf8.hpp>

#include <array>
#include <cstring>

namespace websockets {
namespace {

// A deterministic automaton over byte classes. Each state names what the next byte
// must be, so a bad byte is caught the moment it arrives: the narrowed second-byte
// ranges after E0, ED, F0 and F4 are what reject overlong forms, surrogates and code
// points above U+10FFFF without decoding anything.
enum state : std::uint8_t {
  accept = 0,      // between code points
  reject = 1,      // failed for good
  need1 = 2,       // one continuation byte (80-BF) left
  need2 = 3,       // two left
  need3 = 4,       // three left
  after_e0 = 5,    // A0-BF, then one more: rules out overlong 3-byte forms
  after_ed = 6,    // 80-9F, then one more: rules out surrogates D800-DFFF
  after_f0 = 7,    // 90-BF, then two more: rules out overlong 4-byte forms
  after_f4 = 8,    // 80-8F, then two more: rules out code points above 10FFFF
  state_count
};

enum byte_class : std::uint8_t {
  ascii,          // 00-7F
  cont_80_8f,     // 80-8F
  cont_90_9f,     // 90-9F
  cont_a0_bf,     // A0-BF
  invalid,        // C0, C1, F5-FF
  lead2,          // C2-DF
  lead_e0,        // E0
  lead3,          // E1-EC, EE-EF
  lead_ed,        // ED
  lead_f0,        // F0
  lead4,          // F1-F3
  lead_f4,        // F4
  class_count
};

constexpr byte_class classify(unsigned b) {
  if (b < 0x80) return ascii;
  if (b < 0x90) return cont_80_8f;
  if (b < 0xA0) return cont_90_9f;
  if (b < 0xC0) return cont_a0_bf;
  if (b < 0xC2) return invalid;
  if (b < 0xE0) return lead2;
  if (b == 0xE0) return lead_e0;
  if (b == 0xED) return lead_ed;
  if (b < 0xF0) return lead3;
  if (b == 0xF0) return lead_f0;
  if (b < 0xF4) return lead4;
  if (b == 0xF4) return lead_f4;
  return invalid;
}

constexpr std::uint8_t next(std::uint8_t from, byte_class c) {
  const bool cont = c == cont_80_8f || c == cont_90_9f || c == cont_a0_bf;
  switch (from) {
  case accept:
    switch (c) {
    case ascii: return accept;
    case lead2: return need1;
    case lead_e0: return after_e0;
    case lead3: return need2;
    case lead_ed: return after_ed;
    case lead_f0: return after_f0;
    case lead4: return need3;
    case lead_f4: return after_f4;
    default: return reject;
    }
  case need1: return cont ? accept : reject;
  case need2: return cont ? need1 : reject;
  case need3: return cont ? need2 : reject;
  case after_e0: return c == cont_a0_bf ? need1 : reject;
  case after_ed: return c == cont_80_8f || c == cont_90_9f ? need1 : reject;
  case after_f0: return c == cont_90_9f || c == cont_a0_bf ? need2 : reject;
  case after_f4: return c == cont_80_8f ? need2 : reject;
  default: return reject;
  }
}

constexpr auto classes = [] {
  std::array<byte_class, 256> table{};
  for (unsigned b = 0; b < 256; ++b) table[b] = classify(b);
  return table;
}();

constexpr auto transitions = [] {
  std::array<std::array<std::uint8_t, class_count>, state_count> table{};
  for (std::uint8_t s = 0; s < state_count; ++s)
    for (std::uint8_t c = 0; c < class_count; ++c) table[s][c] = next(s, static_cast<byte_class>(c));
  return table;
}();

constexpr std::uint64_t high_bits = 0x8080808080808080ULL;

std::uint8_t run(std::uint8_t s, const unsigned char* p, std::size_t n) noexcept {
  std::size_t i = 0;
  while (i < n) {
    // Between code points, skip ASCII a word at a time: most text is mostly ASCII.
    if (s == accept) {
      while (n - i >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p + i, 8);
        if (word & high_bits) break;
        i += 8;
      }
      if (i == n) break;
    }
    s = transitions[s][classes[p[i]]];
    if (s == reject) return reject;
    ++i;
  }
  return s;
}

} // namespace

bool utf8_validator::feed(std::span<const std::byte> piece) noexcept {
  if (state_ == reject) return false;
  state_ = run(state_, reinterpret_cast<const unsigned char*>(piece.data()), piece.size());
  return state_ != reject;
}

bool utf8_validator::feed(std::string_view piece) noexcept {
  return feed(std::as_bytes(std::span{piece.data(), piece.size()}));
}

bool is_valid_utf8(std::span<const std::byte> text) noexcept {
  utf8_validator v;
  return v.feed(text) && v.complete();
}

bool is_valid_utf8(std::string_view text) noexcept {
  utf8_validator v;
  return v.feed(text) && v.complete();
}

} // namespace websockets
