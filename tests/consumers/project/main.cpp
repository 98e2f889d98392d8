// Uses the public API of websockets for real and checks the results: exits non-zero on
// any mismatch. Built by the consumer tests in tests/consumers/.
#include <websockets/frame.hpp>
#include <websockets/upgrade.hpp>
#include <websockets/utf8.hpp>

#include <array>
#include <cstddef>
#include <cstdio>
#include <string>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what);
  if (!ok) {
    ++failures;
  }
}

} // namespace

int main() {
  // RFC 6455 section 1.3's example handshake.
  const std::string accept = websockets::accept_key("dGhlIHNhbXBsZSBub25jZQ==");
  check(accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "accept_key of the RFC 6455 sample nonce");

  check(websockets::is_valid_utf8("h\xC3\xA9llo \xE2\x82\xAC"), "is_valid_utf8 accepts UTF-8");
  check(!websockets::is_valid_utf8("\xC0\xAF"), "is_valid_utf8 rejects an overlong form");

  websockets::frame_head head;
  head.opcode = websockets::opcode::binary;
  head.payload_size = 300;
  std::array<std::byte, websockets::max_head_size> out{};
  const std::size_t size = websockets::encode_head(head, out);
  check(size == 4 && out[0] == std::byte{0x82} && out[1] == std::byte{126} &&
            out[2] == std::byte{0x01} && out[3] == std::byte{0x2C},
        "encode_head writes a 16-bit length");

  return failures == 0 ? 0 : 1;
}
