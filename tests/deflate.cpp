// permessage-deflate without I/O: the negotiation grammar of RFC 7692 both ways, and
// compression across fragments, contexts and limits.
#include <doctest/doctest.h>

#include "support.hpp"
#include <websockets/deflate.hpp>

#include <random>
#include <string>
#include <vector>

using namespace websockets;
using test_support::bytes;
using test_support::of;

namespace {

std::vector<extension> offers_of(std::string_view header) {
  auto parsed = parse_extensions(header);
  REQUIRE_MESSAGE(parsed, header);
  return *parsed;
}

deflate_options enabled(deflate_options o = {}) {
  o.enabled = true;
  return o;
}

std::span<const std::byte> as_bytes(std::string_view s) { return std::as_bytes(std::span{s.data(), s.size()}); }

std::string inflate_all(inflater& in, std::span<const std::byte> data, bool fin = true) {
  std::string out;
  const auto ec = in.inflate(data, fin, out);
  REQUIRE_MESSAGE(!ec, ec.message());
  return out;
}

std::vector<std::byte> deflate_all(deflater& d, std::string_view text) {
  std::vector<std::byte> out;
  d.compress(as_bytes(text), true, out);
  return out;
}

// Text that compresses, and bytes that do not.
std::string sample_text(std::size_t size, unsigned seed) {
  static constexpr std::string_view words[] = {"socket ", "frame ", "deflate ", "window ", "message ", "peer "};
  std::mt19937 rng{seed};
  std::string out;
  while (out.size() < size) out += words[rng() % std::size(words)];
  out.resize(size);
  return out;
}

std::string noise(std::size_t size, unsigned seed) {
  std::mt19937 rng{seed};
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

} // namespace

TEST_CASE("server: a bare offer is accepted with our window, named only when asked") {
  const auto agreed = negotiate_deflate(offers_of("permessage-deflate"), enabled());
  REQUIRE(agreed);
  CHECK(agreed->response == "permessage-deflate");
  CHECK(agreed->server_max_window_bits == 12);
  CHECK(agreed->client_max_window_bits == 15);
  CHECK(!agreed->server_no_context_takeover);
  CHECK(!agreed->client_no_context_takeover);
  CHECK(!negotiate_deflate(offers_of("permessage-deflate"), deflate_options{}));
  CHECK(!negotiate_deflate(offers_of("x-webkit-deflate-frame"), enabled()));
}

TEST_CASE("server: window sizes are granted within what both sides allow") {
  SUBCASE("server_max_window_bits caps our window") {
    const auto agreed = negotiate_deflate(offers_of("permessage-deflate; server_max_window_bits=10"), enabled());
    REQUIRE(agreed);
    CHECK(agreed->server_max_window_bits == 10);
    CHECK(agreed->response == "permessage-deflate; server_max_window_bits=10");
    const auto larger = negotiate_deflate(offers_of("permessage-deflate; server_max_window_bits=15"), enabled());
    REQUIRE(larger);
    CHECK(larger->server_max_window_bits == 12); // ours is smaller: still within the cap
    CHECK(larger->response == "permessage-deflate; server_max_window_bits=12");
  }
  SUBCASE("client_max_window_bits lets us choose the client's window") {
    const auto agreed =
        negotiate_deflate(offers_of("permessage-deflate; client_max_window_bits"), enabled({.peer_window_bits = 10}));
    REQUIRE(agreed);
    CHECK(agreed->client_max_window_bits == 10);
    CHECK(agreed->response == "permessage-deflate; client_max_window_bits=10");
    const auto bare = negotiate_deflate(offers_of("permessage-deflate; client_max_window_bits"), enabled());
    REQUIRE(bare);
    CHECK(bare->response == "permessage-deflate; client_max_window_bits=12"); // the default
    const auto full = negotiate_deflate(offers_of("permessage-deflate; client_max_window_bits"),
                                        enabled({.peer_window_bits = 15}));
    REQUIRE(full);
    CHECK(full->response == "permessage-deflate"); // 15: nothing to ask
    const auto capped = negotiate_deflate(offers_of("permessage-deflate; client_max_window_bits=9"), enabled());
    REQUIRE(capped);
    CHECK(capped->client_max_window_bits == 9);
    CHECK(capped->response == "permessage-deflate; client_max_window_bits=9");
  }
  SUBCASE("without client_max_window_bits the client's window cannot be limited") {
    const auto agreed = negotiate_deflate(offers_of("permessage-deflate"), enabled({.peer_window_bits = 10}));
    REQUIRE(agreed);
    CHECK(agreed->client_max_window_bits == 15);
    CHECK(agreed->response == "permessage-deflate");
  }
  SUBCASE("a 256-byte server window, which zlib cannot make, declines that offer only") {
    CHECK(!negotiate_deflate(offers_of("permessage-deflate; server_max_window_bits=8"), enabled()));
    const auto fallback = negotiate_deflate(
        offers_of("permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover"),
        enabled());
    REQUIRE(fallback);
    CHECK(fallback->client_no_context_takeover);
    CHECK(fallback->response == "permessage-deflate; client_no_context_takeover");
  }
}

TEST_CASE("server: context takeover flags are granted and asked for") {
  const auto asked = negotiate_deflate(
      offers_of("permessage-deflate; server_no_context_takeover; client_no_context_takeover"), enabled());
  REQUIRE(asked);
  CHECK(asked->server_no_context_takeover);
  CHECK(asked->client_no_context_takeover);
  CHECK(asked->response == "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  const auto ours = negotiate_deflate(offers_of("permessage-deflate"),
                                      enabled({.no_context_takeover = true, .peer_no_context_takeover = true}));
  REQUIRE(ours);
  CHECK(ours->server_no_context_takeover);
  CHECK(ours->client_no_context_takeover);
}

TEST_CASE("server: offers with unknown, repeated or malformed parameters are declined, never fatal") {
  for (const auto* offer : {
           "permessage-deflate; foo",
           "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
           "permessage-deflate; server_no_context_takeover=1",
           "permessage-deflate; client_no_context_takeover=true",
           "permessage-deflate; server_max_window_bits",
           "permessage-deflate; server_max_window_bits=7",
           "permessage-deflate; server_max_window_bits=16",
           "permessage-deflate; server_max_window_bits=010",
           "permessage-deflate; server_max_window_bits=1a",
           "permessage-deflate; client_max_window_bits=0",
           "permessage-deflate; client_max_window_bits=99",
           "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
       }) {
    CHECK_MESSAGE(!negotiate_deflate(offers_of(offer), enabled()), offer);
    // The same offer followed by a good one: the good one is taken.
    CHECK_MESSAGE(negotiate_deflate(offers_of(std::string(offer) + ", permessage-deflate"), enabled()), offer);
  }
  // Quoted values are values like any other.
  const auto quoted = negotiate_deflate(offers_of("permessage-deflate; server_max_window_bits=\"10\""), enabled());
  REQUIRE(quoted);
  CHECK(quoted->server_max_window_bits == 10);
}

TEST_CASE("client: the offer names what the options ask") {
  CHECK(deflate_offer(enabled({.window_bits = 15, .peer_window_bits = 15})) ==
        "permessage-deflate; client_max_window_bits");
  CHECK(deflate_offer(enabled()) == "permessage-deflate; client_max_window_bits=12; server_max_window_bits=12");
  CHECK(deflate_offer(enabled({.window_bits = 15,
                               .no_context_takeover = true,
                               .peer_window_bits = 10,
                               .peer_no_context_takeover = true})) ==
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10; client_no_context_takeover; "
        "server_no_context_takeover");
}

TEST_CASE("client: the server's response is checked against the offer") {
  const auto accept = [](std::string_view response, const deflate_options& ours) {
    return accept_deflate(offers_of(response).front(), ours);
  };
  const deflate_options full_window = enabled({.peer_window_bits = 15});
  const auto plain = accept("permessage-deflate", full_window);
  REQUIRE(plain);
  CHECK(plain->client_max_window_bits == 12);
  CHECK(plain->server_max_window_bits == 15);

  const auto limited = accept("permessage-deflate; client_max_window_bits=10; server_max_window_bits=11", full_window);
  REQUIRE(limited);
  CHECK(limited->client_max_window_bits == 10);
  CHECK(limited->server_max_window_bits == 11);

  const auto reset =
      accept("permessage-deflate; client_no_context_takeover; server_no_context_takeover", full_window);
  REQUIRE(reset);
  CHECK(reset->client_no_context_takeover);
  CHECK(reset->server_no_context_takeover);

  for (const auto* bad : {"permessage-deflate; client_max_window_bits", "permessage-deflate; client_max_window_bits=8",
                          "permessage-deflate; foo=1", "permessage-deflate; server_max_window_bits=16",
                          "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                          "other-extension"})
    CHECK_MESSAGE(!accept(bad, full_window), bad);
  // A limit we asked for must be granted.
  CHECK(!accept("permessage-deflate", enabled({.peer_window_bits = 10})));
  CHECK(!accept("permessage-deflate; server_max_window_bits=12", enabled({.peer_window_bits = 10})));
  CHECK(accept("permessage-deflate; server_max_window_bits=9", enabled({.peer_window_bits = 10})));
  CHECK(!accept("permessage-deflate", enabled({.peer_no_context_takeover = true})));
}

TEST_CASE("client and server agree with each other on every combination of options") {
  for (const int client_bits : {9, 12, 15})
    for (const int server_bits : {9, 11, 15})
      for (const bool client_reset : {false, true})
        for (const bool server_reset : {false, true}) {
          const auto client = enabled({.window_bits = client_bits,
                                       .no_context_takeover = client_reset,
                                       .peer_window_bits = server_bits,
                                       .peer_no_context_takeover = server_reset});
          const auto agreed = negotiate_deflate(offers_of(deflate_offer(client)), enabled({.window_bits = 13}));
          REQUIRE(agreed);
          const auto seen = accept_deflate(offers_of(agreed->response).front(), client);
          REQUIRE_MESSAGE(seen, agreed->response);
          CHECK(seen->client_max_window_bits == agreed->client_max_window_bits);
          CHECK(seen->client_max_window_bits <= client_bits);
          CHECK(agreed->server_max_window_bits <= std::min(server_bits, 13));
          CHECK(seen->server_max_window_bits >= agreed->server_max_window_bits);
          CHECK(seen->server_no_context_takeover == agreed->server_no_context_takeover);
          CHECK(seen->client_no_context_takeover == agreed->client_no_context_takeover);
        }
}

TEST_CASE("inflate: the RFC 7692 section 7.2.3 examples") {
  inflater in{15, false, 1 << 20};
  // 7.2.3.1: "Hello" compressed; 7.2.3.2: the second "Hello", through the shared window.
  CHECK(inflate_all(in, of({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
  CHECK(inflate_all(in, of({0xf2, 0x00, 0x11, 0x00, 0x00})) == "Hello");
  // 7.2.3.3: a stored block; 7.2.3.4: a final block (BFINAL set), after which the
  // stream starts again.
  CHECK(inflate_all(in, of({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00})) == "Hello");
  CHECK(inflate_all(in, of({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00})) == "Hello");
  CHECK(inflate_all(in, of({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) == "Hello");
  // 7.2.3.1 split into pieces, as fragments deliver it.
  inflater pieces{15, false, 1 << 20};
  std::string out;
  CHECK(!pieces.inflate(of({0xf2, 0x48, 0xcd}), false, out));
  CHECK(!pieces.inflate(of({0xc9, 0xc9}), false, out));
  CHECK(!pieces.inflate(of({0x07, 0x00}), true, out));
  CHECK(out == "Hello");
}

TEST_CASE("deflate then inflate gives every message back, in any pieces, with and without context") {
  for (const bool reset : {false, true}) {
    deflater out{11, 4, 6, reset};
    inflater in{11, reset, 64 << 20};
    std::mt19937 rng{7};
    std::size_t previous_size = 0;
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{100}, std::size_t{1000},
                                   std::size_t{1000}, std::size_t{100000}, std::size_t{3000000}}) {
      const std::string message = size % 2 == 0 ? sample_text(size, 1) : noise(size, 2);
      // Compressed in pieces of random sizes, like a stream's fragments.
      std::vector<std::byte> wire;
      for (std::size_t at = 0; at < message.size() || at == 0;) {
        const std::size_t piece = std::min<std::size_t>(message.size() - at, 1 + rng() % 70000);
        const bool fin = at + piece == message.size();
        out.compress(as_bytes(std::string_view{message}.substr(at, piece)), fin, wire);
        at += piece;
        if (fin) break;
      }
      // Inflated in other pieces.
      std::string back;
      for (std::size_t at = 0;;) {
        const std::size_t piece = std::min<std::size_t>(wire.size() - at, 1 + rng() % 9000);
        const bool fin = at + piece == wire.size();
        REQUIRE(!in.inflate(std::span{wire}.subspan(at, piece), fin, back));
        at += piece;
        if (fin) break;
      }
      CHECK(back == message);
      if (size == 1000 && previous_size == 1000 && !reset)
        CHECK(wire.size() < 20); // the same message again: the shared window has it
      previous_size = size;
    }
  }
}

TEST_CASE("without context takeover every message inflates on its own") {
  deflater out{15, 8, 6, true};
  const std::string message = sample_text(20000, 3);
  const auto first = deflate_all(out, message);
  const auto second = deflate_all(out, message);
  CHECK(first == second);
  inflater fresh{15, true, 1 << 20};
  CHECK(inflate_all(fresh, second) == message);
}

TEST_CASE("inflate: a deflate bomb stops at the message limit") {
  deflater out{15, 8, 9, false};
  const std::string zeros(64 << 20, '\0');
  const auto bomb = deflate_all(out, zeros);
  CHECK(bomb.size() < 100'000);
  inflater in{15, false, 1 << 20};
  std::string inflated;
  CHECK(in.inflate(bomb, true, inflated) == error::message_too_big);
  CHECK(inflated.size() <= (1 << 20) + 1);
  // Exactly at the limit is fine.
  inflater exact{15, false, 1 << 20};
  CHECK(inflate_all(exact, deflate_all(out, std::string(1 << 20, 'x'))).size() == 1 << 20);
}

TEST_CASE("inflate: data that is not deflate is refused") {
  std::string out;
  inflater garbage{15, false, 1 << 20};
  CHECK(garbage.inflate(of({0xff, 0xff, 0xff, 0xff, 0xff}), true, out) == error::bad_deflate_data);
  CHECK(garbage.inflate(of({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), true, out) == error::bad_deflate_data);
  // A block of the reserved type 3, in the middle of a fragmented message.
  inflater reserved{15, false, 1 << 20};
  CHECK(!reserved.inflate(of({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff}), false, out));
  CHECK(reserved.inflate(of({0x06}), false, out) == error::bad_deflate_data);
}

TEST_CASE("memory: smaller windows and memLevel cost less; the defaults stay near 64 KiB") {
  const deflate_options defaults;
  const deflater ours{defaults.window_bits, defaults.mem_level, defaults.level, false};
  const deflater zlib_default{15, 8, 6, false};
  // An inflater allocates its window on its first message.
  inflater in_ours{defaults.peer_window_bits, false, 1 << 20};
  inflater in_small{10, false, 1 << 20};
  deflater small_out{10, 4, 6, true};
  const auto message = sample_text(5000, 4);
  CHECK(inflate_all(in_ours, deflate_all(small_out, message)) == message);
  CHECK(inflate_all(in_small, deflate_all(small_out, message)) == message);
  MESSAGE("deflater 12/5: " << ours.memory() << " B, 15/8: " << zlib_default.memory() << " B; inflater "
                            << defaults.peer_window_bits << ": " << in_ours.memory() << " B, 10: " << in_small.memory()
                            << " B");
  CHECK(ours.memory() < zlib_default.memory() / 4);
  CHECK(ours.memory() + in_ours.memory() <= 96 * 1024);
  CHECK(zlib_default.memory() > 256 * 1024);
}

TEST_CASE("an empty message right after another, with context takeover, still inflates (found by fuzzing)") {
  deflater out{15, 8, 6, false};
  inflater in{15, false, 1 << 20};
  CHECK(inflate_all(in, deflate_all(out, "first")) == "first");
  const auto empty = deflate_all(out, "");
  CHECK(!empty.empty()); // zlib had nothing to flush: the empty block's header byte is added
  CHECK(inflate_all(in, empty).empty());
  CHECK(inflate_all(in, deflate_all(out, "third")) == "third");
}

TEST_CASE("a message whose last piece is empty still ends properly") {
  deflater out{15, 8, 6, false};
  std::vector<std::byte> wire;
  out.compress(as_bytes("abc"), false, wire);
  out.compress({}, true, wire);
  inflater in{15, false, 1 << 20};
  CHECK(inflate_all(in, wire) == "abc");
  CHECK(inflate_all(in, deflate_all(out, "abc")) == "abc"); // the shared window still agrees
}

TEST_CASE("a message cut inside a block is refused; one with no compressed bytes is empty (found by tests/conformance)") {
  deflater out{15, 8, 6, false};
  const std::string text = sample_text(300, 5);
  const auto whole = deflate_all(out, text);
  REQUIRE(whole.size() > 4);
  // Cut: zlib sees nothing wrong (it waits for the block's rest), but with 00 00 FF FF put
  // back the message does not end between two blocks (RFC 7692 7.2.1).
  inflater cut{15, false, 1 << 20};
  std::string out_text;
  CHECK(cut.inflate(std::span{whole}.first(whole.size() / 2), true, out_text) == error::bad_deflate_data);
  // No bytes at all: an empty message, and the stream goes on as before (inflating
  // 00 00 FF FF alone would leave it inside a block head, reading the next message as its rest).
  deflater again{15, 8, 6, false};
  inflater in{15, false, 1 << 20};
  CHECK(inflate_all(in, deflate_all(again, text)) == text);
  CHECK(inflate_all(in, {}).empty());
  CHECK(inflate_all(in, deflate_all(again, text)) == text);
}
