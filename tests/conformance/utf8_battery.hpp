// The UTF-8 battery of Autobahn's cases 6.5 to 6.23: Markus Kuhn's decoder stress test
// (https://www.cl.cam.ac.uk/~mgk25/ucs/examples/UTF-8-test.txt), with Autobahn's verdicts.
#pragma once

#include <string>
#include <vector>

namespace conformance {

struct utf8_sample {
  std::string bytes;
  bool valid = false;
};

struct utf8_group {
  std::string title;
  std::vector<utf8_sample> samples;
};

/// The groups in Autobahn's order: the first is case 6.5, its samples 6.5.1, 6.5.2, ...
[[nodiscard]] std::vector<utf8_group> utf8_battery();

} // namespace conformance
