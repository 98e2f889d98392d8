#include "room.hpp"

#include "json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace chat {

namespace {

using audience = delivery::audience;

std::string error_envelope(std::string_view text, std::string_view command = {}) {
  std::string out = R"({"type":"error","text":)";
  json::append_string(out, text);
  if (!command.empty()) {
    out += R"(,"command":)";
    json::append_string(out, command);
  }
  out += '}';
  return out;
}

/// Decodes one code point of valid UTF-8 at `i`, advancing `i`; nothing on bad UTF-8.
std::optional<std::uint32_t> next_code_point(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if (b0 < 0x80) { cp = b0; n = 1; }
  else if (b0 >= 0xC2 && b0 <= 0xDF) { cp = b0 & 0x1Fu; n = 2; }
  else if (b0 >= 0xE0 && b0 <= 0xEF) { cp = b0 & 0x0Fu; n = 3; }
  else if (b0 >= 0xF0 && b0 <= 0xF4) { cp = b0 & 0x07u; n = 4; }
  else return std::nullopt;
  if (s.size() - i < n) return std::nullopt;
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  static constexpr std::uint32_t min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_for_length[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  i += n;
  return cp;
}

/// Unicode White_Space, and the C0, DEL and C1 controls; also the zero-width and
/// direction marks that would make two nicknames look the same.
bool forbidden_in_nick(std::uint32_t cp) {
  return cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) ||
         (cp >= 0x2028 && cp <= 0x202F) || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

bool equal_ignoring_ascii_case(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

/// The longest prefix of `s` of at most `max` bytes that ends on a code point boundary.
std::string_view utf8_prefix(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

/// A media type worth passing on: `type/subtype` made of token characters.
bool plausible_mime(std::string_view m) {
  const auto slash = m.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == m.size() || m.size() > 100) return false;
  return std::ranges::all_of(m, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '/' || c == '.' || c == '+' || c == '-' || c == '_';
  }) && m.find('/', slash + 1) == std::string_view::npos;
}

} // namespace

std::string_view check_nick(std::string_view nick, std::size_t max) {
  if (nick.empty()) return "a nickname cannot be empty";
  std::size_t count = 0;
  for (std::size_t i = 0; i < nick.size();) {
    const auto cp = next_code_point(nick, i);
    if (!cp) return "a nickname must be UTF-8";
    if (forbidden_in_nick(*cp)) return "a nickname cannot contain spaces or control characters";
    if (++count > max) return "that nickname is too long";
  }
  return {};
}

std::string iso8601(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const hh_mm_ss hms{ms - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count(),
                     hms.subseconds().count());
}

std::vector<delivery> room::open(client_id id) {
  members_.try_emplace(id);
  return {{audience::one, id, users_envelope()}};
}

std::vector<std::string> room::users() const {
  std::vector<std::pair<std::uint64_t, std::string>> joined;
  for (const auto& [id, m] : members_)
    if (m.nick) joined.emplace_back(m.joined_order, *m.nick);
  std::ranges::sort(joined);
  std::vector<std::string> out;
  out.reserve(joined.size());
  for (auto& [order, nick] : joined) out.push_back(std::move(nick));
  return out;
}

std::optional<std::string> room::nick(client_id id) const {
  const auto it = members_.find(id);
  if (it == members_.end()) return std::nullopt;
  return it->second.nick;
}

std::string room::users_array() const {
  std::string out = "[";
  for (const auto& nick : users()) {
    if (out.size() > 1) out += ',';
    json::append_string(out, nick);
  }
  out += ']';
  return out;
}

std::string room::server_field() const {
  if (server_.empty()) return {};
  std::string out = R"(,"server":)";
  json::append_string(out, server_);
  return out;
}

std::string room::users_envelope() const {
  return R"({"type":"users","users":)" + users_array() + server_field() + "}";
}

delivery room::roster() const { return {audience::everyone, 0, users_envelope()}; }

bool room::taken(std::string_view nick, client_id except) const {
  return std::ranges::any_of(members_, [&](const auto& entry) {
    return entry.first != except && entry.second.nick && equal_ignoring_ascii_case(*entry.second.nick, nick);
  });
}

std::string room::guest_nick(client_id id) const {
  std::string nick = fmt::format("guest-{}", id);
  for (unsigned n = 2; taken(nick, id); ++n) nick = fmt::format("guest-{}-{}", id, n);
  return nick;
}

std::vector<delivery> room::join(client_id id, member& m, std::string nick) {
  m.nick = std::move(nick);
  m.joined_order = next_order_++;
  std::string welcome = R"({"type":"welcome","nick":)";
  json::append_string(welcome, *m.nick);
  welcome += fmt::format(R"(,"users":{},"maxFileSize":{}{}}})", users_array(), limits_.max_file, server_field());
  std::string joined = R"({"type":"join","nick":)";
  json::append_string(joined, *m.nick);
  joined += '}';
  return {{audience::one, id, std::move(welcome)},
          {audience::everyone, id, std::move(joined)},
          {audience::everyone, id, users_envelope()}};
}

std::vector<delivery> room::set_nick(client_id id, member& m, std::string_view arg) {
  const auto first = arg.find_first_not_of(" \t");
  const auto last = arg.find_last_not_of(" \t");
  const std::string_view wanted = first == std::string_view::npos ? std::string_view{} : arg.substr(first, last - first + 1);
  if (const auto why = check_nick(wanted, limits_.max_nick); !why.empty())
    return {{audience::one, id, error_envelope(why, "nick")}};
  if (m.nick && *m.nick == wanted) return {};
  if (taken(wanted, id))
    return {{audience::one, id, error_envelope(fmt::format("the nickname {} is taken", wanted), "nick")}};
  if (!m.nick) return join(id, m, std::string{wanted});
  std::string changed = R"({"type":"nick","old":)";
  json::append_string(changed, *m.nick);
  changed += R"(,"nick":)";
  json::append_string(changed, wanted);
  changed += '}';
  m.nick = std::string{wanted};
  return {{audience::everyone, id, std::move(changed)}, {audience::everyone, id, users_envelope()}};
}

std::vector<delivery> room::announce(client_id id, member& m, std::string_view arg) {
  m.announced = false;
  const auto fields = json::read_object(arg);
  const auto field = [&](std::string_view key) -> const json::value* {
    if (!fields) return nullptr;
    const auto it = fields->find(key);
    return it == fields->end() ? nullptr : &it->second;
  };
  const auto* name = field("name");
  const auto* size = field("size");
  const auto* type = field("type");
  if (!name || !std::holds_alternative<std::string>(*name) || !size || !std::holds_alternative<double>(*size))
    return {{audience::one, id,
             error_envelope(R"(usage: /file {"name":"cat.png","type":"image/png","size":1234})", "file")}};
  const double bytes = std::get<double>(*size);
  if (!(bytes >= 0) || bytes != std::floor(bytes) || bytes > static_cast<double>(limits_.max_file))
    return {{audience::one, id,
             error_envelope(fmt::format("files can have at most {} bytes", limits_.max_file), "file")}};
  std::string_view file_name = utf8_prefix(std::get<std::string>(*name), limits_.max_file_name);
  if (file_name.empty()) file_name = "file";
  const std::string_view mime =
      type && std::holds_alternative<std::string>(*type) && plausible_mime(std::get<std::string>(*type))
          ? std::string_view{std::get<std::string>(*type)}
          : std::string_view{"application/octet-stream"};
  m.announced = true;
  std::string envelope = R"({"type":"file","from":)";
  json::append_string(envelope, *m.nick);
  envelope += R"(,"name":)";
  json::append_string(envelope, file_name);
  envelope += R"(,"mime":)";
  json::append_string(envelope, mime);
  envelope += fmt::format(R"(,"size":{}}})", static_cast<std::uint64_t>(bytes));
  return {{audience::everyone, id, std::move(envelope), true}};
}

std::vector<delivery> room::text(client_id id, std::string_view text, std::chrono::system_clock::time_point now) {
  auto& m = members_[id];
  m.announced = false; // the bytes of an announced file must come next, not text
  const auto command = [&](std::string_view name) {
    return text.starts_with(name) && (text.size() == name.size() || text[name.size()] == ' ');
  };
  if (command("/nick")) return set_nick(id, m, text.substr(std::min(text.size(), std::size_t{6})));

  if (command("/file")) {
    // Joined first: a welcome sent now could let this connection's next frames, the
    // file's bytes, be read before the relay is attached (see main.cpp).
    if (!m.nick)
      return {{audience::one, id, error_envelope("pick a nickname first: /nick NAME", "file")}};
    return announce(id, m, text.substr(std::min(text.size(), std::size_t{6})));
  }
  std::vector<delivery> out;
  if (!m.nick) out = join(id, m, guest_nick(id));
  if (text.size() > limits_.max_text) {
    out.push_back({audience::one, id,
                   error_envelope(fmt::format("messages can have at most {} bytes", limits_.max_text))});
    return out;
  }
  std::string message = R"({"type":"message","from":)";
  json::append_string(message, *m.nick);
  message += R"(,"text":)";
  json::append_string(message, text);
  message += R"(,"time":)";
  json::append_string(message, iso8601(now));
  message += '}';
  out.push_back({audience::everyone, id, std::move(message)});
  return out;
}

room::binary_decision room::binary(client_id id) {
  auto& m = members_[id];
  binary_decision d;
  if (m.announced) {
    m.announced = false;
    d.relay = true;
    return d;
  }
  d.out.push_back({audience::one, id,
                   error_envelope(R"(send /file {"name":...,"type":...,"size":...} right before a file's bytes)",
                                  "file")});
  return d;
}

void room::cancel_file(client_id id) {
  if (const auto it = members_.find(id); it != members_.end()) it->second.announced = false;
}

std::vector<delivery> room::close(client_id id) {
  const auto it = members_.find(id);
  if (it == members_.end()) return {};
  const auto nick = std::move(it->second.nick);
  members_.erase(it);
  if (!nick) return {};
  std::string left = R"({"type":"leave","nick":)";
  json::append_string(left, *nick);
  left += '}';
  return {{audience::everyone, id, std::move(left)}, {audience::everyone, id, users_envelope()}};
}

} // namespace chat
