#include <websockets/http.hpp>

#include <boost/url/parse.hpp>

#include <algorithm>

namespace websockets {
namespace {

constexpr char to_lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  switch (c) {
  case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
  case '-': case '.': case '^': case '_': case '`': case '|': case '~':
    return true;
  default:
    return false;
  }
}

constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back()))
    s.remove_suffix(1);
  return s;
}

// "HTTP/1.x": the only versions this parser reads. Other major versions do not use this
// message syntax at all, so they are malformed rather than merely unsupported.
constexpr bool parse_version(std::string_view s, unsigned& minor) noexcept {
  if (s.size() != 8 || s.substr(0, 7) != "HTTP/1." || s[7] < '0' || s[7] > '9')
    return false;
  minor = static_cast<unsigned>(s[7] - '0');
  return true;
}

constexpr std::string_view header_separator = ", ";

} // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(),
                    [](char x, char y) { return to_lower(x) == to_lower(y); });
}

bool is_token(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

// ---- http_head ----

http_head::http_head(const http_head& other)
    : raw_(other.raw_), kind_(other.kind_), method_(other.method_), target_(other.target_),
      reason_(other.reason_), major_(other.major_), minor_(other.minor_),
      status_(other.status_), headers_(other.headers_) {
  rebase(other.raw_.data());
}

http_head::http_head(http_head&& other) noexcept
    : kind_(other.kind_), method_(other.method_), target_(other.target_),
      reason_(other.reason_), major_(other.major_), minor_(other.minor_),
      status_(other.status_), headers_(std::move(other.headers_)) {
  // A short string moves by copy (small-string buffer), so the views are recomputed
  // against the new bytes either way.
  const char* old_base = other.raw_.data();
  raw_ = std::move(other.raw_);
  rebase(old_base);
  other.clear();
}

http_head& http_head::operator=(const http_head& other) {
  if (this != &other)
    *this = http_head(other);
  return *this;
}

http_head& http_head::operator=(http_head&& other) noexcept {
  if (this == &other)
    return *this;
  const char* old_base = other.raw_.data();
  raw_ = std::move(other.raw_);
  kind_ = other.kind_;
  method_ = other.method_;
  target_ = other.target_;
  reason_ = other.reason_;
  major_ = other.major_;
  minor_ = other.minor_;
  status_ = other.status_;
  headers_ = std::move(other.headers_);
  rebase(old_base);
  other.clear();
  return *this;
}

void http_head::clear() noexcept {
  raw_.clear();
  kind_ = http_kind::request;
  method_ = target_ = reason_ = {};
  major_ = minor_ = status_ = 0;
  headers_.clear();
}

void http_head::rebase(const char* old_base) noexcept {
  // `old_base` is the start of the array the views point into (still alive: the other
  // head's string), so the offsets are well defined.
  const auto moved = [&](std::string_view v) -> std::string_view {
    return v.empty() ? std::string_view() : std::string_view(raw_.data() + (v.data() - old_base), v.size());
  };
  method_ = moved(method_);
  target_ = moved(target_);
  reason_ = moved(reason_);
  for (auto& h : headers_) {
    h.name = moved(h.name);
    h.value = moved(h.value);
  }
}

boost::urls::url_view http_head::target_url() const {
  if (kind_ != http_kind::request || target_.empty())
    return {};
  const boost::urls::string_view s(target_.data(), target_.size());
  // The parser admitted only targets that parse one of these two ways.
  return target_.front() == '/' ? boost::urls::parse_origin_form(s).value()
                                : boost::urls::parse_absolute_uri(s).value();
}

std::size_t http_head::header_count(std::string_view name) const noexcept {
  return static_cast<std::size_t>(std::count_if(
      headers_.begin(), headers_.end(), [&](const http_header& h) { return iequals(h.name, name); }));
}

std::vector<std::string_view> http_head::header_values(std::string_view name) const {
  std::vector<std::string_view> values;
  for (const auto& h : headers_)
    if (iequals(h.name, name))
      values.push_back(h.value);
  return values;
}

std::string http_head::header(std::string_view name) const {
  std::string joined;
  bool first = true;
  for (const auto& h : headers_) {
    if (!iequals(h.name, name))
      continue;
    if (!first)
      joined += header_separator;
    joined += h.value;
    first = false;
  }
  return joined;
}

bool http_head::header_has_token(std::string_view name, std::string_view token) const noexcept {
  for (const auto& h : headers_) {
    if (!iequals(h.name, name))
      continue;
    std::string_view list = h.value;
    while (!list.empty()) {
      const auto comma = list.find(',');
      if (iequals(trim_ows(list.substr(0, comma)), token))
        return true;
      if (comma == std::string_view::npos)
        break;
      list.remove_prefix(comma + 1);
    }
  }
  return false;
}

// ---- http_parser ----

http_parser::http_parser(http_kind kind, std::size_t max_head) : kind_(kind), max_head_(max_head) {
  head_.kind_ = kind;
}

void http_parser::reset() {
  head_ = http_head();
  head_.kind_ = kind_;
  line_begin_ = 0;
  method_ = target_ = reason_ = {};
  fields_.clear();
  seen_host_ = false;
  state_ = status::need_more;
  failure_ = {};
}

http_parser::result http_parser::fail(std::size_t consumed) noexcept {
  state_ = status::failed;
  failure_ = kind_ == http_kind::request ? error::malformed_request : error::malformed_response;
  return {state_, consumed};
}

http_parser::result http_parser::feed(std::span<const std::byte> bytes) {
  return feed(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

http_parser::result http_parser::feed(std::string_view bytes) {
  if (state_ != status::need_more)
    return {state_, 0};
  auto& raw = head_.raw_;
  std::size_t used = 0;
  while (used < bytes.size()) {
    if (raw.size() >= max_head_) { // only with a limit of 0: below, a full buffer fails at once
      state_ = status::failed;
      failure_ = error::head_too_large;
      return {state_, used};
    }
    if (raw.capacity() == 0)
      raw.reserve(std::min<std::size_t>(max_head_, 1024));
    // Take up to the end of the current line, and never past the limit.
    const auto piece = bytes.substr(used, max_head_ - raw.size());
    const auto lf = piece.find('\n');
    const auto take = lf == std::string_view::npos ? piece.size() : lf + 1;
    const auto from = raw.size();
    raw.append(piece.data(), take);
    used += take;
    if (!check_bytes(from))
      return fail(used);
    if (lf != std::string_view::npos) {
      const auto end = raw.size() - 2; // check_bytes saw the CR before the LF
      if (end == line_begin_) {
        if (line_begin_ == 0) // a head cannot start with a blank line
          return fail(used);
        finish();
        return {state_, used};
      }
      const bool ok = line_begin_ == 0 ? parse_start_line(0, end) : parse_header_line(line_begin_, end);
      if (!ok)
        return fail(used);
      line_begin_ = raw.size();
    }
    // A head this long that has not ended can only end past the limit: fail now rather
    // than wait for bytes that cannot help.
    if (raw.size() == max_head_) {
      state_ = status::failed;
      failure_ = error::head_too_large;
      return {state_, used};
    }
  }
  return {state_, used};
}

bool http_parser::check_bytes(std::size_t from) const noexcept {
  const auto& raw = head_.raw_;
  for (std::size_t i = from; i < raw.size(); ++i) {
    const char c = raw[i];
    const bool after_cr = i > 0 && raw[i - 1] == '\r';
    if (after_cr != (c == '\n')) // CR only before LF, LF only after CR
      return false;
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\r' && c != '\n') || u == 0x7F)
      return false;
  }
  return true;
}

bool http_parser::parse_start_line(std::size_t begin, std::size_t end) {
  const std::string_view line(head_.raw_.data() + begin, end - begin);
  if (kind_ == http_kind::request) {
    // method SP request-target SP HTTP-version, single spaces (RFC 9112 section 3).
    const auto sp1 = line.find(' ');
    if (sp1 == std::string_view::npos || !is_token(line.substr(0, sp1)))
      return false;
    const auto sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || sp2 == sp1 + 1)
      return false;
    if (!parse_version(line.substr(sp2 + 1), head_.minor_))
      return false;
    const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const boost::urls::string_view t(target.data(), target.size());
    // Origin-form for requests to this server, absolute-form for requests through a
    // proxy; authority-form (CONNECT) and asterisk-form (OPTIONS *) never upgrade.
    // An absolute-form target must name a host: `example.com:443` parses as a URI with
    // the scheme `example.com`, but it is the authority-form of CONNECT.
    if (target.front() == '/') {
      if (!boost::urls::parse_origin_form(t))
        return false;
    } else {
      const auto url = boost::urls::parse_absolute_uri(t);
      if (!url || url->encoded_host().empty())
        return false;
    }
    method_ = {begin, sp1};
    target_ = {begin + sp1 + 1, target.size()};
  } else {
    // HTTP-version SP status-code SP [reason-phrase] (RFC 9112 section 4). The space
    // after the code is tolerated when the reason is missing: the reason carries no
    // meaning and some servers drop both.
    if (line.size() < 12 || line[8] != ' ' || !parse_version(line.substr(0, 8), head_.minor_))
      return false;
    unsigned code = 0;
    for (std::size_t i = 9; i < 12; ++i) {
      if (line[i] < '0' || line[i] > '9')
        return false;
      code = code * 10 + static_cast<unsigned>(line[i] - '0');
    }
    // RFC 9110 section 15: codes outside 100-599 are invalid.
    if (code < 100 || code > 599)
      return false;
    if (line.size() > 12) {
      if (line[12] != ' ')
        return false;
      reason_ = {begin + 13, line.size() - 13};
    }
    head_.status_ = code;
  }
  head_.major_ = 1;
  return true;
}

bool http_parser::parse_header_line(std::size_t begin, std::size_t end) {
  const std::string_view line(head_.raw_.data() + begin, end - begin);
  // A line starting with whitespace is obsolete line folding (or, after the start line,
  // a smuggling vector); RFC 9112 section 5.2 lets a recipient reject it.
  if (is_ows(line.front()))
    return false;
  const auto colon = line.find(':');
  // No whitespace between name and colon (RFC 9112 section 5.1): the name must be a
  // token right up to the colon.
  if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
    return false;
  const auto name = line.substr(0, colon);
  // The value's characters were checked as they arrived; only the trim is left.
  const auto value = trim_ows(line.substr(colon + 1));
  if (kind_ == http_kind::request && iequals(name, "host")) {
    // RFC 9112 section 3.2: more than one Host line is a bad request.
    if (seen_host_)
      return false;
    seen_host_ = true;
  }
  const auto value_begin = value.empty() ? 0 : static_cast<std::size_t>(value.data() - head_.raw_.data());
  fields_.push_back({{begin, colon}, {value_begin, value.size()}});
  return true;
}

void http_parser::finish() {
  const auto view = [&](slice s) {
    return s.size == 0 ? std::string_view() : std::string_view(head_.raw_.data() + s.begin, s.size);
  };
  head_.method_ = view(method_);
  head_.target_ = view(target_);
  head_.reason_ = view(reason_);
  head_.headers_.clear();
  head_.headers_.reserve(fields_.size());
  for (const auto& [name, value] : fields_)
    head_.headers_.push_back({view(name), view(value)});
  state_ = status::complete;
}

} // namespace websockets
