#include "utf8_battery.hpp"

#include "wire.hpp"

#include <initializer_list>
#include <string_view>

namespace conformance {
namespace {

constexpr bool valid = true;
constexpr bool invalid = false;

/// "kosme" in Greek, five code points of two and three bytes.
constexpr std::string_view kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";

utf8_group group(std::string title, bool verdict, std::initializer_list<std::string_view> samples) {
  utf8_group g{std::move(title), {}};
  for (std::string_view s : samples) g.samples.push_back({std::string{s}, verdict});
  return g;
}

/// The bytes [first, last) in order, each followed by `after` when given.
std::string byte_run(unsigned first, unsigned last, std::string_view after = {}) {
  std::string out;
  for (unsigned b = first; b < last; ++b) {
    out.push_back(static_cast<char>(b));
    out += after;
  }
  return out;
}

utf8_group prefixes_of_kosme() {
  // Valid exactly when the prefix ends on a code point boundary.
  utf8_group g{"All prefixes of a valid UTF-8 string that contains multi-byte code points", {}};
  for (std::size_t n = 1; n <= kosme.size(); ++n) {
    const std::string prefix{kosme.substr(0, n)};
    g.samples.push_back({prefix, check_utf8(prefix).valid()});
  }
  return g;
}

utf8_group non_characters() {
  // Non-characters are valid UTF-8 (RFC 3629): U+FFFE, U+FFFF and U+nFFFE, U+nFFFF for
  // the planes 1 to 16, as F[0-4] [89AB]F BF B[EF] without the overlong F0 8F forms
  // and the F4 forms past U+10FFFF.
  utf8_group g{"Non-character code points (valid UTF-8)", {{"\xef\xbf\xbe", valid}, {"\xef\xbf\xbf", valid}}};
  for (unsigned lead = 0xF0; lead <= 0xF4; ++lead)
    for (unsigned second : {0x8Fu, 0x9Fu, 0xAFu, 0xBFu}) {
      if (lead == 0xF0 && second == 0x8F) continue;
      if (lead == 0xF4 && second != 0x8F) continue;
      for (unsigned last : {0xBEu, 0xBFu})
        g.samples.push_back({{static_cast<char>(lead), static_cast<char>(second), '\xbf', static_cast<char>(last)}, valid});
    }
  return g;
}

} // namespace

std::vector<utf8_group> utf8_battery() {
  const std::initializer_list<std::string_view> truncated = {
      "\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
      "\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"};
  std::string all_truncated;
  for (std::string_view s : truncated) all_truncated += s;

  return {
      // 6.5
      group("Some valid UTF-8 sequences", valid,
            {"hello\x24world", "hello\xc2\xa2world", "hello\xe2\x82\xacworld", "hello\xf0\xa4\xad\xa2world", kosme}),
      // 6.6
      prefixes_of_kosme(),
      // 6.7
      group("First possible sequence of a certain length", valid,
            {std::string_view{"\x00", 1}, "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80"}),
      // 6.8
      group("First possible sequence length 5/6 (invalid codepoints)", invalid,
            {"\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80"}),
      // 6.9
      group("Last possible sequence of a certain length", valid, {"\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"}),
      // 6.10
      group("Last possible sequence length 4/5/6 (invalid codepoints)", invalid,
            {"\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf"}),
      // 6.11
      {"Other boundary conditions",
       {{"\xed\x9f\xbf", valid}, {"\xee\x80\x80", valid}, {"\xef\xbf\xbd", valid}, {"\xf4\x8f\xbf\xbf", valid},
        {"\xf4\x90\x80\x80", invalid}}},
      // 6.12
      group("Unexpected continuation bytes", invalid,
            {"\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", "\x80\xbf\x80\xbf", "\x80\xbf\x80\xbf\x80",
             "\x80\xbf\x80\xbf\x80\xbf", byte_run(0x80, 0xBF)}),
      // 6.13: every lead byte of a range, each followed by a space
      group("Lonely start characters", invalid,
            {byte_run(0xC0, 0xDF, " "), byte_run(0xE0, 0xEF, " "), byte_run(0xF0, 0xF7, " "), byte_run(0xF8, 0xFB, " "),
             byte_run(0xFC, 0xFD, " ")}),
      // 6.14
      group("Sequences with last continuation byte missing", invalid, truncated),
      // 6.15
      group("Concatenation of incomplete sequences", invalid, {all_truncated}),
      // 6.16
      group("Impossible bytes", invalid, {"\xfe", "\xff", "\xfe\xfe\xff\xff"}),
      // 6.17
      group("Examples of an overlong ASCII character", invalid,
            {"\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf"}),
      // 6.18
      group("Maximum overlong sequences", invalid,
            {"\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xf8\x87\xbf\xbf\xbf", "\xfc\x83\xbf\xbf\xbf\xbf"}),
      // 6.19
      group("Overlong representation of the NUL character", invalid,
            {"\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x80\x80\x80\x80", "\xfc\x80\x80\x80\x80\x80"}),
      // 6.20
      group("Single UTF-16 surrogates", invalid,
            {"\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf"}),
      // 6.21
      group("Paired UTF-16 surrogates", invalid,
            {"\xed\xa0\x80\xed\xb0\x80", "\xed\xa0\x80\xed\xbf\xbf", "\xed\xad\xbf\xed\xb0\x80", "\xed\xad\xbf\xed\xbf\xbf",
             "\xed\xae\x80\xed\xb0\x80", "\xed\xae\x80\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf"}),
      // 6.22
      non_characters(),
      // 6.23
      group("Unicode specials (i.e. replacement char)", valid,
            {"\xef\xbf\xb9", "\xef\xbf\xba", "\xef\xbf\xbb", "\xef\xbf\xbc", "\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf"}),
  };
}

} // namespace conformance
