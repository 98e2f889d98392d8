// The frame writer: the RFC 6455 section 5.7 examples produced byte for byte (server
// side, and client side with a fixed key), client masking, close payloads and their
// truncation at code point boundaries, and round trips through the parser.
#include <websockets/frame_writer.hpp>

#include <websockets/frame_parser.hpp>
#include <websockets/utf8.hpp>

#include <doctest/doctest.h>

#include "support.hpp"

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

using namespace websockets;

namespace {

using test_support::bytes;
using test_support::of;
using test_support::text;

bytes to_bytes(std::span<const std::byte> b) { return {b.begin(), b.end()}; }

bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const bytes& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

constexpr mask_key rfc_key{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};

// A client head with a fixed key, through the lower-level encoded_head.
encoded_head client_head(opcode op, std::uint64_t size, bool fin = true, mask_key key = rfc_key) {
  frame_head head;
  head.opcode = op;
  head.payload_size = size;
  head.fin = fin;
  head.masked = true;
  head.key = key;
  return encoded_head{head};
}

// A whole data frame as a writer sends it: head, then the payload masked by copy.
bytes data_frame(const encoded_head& head, const bytes& payload) {
  bytes out = to_bytes(head.bytes());
  out.resize(head.size() + payload.size());
  head.mask_copy(payload, std::span{out}.subspan(head.size()));
  return out;
}

// Parses one whole message or control frame from `wire`, returning what it carried.
struct parsed {
  std::vector<opcode> kinds;  // message opcode or control opcode, in order
  bytes payload;              // data, or the control payload
  std::uint16_t close_code = 0;
  std::string reason;
  bool failed = false;
  bool compressed = false;
};

parsed parse_all(role receiver, bytes wire, bool allow_compression = false) {
  parser_options options;
  options.role = receiver;
  options.allow_compression = allow_compression;
  frame_parser parser{options};
  parsed out;
  std::span<std::byte> input{wire};
  for (;;) {
    const auto [event, used] = parser.parse(input);
    input = input.subspan(used);
    if (std::holds_alternative<parse::need_more>(event)) break;
    if (const auto* b = std::get_if<parse::message_begin>(&event)) {
      out.kinds.push_back(b->opcode);
      out.compressed = b->compressed;
    } else if (const auto* d = std::get_if<parse::data>(&event)) {
      out.payload.insert(out.payload.end(), d->bytes.begin(), d->bytes.end());
    } else if (const auto* c = std::get_if<parse::control>(&event)) {
      out.kinds.push_back(c->opcode);
      out.payload.insert(out.payload.end(), c->payload.begin(), c->payload.end());
    } else if (const auto* c = std::get_if<parse::close>(&event)) {
      out.kinds.push_back(opcode::close);
      out.close_code = c->code;
      out.reason = std::string(c->reason);
    } else if (std::holds_alternative<parse::failure>(event)) {
      out.failed = true;
      break;
    }
  }
  if (!out.failed) CHECK(input.empty());
  return out;
}

std::string close_reason(const bytes& payload) {
  REQUIRE(payload.size() >= 2);
  return {reinterpret_cast<const char*>(payload.data()) + 2, payload.size() - 2};
}

} // namespace

// ---------------------------------------------------------------------------------
// RFC 6455 section 5.7, server side.

