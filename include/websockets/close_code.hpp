// Close codes: the status a WebSocket close frame carries (RFC 6455 section 7.4).
#pragma once

#include <cstdint>
#include <string_view>

namespace websockets {

/// A close status code. Any 16-bit value can be represented, because applications
/// may use the private range 4000-4999 and registered libraries 3000-3999.
enum class close_code : std::uint16_t {
  normal = 1000,              ///< The purpose of the connection has been fulfilled.
  going_away = 1001,          ///< The server is shutting down or the page is navigating away.
  protocol_error = 1002,      ///< The peer broke the framing rules.
  unsupported_data = 1003,    ///< A message type the endpoint cannot accept.
  no_status = 1005,           ///< Reported, never sent: the close frame carried no code.
  abnormal = 1006,            ///< Reported, never sent: the TCP connection dropped without a close frame.
  invalid_payload = 1007,     ///< Text that is not UTF-8, or a payload inconsistent with its type.
  policy_violation = 1008,    ///< A generic refusal, e.g. a peer that cannot keep up.
  message_too_big = 1009,     ///< A frame or message past the configured limits.
  mandatory_extension = 1010, ///< Client only: the server did not negotiate a required extension.
  internal_error = 1011,      ///< An unexpected condition in the endpoint.
  service_restart = 1012,     ///< The service is restarting.
  try_again_later = 1013,     ///< Temporarily overloaded.
  bad_gateway = 1014,         ///< A gateway received an invalid response upstream.
  tls_handshake = 1015,       ///< Reported, never sent: the TLS handshake failed.
};

/// True when `code` may appear in a close frame on the wire: 1000-1003, 1007-1014 and
/// 3000-4999. The codes 1005, 1006 and 1015 are reserved for reporting and never sent.
[[nodiscard]] constexpr bool is_sendable(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

/// Overload for the enumeration.
[[nodiscard]] constexpr bool is_sendable(close_code code) noexcept {
  return is_sendable(static_cast<std::uint16_t>(code));
}

/// A short English name for a code ("normal", "protocol error", ...), or
/// "application" / "library" / "unknown" for codes without a registered meaning.
[[nodiscard]] std::string_view describe(close_code code) noexcept;

} // namespace websockets
