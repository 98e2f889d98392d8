// permessage-deflate (RFC 7692), sans I/O: agreeing on its parameters in the opening
// handshake, and compressing and decompressing message payloads with zlib.
#pragma once

#include <websockets/error.hpp>
#include <websockets/upgrade.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace websockets {

/// What one side allows and prefers. The defaults keep a connection's zlib state near
/// 64 KiB (zlib's own defaults cost about 300 KiB); `deflater::memory()` and
/// `inflater::memory()` tell what a setting costs.
struct deflate_options {
  /// Offer (client) or accept (server) permessage-deflate at all.
  bool enabled = false;
  /// Our compressor's window, 2^bits bytes, 9 to 15 (zlib cannot compress raw deflate
  /// with 8). It holds 4 * 2^bits bytes. A peer may ask for less; an offer that asks
  /// for 8 is declined.
  int window_bits = 12;
  /// zlib's memLevel for our compressor, 1 to 9: its hash tables hold 2^(level + 9) bytes.
  int mem_level = 5;
  /// zlib's compression level, 1 (fastest) to 9 (smallest).
  int level = 6;
  /// Reset our compressor after every message: each message compresses alone, and the
  /// peer may drop its window between messages.
  bool no_context_takeover = false;
  /// The window we ask the peer to compress with, 9 to 15; our decompressor holds
  /// 2^bits bytes. A server asks it only of clients that offer `client_max_window_bits`
  /// (browsers do; without it the window is 32 KiB); a client asks it with
  /// `server_max_window_bits` and fails a server that does not grant it.
  int peer_window_bits = 12;
  /// Ask the peer to reset its compressor after every message.
  bool peer_no_context_takeover = false;
  /// Messages shorter than this many bytes are sent uncompressed.
  std::size_t threshold = 64;
};

/// The parameters both sides agreed on, in RFC 7692's terms.
struct deflate_params {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
  /// The server's response value: `permessage-deflate` and the parameters it names.
  std::string response;
};

/// Server: the first `permessage-deflate` offer in `offers` (a parsed
/// `Sec-WebSocket-Extensions`) that RFC 7692 allows and `ours` can serve, with the
/// response for it; none when no offer qualifies (the connection goes on without
/// compression). Offers with unknown, repeated or malformed parameters are skipped.
[[nodiscard]] std::optional<deflate_params> negotiate_deflate(std::span<const extension> offers,
                                                              const deflate_options& ours);

/// Client: the offer for `Sec-WebSocket-Extensions`, from `ours`.
[[nodiscard]] std::string deflate_offer(const deflate_options& ours);

/// Client: the server's `permessage-deflate` response checked against the offer
/// `deflate_offer(ours)` made. None when it may not be accepted (an unknown, repeated
/// or malformed parameter; a window we cannot compress with; a limit we asked for and
/// it did not grant): the client then fails the connection.
[[nodiscard]] std::optional<deflate_params> accept_deflate(const extension& response,
                                                           const deflate_options& ours);

/// The compressing half of one side, for the messages it sends.
class deflater {
public:
  /// A compressor with a window of 2^window_bits bytes (9 to 15), zlib's `mem_level`
  /// and `level`; with `no_context_takeover` every message compresses alone.
  deflater(int window_bits, int mem_level, int level, bool no_context_takeover);
  deflater(const deflater&) = delete;
  deflater& operator=(const deflater&) = delete;
  ~deflater();

  /// Compresses `in`, part of one message, appending to `out`. Every call's output can
  /// be sent at once (it is flushed to a byte boundary); with `fin`, the message ends
  /// and its output lacks the trailing `00 00 FF FF` RFC 7692 tells senders to drop.
  void compress(std::span<const std::byte> in, bool fin, std::vector<std::byte>& out);

  /// Bytes zlib allocated for this compressor.
  [[nodiscard]] std::size_t memory() const noexcept;

private:
  struct state;
  std::unique_ptr<state> state_;
};

/// The decompressing half of one side, for the messages it receives.
class inflater {
public:
  /// A decompressor for a peer compressing with a window of up to 2^window_bits bytes;
  /// with `no_context_takeover` (the peer resets its compressor) the window is dropped
  /// between messages. Each message inflates to at most `max_message_size` bytes.
  inflater(int window_bits, bool no_context_takeover, std::uint64_t max_message_size);
  inflater(const inflater&) = delete;
  inflater& operator=(const inflater&) = delete;
  ~inflater();

  /// Decompresses `in`, part of one message, appending to `out`; `fin` ends the
  /// message. Stops at once with `error::message_too_big` when the message would pass
  /// `max_message_size` (a deflate bomb costs no more than the limit), or with
  /// `error::bad_deflate_data` for data that is not deflate; either leaves the
  /// inflater unusable.
  [[nodiscard]] std::error_code inflate(std::span<const std::byte> in, bool fin, std::string& out);

  /// Bytes zlib allocated for this decompressor.
  [[nodiscard]] std::size_t memory() const noexcept;

private:
  struct state;
  std::unique_ptr<state> state_;
};

} // namespace websockets