TEST_CASE("RFC 5.7 from a server writer") {
  const frame_writer writer{role::server};
  CHECK(writer.role() == role::server);
  const encoded_head hello = writer.head(opcode::text, 5);
  CHECK(!hello.masked());
  CHECK(to_bytes(hello.bytes()) == of({0x81, 0x05}));
  CHECK(data_frame(hello, text("Hello")) == of({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));

  CHECK(data_frame(writer.head(opcode::text, 3, false), text("Hel")) == of({0x01, 0x03, 0x48, 0x65, 0x6c}));
  CHECK(data_frame(writer.head(opcode::continuation, 2), text("lo")) == of({0x80, 0x02, 0x6c, 0x6f}));

  CHECK(to_bytes(writer.control(opcode::ping, text("Hello")).bytes()) ==
        of({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));

  CHECK(to_bytes(writer.head(opcode::binary, 256).bytes()) == of({0x82, 0x7E, 0x01, 0x00}));
  CHECK(to_bytes(writer.head(opcode::binary, 65536).bytes()) ==
        of({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
}

// RFC 6455 section 5.7, client side with the RFC's key.

TEST_CASE("RFC 5.7 masked frames with a fixed key") {
  const encoded_head hello = client_head(opcode::text, 5);
  CHECK(hello.masked());
  CHECK(hello.key() == rfc_key);
  CHECK(to_bytes(hello.bytes()) == of({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d}));
  CHECK(data_frame(hello, text("Hello")) ==
        of({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  // Masking in place gives the same.
  bytes payload = text("Hello");
  hello.mask(payload);
  CHECK(payload == of({0x7f, 0x9f, 0x4d, 0x51, 0x58}));

  const control_frame pong{opcode::pong, text("Hello"), rfc_key};
  CHECK(to_bytes(pong.bytes()) == of({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  CHECK(pong.size() == 11);
}

TEST_CASE("an unmasked control frame from the constructor") {
  const control_frame ping{opcode::ping, text("Hello")};
  CHECK(to_bytes(ping.bytes()) == of({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  const control_frame empty{opcode::pong, {}};
  CHECK(to_bytes(empty.bytes()) == of({0x8a, 0x00}));
  CHECK(control_frame{}.size() == 0);
  CHECK(encoded_head{}.bytes().empty());
}

// ---------------------------------------------------------------------------------
// Heads.

TEST_CASE("heads use the shortest length encoding") {
  const frame_writer writer{role::server};
  CHECK(writer.head(opcode::binary, 0).size() == 2);
  CHECK(writer.head(opcode::binary, 125).size() == 2);
  CHECK(writer.head(opcode::binary, 126).size() == 4);
  CHECK(writer.head(opcode::binary, 65535).size() == 4);
  CHECK(writer.head(opcode::binary, 65536).size() == 10);
  CHECK(writer.head(opcode::binary, (1ULL << 63) - 1).size() == 10);
  const frame_writer client{role::client};
  CHECK(client.head(opcode::binary, 0).size() == 6);
  CHECK(client.head(opcode::binary, 126).size() == 8);
  CHECK(client.head(opcode::binary, 1ULL << 32).size() == 14);
}

TEST_CASE("compressed sets RSV1; fin is bit 7") {
  const frame_writer writer{role::server};
  CHECK(to_bytes(writer.head(opcode::text, 0, true, true).bytes()) == of({0xC1, 0x00}));
  CHECK(to_bytes(writer.head(opcode::binary, 1, false, true).bytes()) == of({0x42, 0x01}));
  CHECK(to_bytes(writer.head(opcode::continuation, 1, false).bytes()) == of({0x00, 0x01}));
}

TEST_CASE("a client writer masks every frame with a fresh key written in the head") {
  const frame_writer writer{role::client};
  CHECK(writer.role() == role::client);
  const encoded_head a = writer.head(opcode::binary, 300);
  const encoded_head b = writer.head(opcode::binary, 300);
  REQUIRE(a.masked());
  REQUIRE(b.masked());
  CHECK(to_bytes(a.bytes()).size() == 8);
  CHECK((std::to_integer<unsigned>(a.bytes()[1]) & 0x80) == 0x80);
  CHECK(to_bytes(a.bytes().last(4)) == to_bytes(a.key()));
  // Two random 32-bit keys collide once in 2^32 runs; a fixed key would always.
  CHECK(a.key() != b.key());
}

TEST_CASE("masking a payload in pieces equals masking it whole") {
  const encoded_head head = client_head(opcode::binary, 100, true, {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}});
  bytes payload(100);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(i);
  bytes whole(100);
  head.mask_copy(payload, whole);
  bytes pieces = payload;
  for (std::size_t at = 0; at < pieces.size(); at += 7)
    head.mask(std::span{pieces}.subspan(at, std::min<std::size_t>(7, pieces.size() - at)), at);
  CHECK(pieces == whole);
  // A server's head leaves the payload alone.
  const encoded_head plain = frame_writer{role::server}.head(opcode::binary, 100);
  bytes untouched = payload;
  plain.mask(untouched);
  CHECK(untouched == payload);
  bytes copy(100);
  plain.mask_copy(payload, copy);
  CHECK(copy == payload);
}

// ---------------------------------------------------------------------------------
// Round trips through the parser.

TEST_CASE("client frames parse on a server, server frames on a client") {
  bytes payload(70000);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(i * 31 + 7);
  for (role sender : {role::client, role::server}) {
    const role receiver = sender == role::client ? role::server : role::client;
    const frame_writer writer{sender};
    for (std::size_t size : {0u, 1u, 125u, 126u, 65535u, 65536u, 70000u}) {
      CAPTURE(size);
      const bytes part(payload.begin(), payload.begin() + static_cast<std::ptrdiff_t>(size));
      const parsed p = parse_all(receiver, data_frame(writer.head(opcode::binary, size), part));
      CHECK(!p.failed);
      CHECK(p.kinds == std::vector<opcode>{opcode::binary});
      CHECK(p.payload == part);
    }
    // Fragmented, with a ping between the fragments.
    const bytes wire = cat({data_frame(writer.head(opcode::text, 3, false), text("Hel")),
                            to_bytes(writer.control(opcode::ping, text("p")).bytes()),
                            data_frame(writer.head(opcode::continuation, 2), text("lo"))});
    const parsed p = parse_all(receiver, wire);
    CHECK(!p.failed);
    CHECK(p.kinds == std::vector<opcode>{opcode::text, opcode::ping});
    CHECK(p.payload == text("Helplo"));
    // The other way round fails: masking is wrong for the role.
    CHECK(parse_all(sender, data_frame(writer.head(opcode::binary, 1), text("x"))).failed);
  }
}

TEST_CASE("compressed frames parse when compression is negotiated") {
  const frame_writer writer{role::client};
  const bytes wire = data_frame(writer.head(opcode::text, 3, true, true), of({0xff, 0x00, 0x01}));
  const parsed p = parse_all(role::server, wire, true);
  CHECK(!p.failed);
  CHECK(p.compressed);
  CHECK(parse_all(role::server, wire, false).failed);
}

TEST_CASE("control frames of 125 bytes, both roles") {
  bytes payload(125);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(255 - i);
  const control_frame server = frame_writer{role::server}.control(opcode::pong, payload);
  CHECK(server.size() == 2 + 125);
  const control_frame client = frame_writer{role::client}.control(opcode::ping, payload);
  CHECK(client.size() == max_control_frame_size);
  const parsed a = parse_all(role::client, to_bytes(server.bytes()));
  CHECK(a.kinds == std::vector<opcode>{opcode::pong});
  CHECK(a.payload == payload);
  const parsed b = parse_all(role::server, to_bytes(client.bytes()));
  CHECK(b.kinds == std::vector<opcode>{opcode::ping});
  CHECK(b.payload == payload);
}

// ---------------------------------------------------------------------------------
// Close payloads.

TEST_CASE("encode_close_payload writes the code in network order, then the reason") {
  std::array<std::byte, max_control_payload> out{};
  std::size_t n = encode_close_payload(close_code::normal, "bye", out);
  CHECK(to_bytes(std::span{out}.first(n)) == of({0x03, 0xE8, 'b', 'y', 'e'}));
  n = encode_close_payload(static_cast<close_code>(4999), "", out);
  CHECK(to_bytes(std::span{out}.first(n)) == of({0x13, 0x87}));
  // No status: an empty payload, and no reason.
  CHECK(encode_close_payload(close_code::no_status, "ignored", out) == 0);
}

TEST_CASE("close reasons are cut to 123 bytes, never inside a code point") {
  std::array<std::byte, max_control_payload> out{};
  CHECK(encode_close_payload(close_code::going_away, std::string(123, 'a'), out) == 125);
  CHECK(encode_close_payload(close_code::going_away, std::string(500, 'a'), out) == 125);
  CHECK(close_reason(to_bytes(out)) == std::string(123, 'a'));

  const std::string_view points[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
  for (std::string_view point : points) {
    for (std::size_t lead = 110; lead <= 123; ++lead) {
      const std::string reason = std::string(lead, 'r') + std::string(point) + "tail";
      CAPTURE(point.size());
      CAPTURE(lead);
      const std::size_t n = encode_close_payload(close_code::normal, reason, out);
      const std::string written = close_reason(to_bytes(std::span{out}.first(n)));
      CHECK(written.size() <= max_close_reason);
      CHECK(is_valid_utf8(written));
      CHECK(reason.starts_with(written));
      // The longest such prefix: the code point is kept whenever it fits whole.
      const bool fits = lead + point.size() <= max_close_reason;
      const std::size_t expected = fits ? std::min<std::size_t>(reason.size(), max_close_reason) : lead;
      CHECK(written.size() == expected);
    }
  }
}

TEST_CASE("close frames from the writer parse back to code and reason") {
  const std::string long_reason = std::string(121, 'x') + "\xe2\x82\xac" + "more";
  for (role sender : {role::client, role::server}) {
    const role receiver = sender == role::client ? role::server : role::client;
    const frame_writer writer{sender};
    parsed p = parse_all(receiver, to_bytes(writer.close(close_code::normal, "done").bytes()));
    CHECK(!p.failed);
    CHECK(p.kinds == std::vector<opcode>{opcode::close});
    CHECK(p.close_code == 1000);
    CHECK(p.reason == "done");

    p = parse_all(receiver, to_bytes(writer.close(close_code::going_away).bytes()));
    CHECK(p.close_code == 1001);
    CHECK(p.reason.empty());

    p = parse_all(receiver, to_bytes(writer.close(close_code::no_status).bytes()));
    CHECK(p.close_code == 1005);

    // Cut before the euro sign, which would end at byte 124.
    p = parse_all(receiver, to_bytes(writer.close(close_code::policy_violation, long_reason).bytes()));
    CHECK(!p.failed);
    CHECK(p.close_code == 1008);
    CHECK(p.reason == std::string(121, 'x'));
  }
}
