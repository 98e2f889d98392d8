// Close codes: which may be sent, and their names.
#include <websockets/close_code.hpp>

#include <doctest/doctest.h>

using websockets::close_code;
using websockets::is_sendable;

TEST_CASE("exactly 1000-1003, 1007-1014 and 3000-4999 may be sent (RFC 6455 7.4)") {
  for (unsigned code = 0; code <= 0xFFFF; ++code) {
    const bool expected = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                          (code >= 3000 && code <= 4999);
    REQUIRE(is_sendable(static_cast<std::uint16_t>(code)) == expected);
  }
  CHECK_FALSE(is_sendable(close_code::no_status));
  CHECK_FALSE(is_sendable(close_code::abnormal));
  CHECK_FALSE(is_sendable(close_code::tls_handshake));
  CHECK(is_sendable(close_code::normal));
  static_assert(is_sendable(close_code::message_too_big));
}

TEST_CASE("codes describe themselves") {
  CHECK(describe(close_code::normal) == "normal");
  CHECK(describe(close_code::protocol_error) == "protocol error");
  CHECK(describe(close_code::message_too_big) == "message too big");
  CHECK(describe(static_cast<close_code>(4001)) == "application");
  CHECK(describe(static_cast<close_code>(3001)) == "library");
  CHECK(describe(static_cast<close_code>(1004)) == "unknown");
}
