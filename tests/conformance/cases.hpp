// The case table: Autobahn|Testsuite's sections 1 to 10 (no 8: Autobahn has none), with
// its case numbers, plus a few cases of our own, numbered after Autobahn's in the same
// section (README.md lists them).
#pragma once

#include "session.hpp"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace conformance {

struct test_case {
  std::string id;    ///< "6.4.1"; variants of a case add a suffix: "6.12.3-bytes"
  std::string title; ///< what is sent and what must come back
  std::function<void(session&)> run;
  bool slow = false; ///< megabytes of payload: more patience
};

[[nodiscard]] std::vector<test_case> all_cases();

/// The family (Autobahn section) of a case id: "6" for "6.4.1".
[[nodiscard]] std::string family_of(std::string_view id);

/// The section's name: "UTF-8 handling" for "6".
[[nodiscard]] std::string_view family_title(std::string_view family);

} // namespace conformance
