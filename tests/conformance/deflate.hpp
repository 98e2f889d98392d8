// The conformance client's own permessage-deflate (RFC 7692), written from the RFC on
// zlib directly, sharing nothing with the library under test: the check of the server's
// Sec-WebSocket-Extensions answer against our offer, and raw deflate streams to compress
// what we send and inflate what the server sends.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace conformance {

/// What an offer asked for, read back from its text ("permessage-deflate; ...").
struct deflate_offer {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::optional<int> server_max_window_bits{}; ///< with its value (a value is required)
  bool client_max_window_bits = false;         ///< offered, with or without a value
  std::optional<int> client_max_window_bits_value{};
};

/// The parameters both sides agreed on (RFC 7692 section 7.1).
struct deflate_agreement {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15; ///< the window the server compresses with, at most
  int client_max_window_bits = 15; ///< the window we may compress with, at most
};

/// Reads an offer we make; throws std::invalid_argument for one we cannot make.
[[nodiscard]] deflate_offer read_offer(std::string_view offer);

/// The server's answer (the value of its Sec-WebSocket-Extensions, none when absent)
/// checked against our offer, with RFC 7692's grammar and rules: one `permessage-deflate`
/// element, known parameters at most once each, window bits 8 to 15 as a decimal without
/// leading zeros (a token or a quoted string), `client_max_window_bits` only when offered
/// and never above the value offered, `server_max_window_bits` never above the value
/// offered, `server_no_context_takeover` when offered. None when the server declined (no
/// header); throws std::runtime_error saying what is wrong otherwise.
[[nodiscard]] std::optional<deflate_agreement> check_answer(const std::optional<std::string>& answer,
                                                            const deflate_offer& offer);

/// A raw deflate stream compressing the messages of one connection, RFC 7692 style.
class message_deflater {
public:
  /// A window of 2^window_bits bytes (9 to 15); with `no_context_takeover` every message
  /// compresses alone. `level` is zlib's (1 to 9).
  message_deflater(int window_bits, bool no_context_takeover, int level = 6);
  message_deflater(const message_deflater&) = delete;
  message_deflater& operator=(const message_deflater&) = delete;
  ~message_deflater();

  /// How a piece of a message ends.
  enum class ending {
    message,     ///< the message ends: flushed, its trailing 00 00 FF FF removed (RFC 7692 7.2.1)
    part,        ///< more of the message follows: flushed with 00 00 FF FF kept, so that
                 ///< the receiver can inflate everything so far
    final_block, ///< the message ends with a final block (BFINAL set, RFC 7692 7.2.3.3)
  };

  /// `data` compressed: a whole message, or a piece of one (`ending::part`, then the
  /// rest). Without context takeover the stream restarts with every message.
  [[nodiscard]] std::string compress(std::string_view data, ending how = ending::message);

private:
  struct state;
  std::unique_ptr<state> state_;
};

/// A raw inflate stream decompressing the server's compressed messages.
class message_inflater {
public:
  /// The server's window is at most 2^window_bits bytes (8 to 15): a back reference
  /// further away (give or take 512 bytes, see inflate()) is an error. With `no_context_takeover` the window is dropped after
  /// every message, so that a reference into an earlier message is an error too.
  message_inflater(int window_bits, bool no_context_takeover);
  message_inflater(const message_inflater&) = delete;
  message_inflater& operator=(const message_inflater&) = delete;
  ~message_inflater();

  /// One whole message's payload, inflated after appending 00 00 FF FF (RFC 7692
  /// section 7.2.2); none and `error` when it is not valid deflate data.
  [[nodiscard]] std::optional<std::string> inflate(std::string_view payload, std::string& error);

private:
  struct state;
  std::unique_ptr<state> state_;
};

} // namespace conformance
