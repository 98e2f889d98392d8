#include <websockets/random.hpp>
#include <websockets/upgrade.hpp>

#include <boost/url/parse.hpp>
#include <boost/url/scheme.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <initializer_list>
#include <stdexcept>

namespace websockets {
namespace {

constexpr std::string_view accept_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// The size of a Sec-WebSocket-Key before base64 (RFC 6455 section 4.1).
constexpr std::size_t key_bytes = 16;

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::span<const unsigned char> in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const unsigned v = (unsigned{in[i]} << 16) | (unsigned{in[i + 1]} << 8) | in[i + 2];
    out += base64_alphabet[(v >> 18) & 63];
    out += base64_alphabet[(v >> 12) & 63];
    out += base64_alphabet[(v >> 6) & 63];
    out += base64_alphabet[v & 63];
  }
  if (const auto rest = in.size() - i; rest != 0) {
    const unsigned v = (unsigned{in[i]} << 16) | (rest == 2 ? unsigned{in[i + 1]} << 8 : 0U);
    out += base64_alphabet[(v >> 18) & 63];
    out += base64_alphabet[(v >> 12) & 63];
    out += rest == 2 ? base64_alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

int base64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict RFC 4648 decoding: padded to a multiple of four, no whitespace, and the unused
// bits of the last character zero, so every byte string has exactly one accepted
// spelling.
std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0)
    return std::nullopt;
  std::size_t pad = 0;
  if (!in.empty() && in.back() == '=')
    pad = in.size() >= 2 && in[in.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const std::size_t digits = last ? 4 - pad : 4;
    unsigned v = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      int d = 0;
      if (j < digits) {
        d = base64_value(in[i + j]);
        if (d < 0)
          return std::nullopt;
      }
      v = (v << 6) | static_cast<unsigned>(d);
    }
    out += static_cast<char>((v >> 16) & 0xFF);
    if (digits >= 3)
      out += static_cast<char>((v >> 8) & 0xFF);
    if (digits == 4)
      out += static_cast<char>(v & 0xFF);
    // Bits below the last whole byte must be zero.
    if ((digits == 2 && (v & 0xFFFF) != 0) || (digits == 3 && (v & 0xFF) != 0))
      return std::nullopt;
  }
  return out;
}

bool is_field_value(std::string_view v) noexcept {
  return std::none_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7F;
  });
}

constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// The elements of a comma-separated list across all lines of a header, trimmed, with
// the empty elements RFC 9110 section 5.6.1 tells recipients to ignore left out.
std::vector<std::string_view> list_elements(const http_head& head, std::string_view name) {
  std::vector<std::string_view> out;
  for (const auto& h : head.headers()) {
    if (!iequals(h.name, name))
      continue;
    std::string_view list = h.value;
    for (;;) {
      const auto comma = list.find(',');
      if (const auto e = trim_ows(list.substr(0, comma)); !e.empty())
        out.push_back(e);
      if (comma == std::string_view::npos)
        break;
      list.remove_prefix(comma + 1);
    }
  }
  return out;
}

// Reads the grammar of RFC 6455 section 9.1 over one Sec-WebSocket-Extensions value.
class extension_reader {
public:
  explicit extension_reader(std::string_view list) : in_(list) {}

  std::optional<std::vector<extension>> read() {
    std::vector<extension> out;
    for (;;) {
      skip_ows();
      if (at(',')) { // an empty element
        ++pos_;
        continue;
      }
      if (pos_ == in_.size()) return out;
      auto element = read_extension();
      if (!element) return std::nullopt;
      out.push_back(std::move(*element));
      skip_ows();
      if (pos_ == in_.size()) return out;
      if (!at(',')) return std::nullopt;
      ++pos_;
    }
  }

private:
  std::optional<extension> read_extension() {
    extension e;
    auto name = read_token();
    if (!name) return std::nullopt;
    e.name = std::move(*name);
    for (skip_ows(); at(';'); skip_ows()) {
      ++pos_;
      skip_ows();
      extension::parameter p;
      auto param = read_token();
      if (!param) return std::nullopt;
      p.name = std::move(*param);
      skip_ows();
      if (at('=')) {
        ++pos_;
        skip_ows();
        p.value = at('"') ? read_quoted() : read_token();
        // RFC 6455 9.1: a quoted value must still be a token once unquoted.
        if (!p.value || !is_token(*p.value)) return std::nullopt;
      }
      e.parameters.push_back(std::move(p));
    }
    return e;
  }

