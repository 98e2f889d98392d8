// Frame heads and masking: the RFC 6455 section 5.7 examples byte for byte, length
// encoding at every boundary, the length errors, and masking against a bytewise
// reference at every offset and alignment.
#include <websockets/frame.hpp>

#include <doctest/doctest.h>

#include "support.hpp"

#include <cstdint>
#include <initializer_list>
#include <random>
#include <vector>

using namespace websockets;

namespace {

using test_support::bytes;
using test_support::of;
using status = head_decode_result::status;

bytes encode(const frame_head& head) {
  std::array<std::byte, max_head_size> buffer{};
  const std::size_t size = encode_head(head, buffer);
  REQUIRE(size == head_size(head));
  return {buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(size)};
}

frame_head make(opcode op, std::uint64_t size, bool fin = true) {
  frame_head head;
  head.opcode = op;
  head.payload_size = size;
  head.fin = fin;
  return head;
}

frame_head masked(frame_head head, mask_key key) {
  head.masked = true;
  head.key = key;
  return head;
}

constexpr mask_key rfc_key{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};

void check_same(const frame_head& a, const frame_head& b) {
  CHECK(a.fin == b.fin);
  CHECK(a.rsv1 == b.rsv1);
  CHECK(a.rsv2 == b.rsv2);
  CHECK(a.rsv3 == b.rsv3);
  CHECK(a.opcode == b.opcode);
  CHECK(a.masked == b.masked);
  if (a.masked) CHECK(a.key == b.key);
  CHECK(a.payload_size == b.payload_size);
}

// Decodes `wire` whole, and checks that every proper prefix asks for more.
frame_head decode_whole(const bytes& wire) {
  for (std::size_t n = 0; n < wire.size(); ++n)
    REQUIRE(decode_head(std::span{wire.data(), n}).state == status::need_more);
  const auto result = decode_head(wire);
  REQUIRE(result.state == status::complete);
  CHECK(result.size == wire.size());
  return result.head;
}

void reference_mask(std::span<std::byte> payload, mask_key key, std::uint64_t offset) {
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] ^= key[(offset + i) % 4];
}

} // namespace

