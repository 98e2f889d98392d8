// The opening handshake (RFC 6455 section 4), sans I/O: checking an upgrade request and
// answering it (server), making a request and checking the answer (client). Messages
// are read with `http_parser` and built as strings the caller writes.
#pragma once

#include <websockets/error.hpp>
#include <websockets/http.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace websockets {

/// One element of a `Sec-WebSocket-Extensions` list: an extension and its parameters
/// (RFC 6455 section 9.1), quoted values unquoted.
struct extension {
  /// A parameter: `name` or `name=value`.
  struct parameter {
    std::string name;                 ///< A token, as sent.
    std::optional<std::string> value; ///< None for a bare name.
  };
  std::string name;                  ///< A token, as sent; compare it with `iequals`.
  std::vector<parameter> parameters; ///< In the order sent.
};

/// Parses a `Sec-WebSocket-Extensions` value (all of its lines joined with commas):
/// `name *(; param[=token|quoted-string])` elements separated by commas, empty elements
/// ignored. None when it is malformed, including a quoted value that does not unquote
/// to a token, as RFC 6455 requires.
[[nodiscard]] std::optional<std::vector<extension>> parse_extensions(std::string_view list);

/// The only protocol version RFC 6455 defines, as `Sec-WebSocket-Version` carries it.
inline constexpr std::string_view websocket_version = "13";

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`:
/// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). It proves the server
/// read this handshake rather than replaying another.
[[nodiscard]] std::string accept_key(std::string_view key);

// ---- Server side ----

// Declared ahead for upgrade_request's friendship; documented below.
struct upgrade_check;
[[nodiscard]] upgrade_check check_upgrade(http_head request);

/// An upgrade request: the request itself and, when it passed `check_upgrade`, what
/// the client asked for. Owns copies of everything, so it outlives the parser.
class upgrade_request {
public:
  /// The whole request, for what the handshake does not interpret (path, cookies,
  /// authorization).
  [[nodiscard]] const http_head& head() const noexcept { return head_; }

  /// The client's `Sec-WebSocket-Key`, as sent: 24 base64 characters.
  [[nodiscard]] std::string_view key() const noexcept { return key_; }

  /// The subprotocols the client offers, in its order of preference; the server may
  /// pick one for `accept_options::subprotocol`.
  [[nodiscard]] std::span<const std::string> subprotocols() const noexcept { return subprotocols_; }

  /// The `Sec-WebSocket-Extensions` offer, all lines joined; empty when none. Left
  /// unparsed here: each extension reads its own parameters.
  [[nodiscard]] std::string_view extensions() const noexcept { return extensions_; }

  /// The `Origin` header, which browsers always send: a server that serves browsers
  /// checks it against the origins it trusts, since the same-origin policy does not
  /// protect WebSocket connections. None when absent (non-browser clients).
  [[nodiscard]] const std::optional<std::string>& origin() const noexcept { return origin_; }

  /// The value of the cookie `name` from the `Cookie` header lines (RFC 6265 section
  /// 5.4: `name=value` pairs separated by `;`), quotes removed; none when absent.
  [[nodiscard]] std::optional<std::string> cookie(std::string_view name) const;

private:
  friend upgrade_check check_upgrade(http_head request);

  http_head head_;
  std::string key_;
  std::vector<std::string> subprotocols_;
  std::string extensions_;
  std::optional<std::string> origin_;
};

/// The outcome of `check_upgrade`.
struct upgrade_check {
  /// The first rule the request breaks; `error{}` when it may be upgraded. Answer with
  /// `rejection_response(failure)`, except that a server may hand `error::not_upgrade`
  /// (a plain HTTP request) to an HTTP handler instead.
  websockets::error failure{};
  /// The request; its handshake fields are set only when `failure` is `error{}`.
  upgrade_request request;
  /// True when the request may be upgraded.
  explicit operator bool() const noexcept { return failure == websockets::error{}; }
};

/// Checks a request against RFC 6455 section 4.2.1, stopping at the first rule broken,
/// in this order:
/// - the method is GET (`error::bad_method`);
/// - the version is HTTP/1.1 or later (`error::bad_http_version`);
/// - a non-empty `Host` is present (`error::missing_host`);
/// - `Upgrade` lists `websocket`, in any case (`error::not_upgrade`, 426);
/// - `Connection` lists `upgrade`, in any case (`error::missing_connection_upgrade`);
/// - `Sec-WebSocket-Version` is exactly `13` (`error::bad_version`, 426);
/// - `Sec-WebSocket-Key` appears once and is base64 of 16 bytes (`error::bad_key`);
/// - `Sec-WebSocket-Protocol`, if present, is a list of tokens (`error::malformed_request`).
upgrade_check check_upgrade(http_head request);

/// What a server's 101 response carries beyond the fields RFC 6455 requires.
struct accept_options {
  /// The chosen subprotocol, one of `upgrade_request::subprotocols()`; empty for none.
  std::string_view subprotocol{};
  /// The accepted extensions with their parameters; empty for none.
  std::string_view extensions{};
  /// More header lines, such as `Set-Cookie`. They may not repeat the fields the
  /// handshake writes itself.
  std::span<const http_header> extra_headers{};
};

/// The `101 Switching Protocols` response to a request with `key`: `Upgrade`,
/// `Connection`, `Sec-WebSocket-Accept`, then the options' fields. Throws
/// `std::invalid_argument` for a field that would not be valid HTTP (a name that is
/// not a token, a value with a line break), so callers cannot split the response.
[[nodiscard]] std::string accept_response(std::string_view key, const accept_options& options = {});

/// A response refusing a handshake with `status` (300 to 599): `body` as plain text
/// (the reason phrase when empty), `Content-Length`, and `Connection: close` since
/// the connection cannot be reused for anything else. A 426 also carries `Upgrade:
/// websocket` and `Sec-WebSocket-Version: 13`, which tell the client what would
/// work. Throws `std::invalid_argument` for a status out of range or a bad extra field.
[[nodiscard]] std::string rejection_response(unsigned status, std::string_view body = {},
                                             std::span<const http_header> extra_headers = {});