  std::optional<std::string> read_token() {
    const std::size_t begin = pos_;
    while (pos_ < in_.size() && is_token(in_.substr(pos_, 1))) ++pos_;
    if (pos_ == begin) return std::nullopt;
    return std::string(in_.substr(begin, pos_ - begin));
  }

  std::optional<std::string> read_quoted() {
    std::string value;
    for (++pos_; pos_ < in_.size(); ++pos_) {
      if (in_[pos_] == '"') {
        ++pos_;
        return value;
      }
      if (in_[pos_] == '\\' && ++pos_ == in_.size()) break;
      value += in_[pos_];
    }
    return std::nullopt; // unterminated
  }

  void skip_ows() {
    while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\t')) ++pos_;
  }
  [[nodiscard]] bool at(char c) const { return pos_ < in_.size() && in_[pos_] == c; }

  std::string_view in_;
  std::size_t pos_ = 0;
};

void check_field(std::string_view name, std::string_view value,
                 std::initializer_list<std::string_view> reserved) {
  if (!is_token(name) || !is_field_value(value))
    throw std::invalid_argument("websockets: not a valid HTTP header field: " + std::string(name));
  for (const auto r : reserved)
    if (iequals(name, r))
      throw std::invalid_argument("websockets: the handshake writes this header itself: " +
                                  std::string(name));
}

void add_field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

std::string_view reason_phrase(unsigned status) noexcept {
  switch (status) {
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  default: return status < 400 ? "Redirection" : status < 500 ? "Client Error" : "Server Error";
  }
}

} // namespace

std::string accept_key(std::string_view key) {
  std::string input;
  input.reserve(key.size() + accept_guid.size());
  input += key;
  input += accept_guid;
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned size = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &size, EVP_sha1(), nullptr) != 1)
    throw std::runtime_error("websockets: SHA-1 is not available");
  return base64_encode(std::span(digest.data(), size));
}

// ---- Server side ----

upgrade_check check_upgrade(http_head request) {
  upgrade_check check;
  const http_head& head = request;
  const auto verdict = [&]() -> error {
    if (head.kind() != http_kind::request)
      return error::malformed_request;
    // RFC 6455 section 4.1: the handshake is a GET, at least HTTP/1.1.
    if (head.method() != "GET")
      return error::bad_method;
    if (head.version_major() < 1 || (head.version_major() == 1 && head.version_minor() < 1))
      return error::bad_http_version;
    if (head.header("Host").empty())
      return error::missing_host;
    if (!head.header_has_token("Upgrade", "websocket"))
      return error::not_upgrade;
    if (!head.header_has_token("Connection", "upgrade"))
      return error::missing_connection_upgrade;
    // Joined, so two lines (even "13" twice) are not "13".
    if (head.header("Sec-WebSocket-Version") != websocket_version)
      return error::bad_version;
    if (head.header_count("Sec-WebSocket-Key") != 1)
      return error::bad_key;
    const auto key = head.header("Sec-WebSocket-Key");
    if (const auto raw = base64_decode(key); !raw || raw->size() != key_bytes)
      return error::bad_key;
    const auto protocols = list_elements(head, "Sec-WebSocket-Protocol");
    if (!std::all_of(protocols.begin(), protocols.end(), [](auto p) { return is_token(p); }))
      return error::malformed_request;

    auto& r = check.request;
    r.key_ = key;
    r.subprotocols_.assign(protocols.begin(), protocols.end());
    r.extensions_ = head.header("Sec-WebSocket-Extensions");
    if (head.has_header("Origin"))
      r.origin_ = head.header("Origin");
    return error{};
  }();
  check.failure = verdict;
  check.request.head_ = std::move(request);
  return check;
}

