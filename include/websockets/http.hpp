// HTTP/1.1 message heads (RFC 9112): just enough HTTP to carry the opening handshake.
// The parser reads a request or response head from bytes in any split and stops at the
// blank line, so whatever follows (a body, or frames sent right behind the request)
// stays with the caller. It is strict: the handshake is the one place a peer can feed
// this library free-form text, and anything a lenient reader would guess at is refused.
#pragma once

#include <websockets/error.hpp>

#include <boost/url/url_view.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace websockets {

/// Which message a head starts: servers read requests, clients read responses.
enum class http_kind : std::uint8_t { request, response };

/// One header line, as it appeared: the name in its original case, the value with the
/// optional whitespace around it removed.
struct http_header {
  std::string_view name;  ///< A token; compare it with `iequals`.
  std::string_view value; ///< Visible characters, spaces and tabs; may be empty.
};

/// True when `a` and `b` are equal ignoring ASCII case, as header names and most
/// header tokens compare.
[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept;

/// True when `s` is an RFC 9110 token: one or more of the characters allowed in header
/// names, methods and list elements such as `websocket`.
[[nodiscard]] bool is_token(std::string_view s) noexcept;

/// A parsed message head: the start line and the header lines, in order. It owns its
/// bytes; every view it hands out points into it and lives as long as it does (copies
/// and moves carry their own bytes).
class http_head {
public:
  /// An empty head: no start line, no headers.
  http_head() = default;
  /// Copies and moves re-point every view at the new head's own bytes (a short string
  /// moves by copying its buffer, so even a move needs this); a moved-from head is empty.
  http_head(const http_head& other);
  /// See the copy constructor.
  http_head(http_head&& other) noexcept;
  /// See the copy constructor.
  http_head& operator=(const http_head& other);
  /// See the copy constructor.
  http_head& operator=(http_head&& other) noexcept;
  ~http_head() = default;

  /// Whether this is a request or a response.
  [[nodiscard]] http_kind kind() const noexcept { return kind_; }

  /// The request method, case-sensitive as RFC 9110 says (`GET`, not `get`); empty
  /// for a response.
  [[nodiscard]] std::string_view method() const noexcept { return method_; }

  /// The request target exactly as sent: origin-form (`/chat?room=1`) or absolute-form
  /// (`http://example.com/chat`); empty for a response.
  [[nodiscard]] std::string_view target() const noexcept { return target_; }

  /// The request target parsed as a URL, for its path and query (`path()`,
  /// `encoded_path()`, `params()`, ...). For a response, an empty URL. The view points
  /// into this head.
  [[nodiscard]] boost::urls::url_view target_url() const;

  /// The `x` of `HTTP/x.y`; always 1, since only HTTP/1.x is read.
  [[nodiscard]] unsigned version_major() const noexcept { return major_; }

  /// The `y` of `HTTP/x.y`: 0 or 1 in practice, and any digit is accepted so the
  /// handshake can answer an old version itself.
  [[nodiscard]] unsigned version_minor() const noexcept { return minor_; }

  /// The response status code (100 to 599); 0 for a request.
  [[nodiscard]] unsigned status() const noexcept { return status_; }

  /// The response reason phrase, possibly empty; meaningless by design (RFC 9112
  /// section 4), it is kept only for messages to humans.
  [[nodiscard]] std::string_view reason() const noexcept { return reason_; }

  /// Every header line, in the order received.
  [[nodiscard]] std::span<const http_header> headers() const noexcept { return headers_; }

  /// How many header lines are named `name` (ignoring case). Rules such as "exactly one
  /// `Sec-WebSocket-Key`" need the count, not the joined value.
  [[nodiscard]] std::size_t header_count(std::string_view name) const noexcept;

  /// True when at least one header line is named `name` (ignoring case).
  [[nodiscard]] bool has_header(std::string_view name) const noexcept {
    return header_count(name) != 0;
  }

  /// The values of every line named `name` (ignoring case), in order.
  [[nodiscard]] std::vector<std::string_view> header_values(std::string_view name) const;

  /// The value of the header `name` (ignoring case); when it appears on several lines,
  /// their values joined with ", ", which RFC 9110 section 5.3 makes equivalent for
  /// list-valued fields. Empty when there is no such header (see `has_header`).
  [[nodiscard]] std::string header(std::string_view name) const;

  /// True when the comma-separated list in the header `name` contains `token`, across
  /// all lines of that name, ignoring ASCII case and the whitespace around elements
  /// (`Connection: keep-alive, Upgrade` contains `upgrade`).
  [[nodiscard]] bool header_has_token(std::string_view name, std::string_view token) const noexcept;

  /// The raw head, start line to blank line included.
  [[nodiscard]] std::string_view raw() const noexcept { return raw_; }

private:
  friend class http_parser;
  void rebase(const char* old_base) noexcept;
  void clear() noexcept;

  std::string raw_;
  http_kind kind_ = http_kind::request;
  std::string_view method_;
  std::string_view target_;
  std::string_view reason_;
  unsigned major_ = 0;
  unsigned minor_ = 0;
  unsigned status_ = 0;
  std::vector<http_header> headers_;
};

/// The default bound on a message head: as much as common servers allow, far more than
/// an honest handshake needs.
inline constexpr std::size_t default_max_http_head = 8 * 1024;

/// Reads one message head from bytes in any split. Lines are checked as they complete
/// and the byte limit as bytes arrive, so a bad or oversized head fails as soon as it
/// shows, without waiting for the rest.
///
/// Refused as malformed (`error::malformed_request` or `error::malformed_response`):
/// line endings other than CRLF, control characters, a method that is not a token, a
/// target that is neither origin-form nor absolute-form, a version other than
/// `HTTP/1.x`, a header name that is not a token or is followed by whitespace before
/// the colon, obsolete line folding, and more than one `Host` line in a request.
class http_parser {
public:
  /// What `feed` did.
  enum class status : std::uint8_t {
    need_more, ///< All the bytes were taken and the head is not complete yet.
    complete,  ///< The head ended; `head()` has it.
    failed,    ///< The head is bad; `failure()` says why.
  };

  /// The outcome of `feed`.
  struct result {
    status state;          ///< Where the parser is now.
    std::size_t consumed;  ///< Bytes of the input taken; after `complete`, the rest is not the head's.
  };

  /// A parser for one head of `kind`, which fails with `error::head_too_large` once the
  /// head passes `max_head` bytes (blank line included).
  explicit http_parser(http_kind kind, std::size_t max_head = default_max_http_head);

  /// Takes bytes up to the end of the head. Once complete or failed, takes nothing.
  result feed(std::string_view bytes);

  /// Same, for bytes.
  result feed(std::span<const std::byte> bytes);

  /// Where the parser is.
  [[nodiscard]] status state() const noexcept { return state_; }

  /// Why the head was refused, once `failed`.
  [[nodiscard]] websockets::error failure() const noexcept { return failure_; }

  /// The head, once `complete`.
  [[nodiscard]] const http_head& head() const noexcept { return head_; }

  /// Moves the head out, once `complete`.
  [[nodiscard]] http_head take_head() noexcept { return std::move(head_); }

  /// Starts over for a new head of the same kind.
  void reset();

private:
  // Where a piece of the head lies in its bytes. The bytes may move while they grow,
  // so the views are made only when the head is complete.
  struct slice {
    std::size_t begin = 0;
    std::size_t size = 0;
  };

  result fail(std::size_t consumed) noexcept;
  bool check_bytes(std::size_t from) const noexcept;
  bool parse_start_line(std::size_t begin, std::size_t end);
  bool parse_header_line(std::size_t begin, std::size_t end);
  void finish();

  http_head head_;
  http_kind kind_;
  std::size_t max_head_;
  std::size_t line_begin_ = 0;
  slice method_;
  slice target_;
  slice reason_;
  std::vector<std::pair<slice, slice>> fields_;
  bool seen_host_ = false;
  status state_ = status::need_more;
  websockets::error failure_{};
};

} // namespace websockets
