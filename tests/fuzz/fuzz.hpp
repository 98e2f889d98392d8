// Shared by the libFuzzer targets: invariant checks that crash with a message, reading
// the settings bytes at the front of an input, and the ways of splitting the rest.
//
// Every target starts its input with a few settings bytes (limits, window sizes, a seed
// for the split points) so the fuzzer mutates the settings and the data together; the
// seeds in corpus/<target>/ are written by make-corpus with the same layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fuzz {

/// A broken invariant: print why and abort, which libFuzzer reports as a crash and
/// saves the input for.
[[noreturn]] inline void fail(const char* file, int line, const char* what, const std::string& detail) {
  std::fprintf(stderr, "\n%s:%d: invariant broken: %s\n%s\n", file, line, what, detail.c_str());
  std::abort();
}

} // namespace fuzz

/// Checks an invariant; the optional second argument (a std::string) says more.
#define FUZZ_CHECK(condition, ...)                                                             \
  do {                                                                                         \
    if (!(condition)) ::fuzz::fail(__FILE__, __LINE__, #condition, std::string{__VA_ARGS__}); \
  } while (false)

namespace fuzz {

/// Reads settings from the front of an input; past its end every read is 0, so a short
/// input is still a valid one.
class settings {
public:
  settings(const std::uint8_t* data, std::size_t size, std::size_t count) noexcept
      : data_(data), size_(size < count ? size : count) {}
  [[nodiscard]] std::uint8_t byte(std::size_t i) const noexcept { return i < size_ ? data_[i] : 0; }
  [[nodiscard]] bool bit(std::size_t i, unsigned b) const noexcept { return ((byte(i) >> b) & 1) != 0; }

private:
  const std::uint8_t* data_;
  std::size_t size_;
};

/// The bytes after the first `count` settings bytes.
inline std::span<const std::uint8_t> rest(const std::uint8_t* data, std::size_t size, std::size_t count) noexcept {
  return size > count ? std::span{data + count, size - count} : std::span<const std::uint8_t>{};
}

/// Chunk sizes for feeding an input in pieces, from one seed byte. The same seed gives
/// the same split, so a crash reproduces. Mostly small pieces (1 to 16 bytes, where
/// heads and UTF-8 sequences break), sometimes empty ones (which parsers must take),
/// sometimes large ones.
class splitter {
public:
  explicit splitter(std::uint8_t seed) noexcept : state_(0x9E3779B97F4A7C15ULL ^ (seed * 0x100000001B3ULL) ^ 1) {}

  /// The next piece's size, for `left` bytes still to feed; 0 only sometimes.
  std::size_t next(std::size_t left) noexcept {
    const std::uint64_t r = step();
    std::size_t n = 0;
    switch (r % 8) {
    case 0: n = 0; break;                           // an empty piece
    case 1: n = left; break;                        // all the rest
    case 2: n = 1 + (r >> 8) % 512; break;          // a large piece
    default: n = 1 + (r >> 8) % 16; break;          // a small piece
    }
    return n < left ? n : left;
  }

  /// A number in [0, n).
  std::uint64_t below(std::uint64_t n) noexcept { return n == 0 ? 0 : step() % n; }

private:
  std::uint64_t step() noexcept { // xorshift64*
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1DULL;
  }
  std::uint64_t state_;
};

/// How a target feeds the same bytes; each must give the same outcome.
enum class split_kind : std::uint8_t { whole, byte_by_byte, random };
inline constexpr split_kind split_kinds[] = {split_kind::whole, split_kind::byte_by_byte, split_kind::random};

inline const char* name(split_kind k) noexcept {
  switch (k) {
  case split_kind::whole: return "whole";
  case split_kind::byte_by_byte: return "byte by byte";
  case split_kind::random: return "random split";
  }
  return "?";
}

/// The size of the next piece for `kind` when `left` bytes are still to feed.
inline std::size_t next_piece(split_kind kind, splitter& s, std::size_t left) noexcept {
  switch (kind) {
  case split_kind::whole: return left;
  case split_kind::byte_by_byte: return left < 1 ? left : 1;
  case split_kind::random: return s.next(left);
  }
  return left;
}

/// Bytes shown for a diagnostic: printable ASCII as is, the rest as \xNN, cut at 200.
inline std::string show(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < 200; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  if (s.size() > 200) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

inline std::string_view chars(std::span<const std::uint8_t> b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline std::string_view chars(std::span<const std::byte> b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline std::span<const std::byte> bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// A heap copy of exactly `piece`'s size, so AddressSanitizer sees any read or write
/// past either end (the parsers promise to need no padding).
inline std::vector<std::byte> exact_copy(std::span<const std::byte> piece) {
  return {piece.begin(), piece.end()};
}

} // namespace fuzz