std::string accept_response(std::string_view key, const accept_options& options) {
  if (!options.subprotocol.empty() && !is_token(options.subprotocol))
    throw std::invalid_argument("websockets: a subprotocol must be a token");
  if (!is_field_value(options.extensions))
    throw std::invalid_argument("websockets: not a valid Sec-WebSocket-Extensions value");
  for (const auto& h : options.extra_headers)
    check_field(h.name, h.value,
                {"Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol",
                 "Sec-WebSocket-Extensions"});

  std::string out = "HTTP/1.1 101 Switching Protocols\r\n";
  add_field(out, "Upgrade", "websocket");
  add_field(out, "Connection", "Upgrade");
  add_field(out, "Sec-WebSocket-Accept", accept_key(key));
  if (!options.subprotocol.empty())
    add_field(out, "Sec-WebSocket-Protocol", options.subprotocol);
  if (!options.extensions.empty())
    add_field(out, "Sec-WebSocket-Extensions", options.extensions);
  for (const auto& h : options.extra_headers)
    add_field(out, h.name, h.value);
  out += "\r\n";
  return out;
}

std::string rejection_response(unsigned status, std::string_view body,
                               std::span<const http_header> extra_headers) {
  if (status < 300 || status > 599)
    throw std::invalid_argument("websockets: a rejection status must be 300 to 599");
  for (const auto& h : extra_headers)
    check_field(h.name, h.value,
                {"Content-Length", "Content-Type", "Transfer-Encoding", "Connection", "Upgrade",
                 "Sec-WebSocket-Version"});
  const auto reason = reason_phrase(status);
  std::string text = body.empty() ? std::string(reason) + "\n" : std::string(body);

  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out += reason;
  out += "\r\n";
  if (status == 426) {
    // RFC 9110 section 15.5.22: a 426 names the protocol to upgrade to, and Upgrade is
    // hop-by-hop, so Connection lists it (section 7.8). RFC 6455 section 4.4: the
    // versions the server speaks.
    add_field(out, "Upgrade", "websocket");
    add_field(out, "Sec-WebSocket-Version", websocket_version);
    add_field(out, "Connection", "Upgrade, close");
  } else {
    add_field(out, "Connection", "close");
  }
  add_field(out, "Content-Type", "text/plain; charset=utf-8");
  add_field(out, "Content-Length", std::to_string(text.size()));
  for (const auto& h : extra_headers)
    add_field(out, h.name, h.value);
  out += "\r\n";
  out += text;
  return out;
}

std::string rejection_response(error failure) {
  return rejection_response(http_status_for(failure), make_error_code(failure).message() + "\n");
}

// ---- Client side ----

client_handshake::client_handshake(std::string_view uri, const client_options& options) {
  const auto parsed = boost::urls::parse_uri(boost::urls::string_view(uri.data(), uri.size()));
  if (!parsed)
    throw std::invalid_argument("websockets: not a URI: " + std::string(uri));
  const auto& url = *parsed;
  std::uint16_t default_port = 80;
  switch (url.scheme_id()) {
  case boost::urls::scheme::ws:
  case boost::urls::scheme::http:
    break;
  case boost::urls::scheme::wss:
  case boost::urls::scheme::https:
    secure_ = true;
    default_port = 443;
    break;
  default:
    throw std::invalid_argument("websockets: not a ws:// or wss:// URI: " + std::string(uri));
  }
  if (url.has_fragment())
    throw std::invalid_argument("websockets: a WebSocket URI has no fragment: " + std::string(uri));
  if (url.encoded_host().empty())
    throw std::invalid_argument("websockets: a WebSocket URI needs a host: " + std::string(uri));
  host_ = url.host_address();
  port_ = default_port;
  std::string host_field(url.encoded_host());
  if (url.has_port() && !url.port().empty()) {
    // Read the digits here: Boost.URL's port_number() wraps values past 65535.
    unsigned long value = 0;
    for (const char c : url.port()) {
      value = value * 10 + static_cast<unsigned long>(c - '0');
      if (value > 65535)
        break;
    }
    if (value == 0 || value > 65535)
      throw std::invalid_argument("websockets: bad port in " + std::string(uri));
    port_ = static_cast<std::uint16_t>(value);
    // RFC 6455 section 4.1: the port appears in Host only when it is not the default.
    if (port_ != default_port)
      host_field += ":" + std::to_string(port_);
  }
  target_ = url.encoded_path().empty() ? "/" : std::string(url.encoded_path());
  if (url.has_query())
    target_ += "?" + std::string(url.encoded_query());

  if (!is_field_value(options.origin))
    throw std::invalid_argument("websockets: not a valid Origin value");
  for (const auto& p : options.subprotocols) {
    if (!is_token(p))
      throw std::invalid_argument("websockets: a subprotocol must be a token: " + p);
    if (std::count(options.subprotocols.begin(), options.subprotocols.end(), p) != 1)
      throw std::invalid_argument("websockets: subprotocol offered twice: " + p);
  }
  subprotocols_ = options.subprotocols;
  const auto offered = parse_extensions(options.extensions);
  if (!offered || !is_field_value(options.extensions))
    throw std::invalid_argument("websockets: not a valid extension offer: " + options.extensions);
  for (const auto& e : *offered) extension_names_.push_back(e.name);
  for (const auto& h : options.extra_headers)
    check_field(h.name, h.value,
                {"Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                 "Origin", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"});

  std::array<std::byte, key_bytes> nonce{};
  fill_random(nonce);
  key_ = base64_encode(std::span(reinterpret_cast<const unsigned char*>(nonce.data()), nonce.size()));

  request_ = "GET " + target_ + " HTTP/1.1\r\n";
  add_field(request_, "Host", host_field);
  add_field(request_, "Upgrade", "websocket");
  add_field(request_, "Connection", "Upgrade");
  add_field(request_, "Sec-WebSocket-Key", key_);
  add_field(request_, "Sec-WebSocket-Version", websocket_version);
  if (!options.origin.empty())
    add_field(request_, "Origin", options.origin);
  if (!subprotocols_.empty()) {
    std::string list;
    for (const auto& p : subprotocols_)
      list += (list.empty() ? "" : ", ") + p;
    add_field(request_, "Sec-WebSocket-Protocol", list);
  }
  if (!options.extensions.empty())
    add_field(request_, "Sec-WebSocket-Extensions", options.extensions);
  for (const auto& h : options.extra_headers)
    add_field(request_, h.name, h.value);
  request_ += "\r\n";
}