TEST_CASE("RFC 6455 5.7 heads encode byte for byte") {
  CHECK(encode(make(opcode::text, 5)) == of({0x81, 0x05}));
  CHECK(encode(masked(make(opcode::text, 5), rfc_key)) == of({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d}));
  CHECK(encode(make(opcode::text, 3, false)) == of({0x01, 0x03}));
  CHECK(encode(make(opcode::continuation, 2)) == of({0x80, 0x02}));
  CHECK(encode(make(opcode::ping, 5)) == of({0x89, 0x05}));
  CHECK(encode(masked(make(opcode::pong, 5), rfc_key)) == of({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d}));
  CHECK(encode(make(opcode::binary, 256)) == of({0x82, 0x7E, 0x01, 0x00}));
  CHECK(encode(make(opcode::binary, 65536)) ==
        of({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
}

TEST_CASE("RFC 6455 5.7 heads decode") {
  check_same(decode_whole(of({0x81, 0x05})), make(opcode::text, 5));
  check_same(decode_whole(of({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d})),
             masked(make(opcode::text, 5), rfc_key));
  check_same(decode_whole(of({0x01, 0x03})), make(opcode::text, 3, false));
  check_same(decode_whole(of({0x80, 0x02})), make(opcode::continuation, 2));
  check_same(decode_whole(of({0x89, 0x05})), make(opcode::ping, 5));
  check_same(decode_whole(of({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d})),
             masked(make(opcode::pong, 5), rfc_key));
  check_same(decode_whole(of({0x82, 0x7E, 0x01, 0x00})), make(opcode::binary, 256));
  check_same(decode_whole(of({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00})),
             make(opcode::binary, 65536));
}

TEST_CASE("decode_head reads only the head and reports its size") {
  // The masked "Hello" frame: the payload after the head is not the head's business.
  const bytes wire = of({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  const auto result = decode_head(wire);
  REQUIRE(result.state == status::complete);
  CHECK(result.size == 6);
  CHECK(result.head.payload_size == 5);
}

TEST_CASE("the RFC's masked Hello payload") {
  const bytes hello = of({0x48, 0x65, 0x6c, 0x6c, 0x6f});
  const bytes wire = of({0x7f, 0x9f, 0x4d, 0x51, 0x58});
  bytes out(5);
  copy_masked(hello, out, rfc_key);
  CHECK(out == wire);
  bytes in_place = wire;
  apply_mask(in_place, rfc_key);
  CHECK(in_place == hello);
}

TEST_CASE("head round-trips at every length boundary, every flag and both mask states") {
  const std::uint64_t sizes[] = {0,      1,       125,           126,
                                 127,    65535,   65536,         (1ULL << 32) - 1,
                                 1ULL << 32,      (1ULL << 63) - 1};
  const opcode ops[] = {opcode::continuation, opcode::text, opcode::binary,
                        opcode::close, opcode::ping, opcode::pong};
  for (std::uint64_t size : sizes) {
    for (opcode op : ops) {
      for (unsigned flags = 0; flags < 32; ++flags) {
        frame_head head = make(op, size, (flags & 1) != 0);
        head.rsv1 = (flags & 2) != 0;
        head.rsv2 = (flags & 4) != 0;
        head.rsv3 = (flags & 8) != 0;
        if ((flags & 16) != 0) head = masked(head, mask_key{std::byte{1}, std::byte{0x80}, std::byte{0xff}, std::byte{0x7f}});
        CAPTURE(size);
        CAPTURE(flags);
        const bytes wire = encode(head);
        const std::size_t length_bytes = size < 126 ? 0 : size <= 0xFFFF ? 2 : 8;
        CHECK(wire.size() == 2 + length_bytes + (head.masked ? 4 : 0));
        check_same(decode_whole(wire), head);
      }
    }
  }
}

TEST_CASE("lengths are written in network byte order") {
  CHECK(encode(make(opcode::binary, 0x1234)) == of({0x82, 0x7E, 0x12, 0x34}));
  CHECK(encode(make(opcode::binary, 0x0102030405060708ULL)) ==
        of({0x82, 0x7F, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}));
  CHECK(encode(make(opcode::binary, (1ULL << 63) - 1)) ==
        of({0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));
  CHECK(encode(make(opcode::binary, 125)) == of({0x82, 0x7D}));
  CHECK(encode(make(opcode::binary, 126)) == of({0x82, 0x7E, 0x00, 0x7E}));
  CHECK(encode(make(opcode::binary, 65535)) == of({0x82, 0x7E, 0xFF, 0xFF}));
}

TEST_CASE("a 16-bit length below 126 is not minimal") {
  for (unsigned value : {0u, 1u, 125u}) {
    CAPTURE(value);
    const auto result = decode_head(of({0x82, 0x7E, 0x00, value}));
    CHECK(result.state == status::invalid);
    CHECK(result.failure == error::non_minimal_length);
  }
  CHECK(decode_head(of({0x82, 0x7E, 0x00, 126})).state == status::complete);
}

TEST_CASE("a 64-bit length up to 0xFFFF is not minimal") {
  for (std::uint64_t value : {0ULL, 125ULL, 126ULL, 0xFFFFULL}) {
    CAPTURE(value);
    frame_head head = make(opcode::binary, 0x10000);
    bytes wire = encode(head);
    for (int i = 0; i < 8; ++i) wire[2 + static_cast<std::size_t>(i)] = static_cast<std::byte>((value >> (56 - 8 * i)) & 0xFF);
    const auto result = decode_head(wire);
    CHECK(result.state == status::invalid);
    CHECK(result.failure == error::non_minimal_length);
  }
  CHECK(decode_head(of({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0})).state == status::complete);
}

TEST_CASE("a 64-bit length with its top bit set is out of range") {
  for (unsigned top : {0x80u, 0xFFu}) {
    const auto result = decode_head(of({0x82, 0x7F, top, 0, 0, 0, 0, 0, 0, 0}));
    CHECK(result.state == status::invalid);
    CHECK(result.failure == error::length_out_of_range);
  }
  const auto biggest = decode_head(of({0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));
  REQUIRE(biggest.state == status::complete);
  CHECK(biggest.head.payload_size == (1ULL << 63) - 1);
}

TEST_CASE("a bad length is reported before the mask key arrives") {
  // Masked, 16-bit length 5: invalid as soon as the 4 bytes of the length are here.
  CHECK(decode_head(of({0x82, 0xFE, 0x00})).state == status::need_more);
  CHECK(decode_head(of({0x82, 0xFE, 0x00, 0x05})).state == status::invalid);
  CHECK(decode_head(of({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0})).failure == error::length_out_of_range);
}

TEST_CASE("decode_head leaves opcodes, RSV bits and masking to the parser") {
  const auto result = decode_head(of({0x7F, 0x00}));
  REQUIRE(result.state == status::complete);
  CHECK(result.head.rsv1);
  CHECK(result.head.rsv2);
  CHECK(result.head.rsv3);
  CHECK(!result.head.fin);
  CHECK(static_cast<unsigned>(result.head.opcode) == 0xF);
  CHECK(!is_defined(result.head.opcode));
  CHECK(is_control(result.head.opcode));
}

TEST_CASE("opcode classification") {
  for (unsigned v = 0; v < 16; ++v) {
    const auto op = static_cast<opcode>(v);
    CAPTURE(v);
    CHECK(is_control(op) == (v >= 8));
    CHECK(is_defined(op) == (v <= 2 || (v >= 8 && v <= 10)));
  }
}

TEST_CASE("apply_mask matches a bytewise reference at every offset, length and alignment") {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int trial = 0; trial < 4; ++trial) {
    mask_key key;
    for (auto& b : key) b = static_cast<std::byte>(byte(rng));
    for (std::uint64_t offset = 0; offset < 8; ++offset) {
      for (std::size_t length = 0; length <= 40; ++length) {
        for (std::size_t align = 0; align < 8; ++align) {
          CAPTURE(offset);
          CAPTURE(length);
          CAPTURE(align);
          // Guard bytes around the payload catch writes past either end.
          bytes buffer(align + length + 8);
          for (auto& b : buffer) b = static_cast<std::byte>(byte(rng));
          bytes expected = buffer;
          reference_mask(std::span{expected}.subspan(align, length), key, offset);
          bytes actual = buffer;
          apply_mask(std::span{actual}.subspan(align, length), key, offset);
          REQUIRE(actual == expected);

          bytes copied = buffer;
          copy_masked(std::span{buffer}.subspan(align, length), std::span{copied}.subspan(align, length), key,
                      offset);
          REQUIRE(copied == expected);
        }
      }
    }
  }
}

TEST_CASE("masking in pieces equals masking whole; masking twice restores") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  bytes original(1000);
  for (auto& b : original) b = static_cast<std::byte>(byte(rng));
  const mask_key key{std::byte{0xde}, std::byte{0xad}, std::byte{0xbe}, std::byte{0xef}};
  bytes whole = original;
  apply_mask(whole, key);
  for (std::size_t piece : {1u, 3u, 5u, 7u, 9u, 13u, 64u, 999u}) {
    bytes pieces = original;
    for (std::size_t at = 0; at < pieces.size(); at += piece)
      apply_mask(std::span{pieces}.subspan(at, std::min(piece, pieces.size() - at)), key, at);
    CHECK(pieces == whole);
  }
  // Offsets past 2^32 still pick the key byte by offset % 4.
  bytes far = original;
  apply_mask(far, key, (1ULL << 40) + 4);
  CHECK(far == whole);
  apply_mask(whole, key);
  CHECK(whole == original);
}

TEST_CASE("the masking key applies regardless of the host's byte order") {
  bytes zeros(16);
  const mask_key key{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  apply_mask(zeros, key, 1);
  CHECK(zeros == of({2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1}));
}
