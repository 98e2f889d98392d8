// UTF-8 validation: every class of invalid input, fail-fast positions, and pieces.
#include <websockets/utf8.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

using websockets::is_valid_utf8;
using websockets::utf8_validator;

namespace {

using bytes = std::vector<unsigned char>;

std::string_view view(const bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// An independent reference: decode one code point the long way (RFC 3629 section 4)
// and judge it by its value, not by byte ranges.
bool reference_valid(const bytes& b) {
  std::size_t i = 0;
  while (i < b.size()) {
    const unsigned lead = b[i];
    std::size_t length;
    std::uint32_t cp;
    if (lead < 0x80) { length = 1; cp = lead; }
    else if ((lead & 0xE0) == 0xC0) { length = 2; cp = lead & 0x1F; }
    else if ((lead & 0xF0) == 0xE0) { length = 3; cp = lead & 0x0F; }
    else if ((lead & 0xF8) == 0xF0) { length = 4; cp = lead & 0x07; }
    else return false;
    if (i + length > b.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      if ((b[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b[i + k] & 0x3F);
    }
    const std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < smallest[length]) return false;             // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;      // surrogate
    if (cp > 0x10FFFF) return false;                     // beyond Unicode
    i += length;
  }
  return true;
}

// Feeds one byte at a time; returns the index of the byte that was refused.
std::optional<std::size_t> first_refused_byte(const bytes& b) {
  utf8_validator v;
  for (std::size_t i = 0; i < b.size(); ++i)
    if (!v.feed(view(b).substr(i, 1))) return i;
  return std::nullopt;
}

} // namespace

TEST_CASE("valid text of every length class is accepted") {
  CHECK(is_valid_utf8(std::string_view{}));
  CHECK(is_valid_utf8("Hello-\x7f"));
  CHECK(is_valid_utf8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"));  // κόσμε
  CHECK(is_valid_utf8("\xc2\x80"));              // U+0080, smallest 2-byte
  CHECK(is_valid_utf8("\xdf\xbf"));              // U+07FF
  CHECK(is_valid_utf8("\xe0\xa0\x80"));          // U+0800, smallest 3-byte
  CHECK(is_valid_utf8("\xed\x9f\xbf"));          // U+D7FF, just below the surrogates
  CHECK(is_valid_utf8("\xee\x80\x80"));          // U+E000, just above them
  CHECK(is_valid_utf8("\xef\xbf\xbf"));          // U+FFFF
  CHECK(is_valid_utf8("\xf0\x90\x80\x80"));      // U+10000, smallest 4-byte
  CHECK(is_valid_utf8("\xf4\x8f\xbf\xbf"));      // U+10FFFF, the largest
  CHECK(is_valid_utf8(std::string_view{"\0", 1}));
}

TEST_CASE("overlong forms fail at the first byte that proves them overlong") {
  CHECK(first_refused_byte({0xC0, 0xAF}) == 0u);
  CHECK(first_refused_byte({0xC1, 0xBF}) == 0u);
  CHECK(first_refused_byte({0xE0, 0x80, 0xAF}) == 1u);
  CHECK(first_refused_byte({0xE0, 0x9F, 0xBF}) == 1u);
  CHECK(first_refused_byte({0xF0, 0x80, 0x80, 0xAF}) == 1u);
  CHECK(first_refused_byte({0xF0, 0x8F, 0xBF, 0xBF}) == 1u);
}

TEST_CASE("surrogates U+D800-U+DFFF are refused at their second byte") {
  CHECK(first_refused_byte({0xED, 0xA0, 0x80}) == 1u);  // U+D800
  CHECK(first_refused_byte({0xED, 0xAD, 0xBF}) == 1u);  // U+DB7F
  CHECK(first_refused_byte({0xED, 0xBF, 0xBF}) == 1u);  // U+DFFF
  // A surrogate pair encoded as two 3-byte sequences (CESU-8) is not UTF-8.
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80\xed\xb0\x80"));
}

TEST_CASE("code points above U+10FFFF and bytes F5-FF are refused") {
  CHECK(first_refused_byte({0xF4, 0x90, 0x80, 0x80}) == 1u);  // U+110000
  for (unsigned lead = 0xF5; lead <= 0xFF; ++lead)
    CHECK(first_refused_byte({static_cast<unsigned char>(lead), 0x80, 0x80, 0x80}) == 0u);
}

TEST_CASE("stray continuation bytes and cut sequences") {
  CHECK(first_refused_byte({0x80}) == 0u);
  CHECK(first_refused_byte({'a', 0xBF}) == 1u);
  CHECK(first_refused_byte({0xE2, 0x82, 'A'}) == 2u);    // cut 3-byte sequence
  CHECK(first_refused_byte({0xF0, 0x9F, 0x98, 'x'}) == 3u);
  CHECK(first_refused_byte({0xC2, 0xC2}) == 1u);

  utf8_validator v;
  CHECK(v.feed("abc\xe2\x82"));   // could still become valid...
  CHECK_FALSE(v.complete());      // ...but a message may not end here
  CHECK_FALSE(v.failed());
  CHECK_FALSE(is_valid_utf8("\xf0\x9f\x98"));
}

TEST_CASE("a bad byte fails the feed that carries it, before the text ends") {
  // Autobahn 6.3.x: valid text, then a surrogate, then more valid text.
  const std::string text = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
  utf8_validator v;
  CHECK(v.feed(std::string_view{text}.substr(0, 12)));  // up to and including ED
  CHECK_FALSE(v.feed(std::string_view{text}.substr(12, 1)));  // A0 decides
  CHECK(v.failed());
  // Once failed, it stays failed until reset.
  CHECK_FALSE(v.feed("plain"));
  v.reset();
  CHECK(v.feed("plain"));
  CHECK(v.complete());
}

TEST_CASE("valid 4-byte sequences split at every point across pieces") {
  const std::string text = "a\xf0\x9f\x98\x80z\xf4\x8f\xbf\xbf";
  for (std::size_t cut1 = 0; cut1 <= text.size(); ++cut1) {
    for (std::size_t cut2 = cut1; cut2 <= text.size(); ++cut2) {
      utf8_validator v;
      CHECK(v.feed(std::string_view{text}.substr(0, cut1)));
      CHECK(v.feed(std::string_view{text}.substr(cut1, cut2 - cut1)));
      CHECK(v.feed(std::string_view{text}.substr(cut2)));
      CHECK(v.complete());
    }
  }
}

TEST_CASE("the ASCII fast path finds a bad byte at every position") {
  for (std::size_t length = 1; length <= 40; ++length) {
    for (std::size_t bad = 0; bad < length; ++bad) {
      bytes b(length, 'x');
      b[bad] = 0xFF;
      CHECK(first_refused_byte(b) == bad);
      utf8_validator whole;
      CHECK_FALSE(whole.feed(view(b)));
    }
  }
}

TEST_CASE("every 1- and 2-byte input agrees with the reference decoder") {
  for (unsigned a = 0; a < 256; ++a) {
    const bytes one{static_cast<unsigned char>(a)};
    REQUIRE(is_valid_utf8(view(one)) == reference_valid(one));
    for (unsigned b = 0; b < 256; ++b) {
      const bytes two{static_cast<unsigned char>(a), static_cast<unsigned char>(b)};
      REQUIRE(is_valid_utf8(view(two)) == reference_valid(two));
    }
  }
}

TEST_CASE("every 3-byte input with a 3-byte lead agrees with the reference decoder") {
  for (unsigned a = 0xE0; a < 0xF0; ++a)
    for (unsigned b = 0; b < 256; ++b)
      for (unsigned c = 0; c < 256; ++c) {
        const bytes three{static_cast<unsigned char>(a), static_cast<unsigned char>(b),
                          static_cast<unsigned char>(c)};
        REQUIRE(is_valid_utf8(view(three)) == reference_valid(three));
      }
}

TEST_CASE("random 4-byte inputs and random mixtures agree with the reference decoder") {
  std::mt19937 rng(6455);
  std::uniform_int_distribution<unsigned> any(0, 255), lead4(0xF0, 0xF7), cont(0x70, 0xC0);
  for (int i = 0; i < 200000; ++i) {
    const bytes four{static_cast<unsigned char>(lead4(rng)), static_cast<unsigned char>(cont(rng)),
                     static_cast<unsigned char>(cont(rng)), static_cast<unsigned char>(cont(rng))};
    REQUIRE(is_valid_utf8(view(four)) == reference_valid(four));
  }
  // Mostly-valid text with rare damage, fed in random pieces.
  const std::string sample = "ascii κόσμε \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf ";
  for (int i = 0; i < 2000; ++i) {
    bytes text;
    for (int k = 0; k < 20; ++k) text.insert(text.end(), sample.begin(), sample.end());
    if (i % 2) text[any(rng) % text.size()] = static_cast<unsigned char>(any(rng));
    utf8_validator v;
    std::size_t at = 0;
    bool ok = true;
    while (at < text.size()) {
      const std::size_t piece = std::min<std::size_t>(any(rng) % 17, text.size() - at);
      ok = v.feed(view(text).substr(at, piece)) && ok;
      at += piece;
    }
    REQUIRE((ok && v.complete()) == reference_valid(text));
  }
}
