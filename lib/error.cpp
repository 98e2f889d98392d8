#include <websockets/error.hpp>

#include <string>

namespace websockets {
namespace {

const char* message_of(error e) noexcept {
  switch (e) {
  case error::reserved_bits: return "reserved bit set without a negotiated extension";
  case error::unknown_opcode: return "reserved opcode";
  case error::unmasked_frame: return "client frame is not masked";
  case error::masked_frame: return "server frame is masked";
  case error::non_minimal_length: return "payload length not in its shortest encoding";
  case error::length_out_of_range: return "64-bit payload length has its top bit set";
  case error::control_frame_too_big: return "control frame payload longer than 125 bytes";
  case error::fragmented_control_frame: return "fragmented control frame";
  case error::unexpected_continuation: return "continuation frame with no message to continue";
  case error::expected_continuation: return "new data frame inside a fragmented message";
  case error::bad_close_size: return "close frame payload of one byte";
  case error::bad_close_code: return "close code not allowed on the wire";
  case error::bad_close_reason: return "close reason is not UTF-8";
  case error::invalid_utf8: return "text message is not UTF-8";
  case error::frame_too_big: return "frame larger than the frame size limit";
  case error::message_too_big: return "message larger than the message size limit";
  case error::too_many_fragments: return "message in more fragments than the limit";
  case error::bad_deflate_data: return "compressed message does not inflate";
  case error::head_too_large: return "request head larger than the limit";
  case error::malformed_request: return "malformed HTTP request";
  case error::bad_method: return "upgrade request method is not GET";
  case error::bad_http_version: return "upgrade request is older than HTTP/1.1";
  case error::missing_host: return "upgrade request has no Host header";
  case error::not_upgrade: return "request does not ask to upgrade to websocket";
  case error::missing_connection_upgrade: return "Connection header lacks the upgrade token";
  case error::bad_version: return "Sec-WebSocket-Version is not 13";
  case error::bad_key: return "Sec-WebSocket-Key is missing or not 16 bytes in base64";
  case error::forbidden: return "upgrade refused";
  case error::not_found: return "no WebSocket endpoint at this path";
  case error::too_many_connections: return "connection limit reached";
  case error::tls_handshake_failed: return "TLS handshake failed";
  case error::malformed_response: return "malformed HTTP response";
  case error::bad_status: return "handshake response status is not 101";
  case error::bad_upgrade_response: return "handshake response lacks Upgrade: websocket or Connection: upgrade";
  case error::bad_accept: return "Sec-WebSocket-Accept does not match the key";
  case error::unrequested_extension: return "server chose an extension that was not offered";
  case error::unrequested_subprotocol: return "server chose a subprotocol that was not offered";
  case error::bad_extension_response: return "server's extension parameters are invalid or were not offered";
  case error::idle_timeout: return "no traffic within the idle timeout";
  case error::handshake_timeout: return "opening handshake timed out";
  case error::close_timeout: return "peer did not answer the close in time";
  case error::connection_dropped: return "connection dropped without a closing handshake";
  case error::not_open: return "socket is not open";
  case error::send_queue_full: return "send queue past its limit: socket closed";
  case error::message_dropped: return "message dropped: send queue past its limit";
  case error::redis_unavailable: return "Redis server unavailable: broadcasts reach this instance's peers only";
  }
  return nullptr;
}

class websockets_category final : public std::error_category {
public:
  const char* name() const noexcept override { return "websockets"; }
  std::string message(int value) const override {
    const char* text = message_of(static_cast<error>(value));
    return text ? text : "unknown websockets error " + std::to_string(value);
  }
  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<error>(value)) {
    case error::idle_timeout:
    case error::handshake_timeout:
    case error::close_timeout: return std::errc::timed_out;
    case error::connection_dropped: return std::errc::connection_aborted;
    case error::not_open: return std::errc::not_connected;
    case error::send_queue_full:
    case error::message_dropped: return std::errc::no_buffer_space;
    default: return {value, *this};
    }
  }
};

} // namespace

const std::error_category& error_category() noexcept {
  static const websockets_category category;
  return category;
}

std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

close_code close_code_for(error e) noexcept {
  switch (e) {
  case error::bad_close_reason:
  case error::invalid_utf8:
  case error::bad_deflate_data:
    return close_code::invalid_payload;
  case error::frame_too_big:
  case error::message_too_big:
  case error::too_many_fragments:
    return close_code::message_too_big;
  default:
    return close_code::protocol_error;
  }
}

unsigned http_status_for(error e) noexcept {
  switch (e) {
  case error::head_too_large: return 431;
  case error::not_upgrade:
  case error::bad_version: return 426;
  case error::forbidden: return 403;
  case error::not_found: return 404;
  case error::too_many_connections: return 503;
  default: return 400;
  }
}

} // namespace websockets
