// Errors: every way a peer or a request can be wrong, as std::error_code values in the
// "websockets" category, each tied to the answer it gets on the wire.
#pragma once

#include <websockets/close_code.hpp>

#include <string>
#include <system_error>

namespace websockets {

/// What went wrong. Protocol errors end a connection with the close code
/// `close_code_for()` gives; handshake errors are answered with the HTTP status
/// `http_status_for()` gives (server) or end the connection attempt (client).
enum class error {
  // Framing (RFC 6455 section 5), answered with 1002 unless noted.
  reserved_bits = 1,        ///< An RSV bit set without a negotiated extension that defines it.
  unknown_opcode,           ///< Opcodes 3-7 and 11-15 are reserved.
  unmasked_frame,           ///< A client sent a frame without a mask.
  masked_frame,             ///< A server sent a masked frame.
  non_minimal_length,       ///< A payload length not encoded in the fewest bytes.
  length_out_of_range,      ///< A 64-bit payload length with its most significant bit set.
  control_frame_too_big,    ///< A ping, pong or close with more than 125 payload bytes.
  fragmented_control_frame, ///< A ping, pong or close without FIN.
  unexpected_continuation,  ///< A continuation frame with no message to continue.
  expected_continuation,    ///< A new text or binary frame inside a fragmented message.
  bad_close_size,           ///< A close payload of exactly one byte.
  bad_close_code,           ///< A close code that may not appear on the wire.
  bad_close_reason,         ///< A close reason that is not UTF-8 (1007).
  invalid_utf8,             ///< A text message that is not UTF-8 (1007).
  frame_too_big,            ///< A frame past the frame size limit (1009).
  message_too_big,          ///< A message past the message size limit (1009).
  too_many_fragments,       ///< A message in more frames than the fragment limit (1009).
  bad_deflate_data,         ///< A compressed message that does not inflate (1007).

  // Opening handshake, server side (RFC 6455 section 4.2), answered with an HTTP status.
  head_too_large = 100,     ///< The request head is past the byte limit (431).
  malformed_request,        ///< The request is not well-formed HTTP/1.1 (400).
  bad_method,               ///< The method is not GET (400).
  bad_http_version,         ///< The version is older than HTTP/1.1 (400).
  missing_host,             ///< No Host header (400).
  not_upgrade,              ///< No `Upgrade: websocket`: a plain HTTP request (426).
  missing_connection_upgrade, ///< `Connection` lacks the `upgrade` token (400).
  bad_version,              ///< `Sec-WebSocket-Version` is not 13 (426).
  bad_key,                  ///< `Sec-WebSocket-Key` is missing or not 16 bytes in base64 (400).
  forbidden,                ///< Refused by the application, e.g. its origin check (403).
  not_found,                ///< The path is not the one the server upgrades (404).
  too_many_connections,     ///< The server is at its connection limit (503).
  tls_handshake_failed,     ///< A wss:// client's TLS handshake failed: no HTTP answer is possible.

  // Opening handshake, client side (RFC 6455 section 4.1).
  malformed_response = 200, ///< The response is not well-formed HTTP/1.1.
  bad_status,               ///< The status is not 101 Switching Protocols.
  bad_upgrade_response,     ///< The response lacks `Upgrade: websocket` or `Connection: upgrade`.
  bad_accept,               ///< `Sec-WebSocket-Accept` does not match the key sent.
  unrequested_extension,    ///< The server chose an extension the client did not offer.
  unrequested_subprotocol,  ///< The server chose a subprotocol the client did not offer.
  bad_extension_response,   ///< The server's extension parameters break RFC 7692 or the offer.

  // A connection's life. Each also compares equal to the std::errc condition named, so
  // code written against `std::errc::timed_out` keeps working.
  idle_timeout = 300,       ///< No traffic, not even a pong, within the idle timeout (timed_out).
  handshake_timeout,        ///< The opening handshake did not complete in time (timed_out).
  close_timeout,            ///< The peer did not answer our close in time (timed_out).
  connection_dropped,       ///< TCP ended without a closing handshake (connection_aborted).
  not_open,                 ///< The socket is closed or closing: nothing more is sent (not_connected).
  send_queue_full,          ///< A slow peer's queue passed max_queued_bytes: closed with 1008 (no_buffer_space).
  message_dropped,          ///< A message was dropped for a slow peer, as its policy says (no_buffer_space).

  // Server level.
  redis_unavailable = 400,  ///< The Redis server that links instances is unreachable: broadcasts stay local until it is back.
};

/// The category of every `websockets::error`; its name is "websockets". The connection
/// errors map to `std::errc` conditions through `default_error_condition`.
[[nodiscard]] const std::error_category& error_category() noexcept;

/// Makes `e` an `std::error_code` (found by argument-dependent lookup).
[[nodiscard]] std::error_code make_error_code(error e) noexcept;

/// The close code a protocol error is answered with (1002, 1007 or 1009), or
/// `close_code::protocol_error` for errors that are not about framing.
[[nodiscard]] close_code close_code_for(error e) noexcept;

/// The HTTP status a server answers a handshake error with (400, 403, 404, 426, 431,
/// 503), or 400 for errors that are not about a request.
[[nodiscard]] unsigned http_status_for(error e) noexcept;

} // namespace websockets

template <>
struct std::is_error_code_enum<websockets::error> : std::true_type {};
