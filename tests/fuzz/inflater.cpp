// libFuzzer target: websockets::inflater (permessage-deflate's decompressor), two ways.
//
// Input: 4 settings bytes, then data. Settings byte [0] bit 0 picks the mode.
//
// Mode 0, untrusted data: the data is compressed messages from a peer.
//   [0] bits 1-3: the window, 8 + bits; bit 4: no_context_takeover
//   [1] the seed of the message boundaries
//   [2] the seed of the random split of each message
//   [3] the message size limit: 64 * [3] bytes, or 64 KiB for 0
// The messages are inflated with each message whole, byte by byte and in random pieces.
// No message's output passes the limit by more than the one byte that tells it was
// passed; an error is terminal; the outputs and the error are the same for every split
// (except that bad data may be found after more or less of the message has come out,
// and zlib's leniency about windows described in untrusted()).
//
// Mode 1, round trip: the data is plain text, cut into messages, compressed by a
// `deflater` and inflated back, which must give the text again.
//   [0] bits 1-3: the deflater's window, 9 + bits % 7; bit 4: the deflater's
//       no_context_takeover; bit 5: the inflater's too (only when the deflater's is set:
//       an inflater that drops its window cannot read a deflater that keeps it);
//       bits 6-7: the limit: 0 and 3 1 MiB, 1 the largest message's size (all fit),
//       2 one byte less (the largest message fails with message_too_big)
//   [1] bits 0-3: the deflater's mem_level; bits 4-7: its level
//   [2] the inflater's window is the deflater's plus [2] % 4, at most 15
//   [3] the seed of the message boundaries and the split points
// Each deflater call's output is inflated as it comes and must give exactly the text
// compressed so far (it is flushed); a second inflater takes the same bytes in random
// pieces.
#include "fuzz.hpp"

#include <websockets/deflate.hpp>
#include <websockets/error.hpp>

#include <algorithm>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace websockets;

// Cuts `data` into consecutive messages, some empty; the same seed, the same cut.
std::vector<std::span<const std::uint8_t>> messages_of(std::span<const std::uint8_t> data, std::uint8_t seed) {
  fuzz::splitter split(seed);
  std::vector<std::span<const std::uint8_t>> out;
  std::size_t at = 0;
  do {
    const std::size_t n = split.next(data.size() - at);
    out.push_back(data.subspan(at, n));
    at += n;
  } while (at < data.size() && out.size() < 64);
  if (at < data.size()) out.back() = data.subspan(at - out.back().size()); // the rest joins the last
  return out;
}

// One message's result.
struct inflated {
  std::string text;
  std::error_code error;
  bool operator==(const inflated&) const = default;
};

// Inflates `message` in pieces of `how`, the last with fin. `out` gets the output;
// returns the first error.
inflated inflate_message(inflater& z, std::span<const std::uint8_t> message, fuzz::split_kind how,
                         fuzz::splitter& split, std::uint64_t limit) {
  inflated result;
  std::size_t at = 0;
  for (std::size_t calls = 0;; ++calls) {
    FUZZ_CHECK(calls <= 4 * message.size() + 16);
    const std::size_t n = fuzz::next_piece(how, split, message.size() - at);
    const bool fin = at + n == message.size();
    const auto piece = fuzz::exact_copy(std::as_bytes(message.subspan(at, n)));
    const std::size_t before = result.text.size();
    result.error = z.inflate(piece, fin, result.text);
    // The limit, plus the one byte that shows it was passed.
    FUZZ_CHECK(result.text.size() <= limit + 1, "inflated " + std::to_string(result.text.size()) +
                                                    " bytes with a limit of " + std::to_string(limit));
    if (result.error) {
      FUZZ_CHECK(result.error == error::message_too_big || result.error == error::bad_deflate_data,
                 result.error.message());
      if (result.error == error::message_too_big) FUZZ_CHECK(result.text.size() == limit + 1);
      // Terminal: the inflater is unusable from now on and writes nothing more.
      std::string more;
      FUZZ_CHECK(z.inflate(piece, true, more) && more.empty(), "an inflater error is not terminal");
      FUZZ_CHECK(z.inflate({}, false, more) && more.empty(), "an inflater error is not terminal");
      return result;
    }
    FUZZ_CHECK(result.text.size() >= before);
    at += n;
    if (fin) return result;
  }
}

// Inflates every message in pieces of `how`, stopping at the first error.
std::vector<inflated> inflate_all(int window_bits, bool no_context_takeover, std::uint64_t limit,
                                  const std::vector<std::span<const std::uint8_t>>& messages, fuzz::split_kind how,
                                  std::uint8_t seed) {
  inflater z(window_bits, no_context_takeover, limit);
  fuzz::splitter split(seed);
  std::vector<inflated> results;
  for (const auto message : messages) {
    results.push_back(inflate_message(z, message, how, split, limit));
    if (results.back().error) break;
  }
  (void)z.memory();
  return results;
}