response_check client_handshake::check(const http_head& response) const {
  response_check check;
  check.failure = [&]() -> error {
    if (response.kind() != http_kind::response)
      return error::malformed_response;
    if (response.status() != 101)
      return error::bad_status;
    if (!response.header_has_token("Upgrade", "websocket") ||
        !response.header_has_token("Connection", "upgrade"))
      return error::bad_upgrade_response;
    if (response.header_count("Sec-WebSocket-Accept") != 1 ||
        response.header("Sec-WebSocket-Accept") != accept_key(key_))
      return error::bad_accept;

    const auto extensions = response.header("Sec-WebSocket-Extensions");
    const auto accepted = parse_extensions(extensions);
    if (!accepted)
      return error::unrequested_extension;
    for (const auto& e : *accepted)
      if (std::none_of(extension_names_.begin(), extension_names_.end(),
                       [&](const std::string& offered) { return iequals(offered, e.name); }))
        return error::unrequested_extension;

    // At most one subprotocol, and one that was offered, compared exactly.
    const auto chosen = list_elements(response, "Sec-WebSocket-Protocol");
    if (chosen.size() > 1 || (response.has_header("Sec-WebSocket-Protocol") && chosen.empty()))
      return error::unrequested_subprotocol;
    if (chosen.size() == 1 &&
        std::find(subprotocols_.begin(), subprotocols_.end(), chosen.front()) == subprotocols_.end())
      return error::unrequested_subprotocol;

    check.subprotocol = chosen.empty() ? std::string() : std::string(chosen.front());
    check.extensions = extensions;
    return error{};
  }();
  return check;
}

std::optional<std::vector<extension>> parse_extensions(std::string_view list) {
  return extension_reader{list}.read();
}

std::optional<std::string> upgrade_request::cookie(std::string_view name) const {
  for (const auto& h : head_.headers()) {
    if (!iequals(h.name, "Cookie")) continue;
    std::string_view pairs = h.value;
    while (!pairs.empty()) {
      const auto semicolon = pairs.find(';');
      const auto pair = trim_ows(pairs.substr(0, semicolon));
      pairs = semicolon == std::string_view::npos ? std::string_view{} : pairs.substr(semicolon + 1);
      const auto eq = pair.find('=');
      if (eq == std::string_view::npos || trim_ows(pair.substr(0, eq)) != name) continue;
      auto value = trim_ows(pair.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
      return std::string(value);
    }
  }
  return std::nullopt;
}

} // namespace websockets
