#include <websockets/close_code.hpp>

namespace websockets {

std::string_view describe(close_code code) noexcept {
  switch (code) {
  case close_code::normal: return "normal";
  case close_code::going_away: return "going away";
  case close_code::protocol_error: return "protocol error";
  case close_code::unsupported_data: return "unsupported data";
  case close_code::no_status: return "no status";
  case close_code::abnormal: return "abnormal closure";
  case close_code::invalid_payload: return "invalid payload";
  case close_code::policy_violation: return "policy violation";
  case close_code::message_too_big: return "message too big";
  case close_code::mandatory_extension: return "mandatory extension";
  case close_code::internal_error: return "internal error";
  case close_code::service_restart: return "service restart";
  case close_code::try_again_later: return "try again later";
  case close_code::bad_gateway: return "bad gateway";
  case close_code::tls_handshake: return "TLS handshake failure";
  }
  const auto value = static_cast<std::uint16_t>(code);
  if (value >= 4000 && value <= 4999) return "application";
  if (value >= 3000 && value <= 3999) return "library";
  return "unknown";
}

} // namespace websockets