void untrusted(const fuzz::settings& s, std::span<const std::uint8_t> data) {
  const int window_bits = 8 + ((s.byte(0) >> 1) & 7);
  const bool no_context_takeover = s.bit(0, 4);
  const std::uint64_t limit = s.byte(3) == 0 ? 64 * 1024 : 64U * s.byte(3);
  const auto messages = messages_of(data, s.byte(1));

  const auto whole = inflate_all(window_bits, no_context_takeover, limit, messages, fuzz::split_kind::whole, s.byte(2));
  for (const auto how : {fuzz::split_kind::byte_by_byte, fuzz::split_kind::random}) {
    const auto other = inflate_all(window_bits, no_context_takeover, limit, messages, how, s.byte(2));
    const auto [a, b] = std::mismatch(whole.begin(), whole.end(), other.begin(), other.end());
    if (a == whole.end() && b == other.end()) continue;
    // A run stops at its first error, so where the runs differ at all, they differ in
    // a message both have.
    FUZZ_CHECK(a != whole.end() && b != other.end());
    const std::size_t m = static_cast<std::size_t>(a - whole.begin());
    // The run that stopped first, and the other.
    const bool a_first = a->error && (!b->error || a->text.size() <= b->text.size());
    const auto& first = a_first ? *a : *b;
    const auto& other_run = a_first ? *b : *a;
    // zlib checks a back-reference against the window only for the part that is not
    // in the output of the same inflate() call, so data compressed with a larger window
    // than the inflater's may pass when it arrives in large pieces and fail in small
    // ones. Known zlib behaviour (see tests/fuzz/README.md): tolerated when the data
    // inflates with the largest window just as in the run that went further.
    bool lenient = false;
    if (window_bits < 15) {
      const auto wide = inflate_all(15, no_context_takeover, limit, messages, fuzz::split_kind::whole, 0);
      lenient = m < wide.size() && wide[m] == other_run;
    }
    // Otherwise only bad data may differ: found after more or less of the message came out.
    const bool both_bad = a->error == error::bad_deflate_data && b->error == error::bad_deflate_data;
    FUZZ_CHECK(first.error == error::bad_deflate_data && other_run.text.starts_with(first.text) && (both_bad || lenient),
               std::string(fuzz::name(how)) + ": message " + std::to_string(m) + " inflates differently (" +
                   a->error.message() + " / " + b->error.message() + ")\nwhole: " + fuzz::show(a->text) + "\n" +
                   fuzz::name(how) + ": " + fuzz::show(b->text));
  }
}

void round_trip(const fuzz::settings& s, std::span<const std::uint8_t> data) {
  const int deflate_bits = 9 + ((s.byte(0) >> 1) & 7) % 7;
  const bool deflate_reset = s.bit(0, 4);
  const bool inflate_reset = deflate_reset && s.bit(0, 5);
  const int inflate_bits = std::min(15, deflate_bits + s.byte(2) % 4);
  const int mem_level = 1 + (s.byte(1) & 15) % 9;
  const int level = 1 + (s.byte(1) >> 4) % 9;
  fuzz::splitter split(s.byte(3));
  const auto messages = messages_of(data, s.byte(3));
  std::size_t largest = 0;
  for (const auto m : messages) largest = std::max(largest, m.size());
  std::uint64_t limit = 1 << 20;
  switch (s.byte(0) >> 6) {
  case 1: limit = largest; break;
  case 2: limit = largest == 0 ? 0 : largest - 1; break;
  default: break;
  }

  deflater compressor(deflate_bits, mem_level, level, deflate_reset);
  inflater as_sent(inflate_bits, inflate_reset, limit);  // takes each deflater call's output
  inflater in_pieces(inflate_bits, inflate_reset, limit); // takes the same bytes split anew
  for (const auto message : messages) {
    // Compress the message in pieces; inflate each piece's output at once.
    std::vector<std::byte> compressed;
    std::string text;
    std::error_code failure;
    std::size_t at = 0;
    do {
      const std::size_t n = split.next(message.size() - at);
      const bool fin = at + n == message.size();
      const std::size_t from = compressed.size();
      compressor.compress(std::as_bytes(message.subspan(at, n)), fin, compressed);
      at += n;
      if (failure) continue; // past the limit: keep compressing, to split the bytes anew below
      failure = as_sent.inflate(std::span(compressed).subspan(from), fin, text);
      if (!failure)
        FUZZ_CHECK(text == fuzz::chars(message.first(at)),
                   "a flushed piece does not inflate to the text so far: " + std::to_string(text.size()) + " of " +
                       std::to_string(at) + " bytes (window " + std::to_string(deflate_bits) + "/" +
                       std::to_string(inflate_bits) + ")");
    } while (at < message.size());

    const bool too_big = message.size() > limit;
    if (too_big) {
      FUZZ_CHECK(failure == error::message_too_big, "a message past the limit inflated: " + failure.message());
      FUZZ_CHECK(text == fuzz::chars(message.first(limit + 1)));
    } else {
      FUZZ_CHECK(!failure, "our own data does not inflate: " + failure.message());
    }
    const std::span<const std::uint8_t> wire{reinterpret_cast<const std::uint8_t*>(compressed.data()),
                                             compressed.size()};
    const auto copy = inflate_message(in_pieces, wire, fuzz::split_kind::random, split, limit);
    FUZZ_CHECK(copy.error == failure && copy.text == text, "split compressed bytes inflate differently");
    if (too_big) break;
  }
  (void)compressor.memory();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t settings_size = 4;
  const fuzz::settings s(data, size, settings_size);
  const auto rest = fuzz::rest(data, size, settings_size);
  if (s.bit(0, 0))
    round_trip(s, rest);
  else
    untrusted(s, rest);
  return 0;
}
