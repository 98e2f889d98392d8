// Just enough JSON for the chat: an escaper for everything the server emits, and a
// reader for the flat object a client sends with `/file {...}`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace chat::json {

/// Appends `text` to `out` as a JSON string literal, quotes included. `text` is UTF-8
/// (the server only has text from validated text frames and from `read_object`); quotes,
/// backslashes and control characters are escaped, and so are U+2028 and U+2029 so the
/// result is also valid JavaScript.
void append_string(std::string& out, std::string_view text);

/// `text` as a JSON string literal.
[[nodiscard]] std::string quote(std::string_view text);

/// A value of a flat object: a string, a number, a boolean, or null.
using value = std::variant<std::nullptr_t, bool, double, std::string>;

/// Reads one JSON object whose values are all strings, numbers, booleans or null (no
/// nested objects or arrays), with nothing but whitespace after it. Strings come back as
/// UTF-8; an escaped lone surrogate becomes U+FFFD. Returns nothing when `text` is not
/// such an object. A repeated key keeps its last value.
[[nodiscard]] std::optional<std::map<std::string, value, std::less<>>> read_object(std::string_view text);

} // namespace chat::json
