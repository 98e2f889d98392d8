// Errors: the category, messages, and the answer each error gets on the wire.
#include <websockets/error.hpp>

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it
#include <set>
#include <string>

using websockets::close_code;
using websockets::error;

TEST_CASE("errors convert to std::error_code in the websockets category") {
  const std::error_code ec = error::invalid_utf8;
  CHECK(ec.category().name() == std::string{"websockets"});
  CHECK(&ec.category() == &websockets::error_category());
  CHECK(ec == error::invalid_utf8);
  CHECK(ec != error::bad_key);
  CHECK(ec.message() == "text message is not UTF-8");
  CHECK(std::error_code{} != error::invalid_utf8);
}

TEST_CASE("every error has its own readable message") {
  std::set<std::string> seen;
  const auto check_range = [&](int first, int last) {
    for (int value = first; value <= last; ++value) {
      const std::string text = make_error_code(static_cast<error>(value)).message();
      CHECK(text.find("unknown") == std::string::npos);
      CHECK(seen.insert(text).second);
    }
  };
  check_range(static_cast<int>(error::reserved_bits), static_cast<int>(error::bad_deflate_data));
  check_range(static_cast<int>(error::head_too_large), static_cast<int>(error::too_many_connections));
  check_range(static_cast<int>(error::malformed_response), static_cast<int>(error::bad_extension_response));
  check_range(static_cast<int>(error::idle_timeout), static_cast<int>(error::message_dropped));
  check_range(static_cast<int>(error::redis_unavailable), static_cast<int>(error::redis_unavailable));
  CHECK(make_error_code(static_cast<error>(9999)).message() == "unknown websockets error 9999");
}

TEST_CASE("framing errors map to the close codes RFC 6455 asks for") {
  CHECK(close_code_for(error::reserved_bits) == close_code::protocol_error);
  CHECK(close_code_for(error::unknown_opcode) == close_code::protocol_error);
  CHECK(close_code_for(error::unmasked_frame) == close_code::protocol_error);
  CHECK(close_code_for(error::bad_close_code) == close_code::protocol_error);
  CHECK(close_code_for(error::bad_close_size) == close_code::protocol_error);
  CHECK(close_code_for(error::invalid_utf8) == close_code::invalid_payload);
  CHECK(close_code_for(error::bad_close_reason) == close_code::invalid_payload);
  CHECK(close_code_for(error::frame_too_big) == close_code::message_too_big);
  CHECK(close_code_for(error::message_too_big) == close_code::message_too_big);
  CHECK(close_code_for(error::too_many_fragments) == close_code::message_too_big);
  CHECK(close_code_for(error::bad_deflate_data) == close_code::invalid_payload);
}

TEST_CASE("connection errors also compare equal to their std::errc conditions") {
  CHECK(std::error_code{error::idle_timeout} == std::errc::timed_out);
  CHECK(std::error_code{error::handshake_timeout} == std::errc::timed_out);
  CHECK(std::error_code{error::close_timeout} == std::errc::timed_out);
  CHECK(std::error_code{error::connection_dropped} == std::errc::connection_aborted);
  CHECK(std::error_code{error::not_open} == std::errc::not_connected);
  CHECK(std::error_code{error::send_queue_full} == std::errc::no_buffer_space);
  CHECK(std::error_code{error::message_dropped} == std::errc::no_buffer_space);
  CHECK(std::error_code{error::invalid_utf8} != std::errc::timed_out);
  CHECK(std::error_code{error::idle_timeout} != error::close_timeout);
}

TEST_CASE("handshake errors map to HTTP statuses") {
  CHECK(http_status_for(error::head_too_large) == 431);
  CHECK(http_status_for(error::not_upgrade) == 426);
  CHECK(http_status_for(error::bad_version) == 426);
  CHECK(http_status_for(error::forbidden) == 403);
  CHECK(http_status_for(error::not_found) == 404);
  CHECK(http_status_for(error::too_many_connections) == 503);
  CHECK(http_status_for(error::bad_key) == 400);
  CHECK(http_status_for(error::bad_method) == 400);
  CHECK(http_status_for(error::missing_host) == 400);
  CHECK(http_status_for(error::malformed_request) == 400);
}
