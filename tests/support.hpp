// Shared by the test programs: byte vectors written compactly, and the RFC samples.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string_view>
#include <vector>

namespace test_support {

using bytes = std::vector<std::byte>;

/// Bytes from small integers: `of({0x81, 0x05})`.
inline bytes of(std::initializer_list<unsigned> values) {
  bytes out;
  for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

/// The bytes of a string.
inline bytes text(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

/// The opening handshake request of RFC 6455 section 1.2, with the CRLFs HTTP requires.
inline constexpr std::string_view rfc_request =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

} // namespace test_support
