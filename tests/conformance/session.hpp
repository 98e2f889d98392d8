// One case's connection and its checks: a case sends frames through a session and states
// what the server must do in return, event by event; the first difference ends the case
// with a `case_failed` saying what was expected and what was observed.
#pragma once

#include "client.hpp"
#include "wire.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace conformance {

/// A case's verdict when the server did something else than expected.
struct case_failed {
  std::string expected;
  std::string observed;
};

/// One thing the server must do next.
struct expectation {
  event::kind what = event::kind::tcp_closed;
  std::uint8_t opcode = 0;                          ///< message
  std::string payload{};                            ///< message, pong
  std::vector<std::optional<std::uint16_t>> codes{}; ///< close: those allowed, nullopt for none
  bool optional = false;                            ///< may be missing (implementation-defined)
};

[[nodiscard]] expectation message(std::uint8_t opcode, std::string payload);
[[nodiscard]] expectation pong(std::string payload);
[[nodiscard]] expectation close_with(std::vector<std::optional<std::uint16_t>> codes);
/// The server closes TCP (or resets it), from its side.
[[nodiscard]] expectation tcp_close();
[[nodiscard]] expectation optional(expectation e);

/// A connection to the server under test for one case.
class session {
public:
  /// `seed` (the case's id) makes masking keys and the handshake key reproducible. With
  /// an `offer` (permessage-deflate) the server must accept it: `case_failed` otherwise.
  session(const server_address& server, std::string_view seed, std::chrono::milliseconds patience,
          const std::optional<std::string>& offer = std::nullopt);

  /// The frame's bytes, masked with a fresh key.
  [[nodiscard]] std::string encode(const frame& f);
  /// Sends the frames back to back, in writes of at most `chop` bytes (0: in one go).
  void send(const std::vector<frame>& frames, std::size_t chop = 0, std::chrono::microseconds pause = {});
  /// Sends each frame in writes of its own, `pause` apart (Autobahn's per-frame chops).
  void send_each(const std::vector<frame>& frames, std::chrono::microseconds pause);
  /// Sends raw bytes.
  void send_bytes(std::string_view bytes, std::size_t chop = 0, std::chrono::microseconds pause = {});

  /// The server does exactly these things next, in this order.
  void expect(const std::vector<expectation>& expected);
  /// The server does nothing for `quiet`.
  void expect_quiet(std::chrono::milliseconds quiet);
  /// The server fails the connection: a close frame with `code`, then it closes TCP.
  void expect_failure(std::uint16_t code, std::vector<expectation> before = {});
  /// We close with 1000; the server answers with 1000 and closes TCP.
  void close_normally();

  /// permessage-deflate as agreed in the handshake; none without it.
  [[nodiscard]] const std::optional<deflate_agreement>& deflate() const { return client_.deflate(); }
  /// Whole messages received, and how many came compressed.
  [[nodiscard]] std::size_t messages_received() const { return client_.messages_received(); }
  [[nodiscard]] std::size_t compressed_received() const { return client_.compressed_received(); }
  /// A whole message (or a piece of one) compressed by our side of the connection
  /// (window and context takeover as agreed), to send with RSV1 on its first frame.
  [[nodiscard]] std::string compress(std::string_view data, message_deflater::ending how = message_deflater::ending::message);

  /// How long to wait for each thing the server must do from now on.
  void set_patience(std::chrono::milliseconds patience) { patience_ = patience; }

  /// The server's TCP close was observed: the case saw the connection to its end.
  [[nodiscard]] bool finished() const { return finished_; }

private:
  [[nodiscard]] mask_key fresh_key();

  std::mt19937 random_;
  std::chrono::milliseconds patience_;
  client client_;
  std::unique_ptr<message_deflater> deflater_; // once a case compresses
  bool finished_ = false;
};

} // namespace conformance
