// The case table: Autobahn|Testsuite's sections 1 to 10 (no 8: Autobahn has none), with
// its case numbers, plus a few cases of our own, numbered after Autobahn's in the same
// section (README.md lists them).
#pragma once

#include "session.hpp"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conformance {

struct test_case {
  std::string id;    ///< "6.4.1"; variants of a case add a suffix: "6.12.3-bytes"
  std::string title; ///< what is sent and what must come back
  std::function<void(session&)> run;
  bool slow = false; ///< megabytes of payload: more patience
  /// The Sec-WebSocket-Extensions offer of its handshake (permessage-deflate), if any.
  std::optional<std::string> offer{};
};

/// How the suite runs: against `echo`, or against `echo --deflate` with every case's
/// handshake offering permessage-deflate.
struct suite_mode {
  bool deflate = false;
};

/// The offer of deflate mode, where a case names none of its own.
inline constexpr std::string_view default_offer = "permessage-deflate; client_max_window_bits";

/// The cases of `mode`: families 1 to 10 in both (3.4 expects 1007 with deflate: its
/// RSV1 makes "Hello, world!" compressed data, not valid deflate), family 12's
/// compression cases only with deflate.
[[nodiscard]] std::vector<test_case> all_cases(suite_mode mode);

/// The family (Autobahn section) of a case id: "6" for "6.4.1".
[[nodiscard]] std::string family_of(std::string_view id);

/// The section's name: "UTF-8 handling" for "6".
[[nodiscard]] std::string_view family_title(std::string_view family);

} // namespace conformance