/// The rejection for a handshake error: `http_status_for(failure)` with the error's
/// message as the body.
[[nodiscard]] std::string rejection_response(websockets::error failure);

// ---- Client side ----

/// What a client's handshake request carries beyond the fields RFC 6455 requires.
struct client_options {
  /// Sent as `Origin` when not empty. Browsers always send it; other clients send it
  /// when a server insists.
  std::string origin{};
  /// Subprotocols to offer, in order of preference; each a token, no repeats.
  std::vector<std::string> subprotocols{};
  /// The extension offer, such as `permessage-deflate; client_max_window_bits`; empty
  /// for none.
  std::string extensions{};
  /// More header lines, such as `Authorization` or `Cookie`. Read only while the
  /// handshake is made; they may not repeat the fields the handshake writes itself.
  std::vector<http_header> extra_headers{};
};

/// The outcome of `client_handshake::check`.
struct response_check {
  /// The first rule the response breaks; `error{}` when the connection is open.
  websockets::error failure{};
  /// The subprotocol the server chose; empty for none.
  std::string subprotocol;
  /// The extensions the server accepted, with their parameters; empty for none.
  std::string extensions;
  /// True when the handshake succeeded.
  explicit operator bool() const noexcept { return failure == websockets::error{}; }
};

/// One client opening handshake: a fresh key, the request to send, and the check of
/// the server's response against what was sent.
class client_handshake {
public:
  /// Prepares a handshake for `uri`: `ws://` or `wss://` (`http://` and `https://`
  /// are taken as their WebSocket twins, as browsers do), a host, an optional port,
  /// path and query; no fragment (RFC 6455 section 3). User information is not sent.
  /// Throws `std::invalid_argument` for any other URI, or for options that would not
  /// make valid HTTP.
  explicit client_handshake(std::string_view uri, const client_options& options = {});

  /// The request to send: `GET`, `Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`,
  /// `Sec-WebSocket-Version`, then the options' fields.
  [[nodiscard]] std::string_view request() const noexcept { return request_; }

  /// The key sent: 16 random bytes in base64, new for every handshake.
  [[nodiscard]] std::string_view key() const noexcept { return key_; }

  /// The host to connect to, without the brackets of an IPv6 literal.
  [[nodiscard]] std::string_view host() const noexcept { return host_; }

  /// The port to connect to: the URI's, else 80 (`ws`) or 443 (`wss`).
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

  /// True for `wss`: the connection needs TLS.
  [[nodiscard]] bool secure() const noexcept { return secure_; }

  /// The request target: path and query, percent-encoded.
  [[nodiscard]] std::string_view target() const noexcept { return target_; }

  /// Checks the server's response head (read by an `http_parser` for responses)
  /// against RFC 6455 section 4.1, stopping at the first rule broken, in this order:
  /// - the status is 101 (`error::bad_status`);
  /// - `Upgrade` lists `websocket` and `Connection` lists `upgrade`
  ///   (`error::bad_upgrade_response`);
  /// - `Sec-WebSocket-Accept` appears once and matches `accept_key(key())`
  ///   (`error::bad_accept`);
  /// - every extension in `Sec-WebSocket-Extensions` was offered
  ///   (`error::unrequested_extension`);
  /// - `Sec-WebSocket-Protocol`, if present, is one subprotocol that was offered
  ///   (`error::unrequested_subprotocol`).
  [[nodiscard]] response_check check(const http_head& response) const;

private:
  std::string key_;
  std::string request_;
  std::string host_;
  std::string target_;
  std::uint16_t port_ = 0;
  bool secure_ = false;
  std::vector<std::string> subprotocols_;
  std::vector<std::string> extension_names_;
};

} // namespace websockets
