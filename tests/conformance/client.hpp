// The conformance client's connection: a non-blocking POSIX socket driven with poll(),
// which does the opening handshake, writes bytes exactly as a case chops them, and turns
// what the server sends into events, checking every frame against RFC 6455 on the way.
#pragma once

#include "deflate.hpp"
#include "wire.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace conformance {

/// Where the server listens: ws://host:port/path.
struct server_address {
  std::string host;
  std::uint16_t port = 0;
  std::string path = "/";
};

/// Parses `ws://host:port[/path]`; throws std::invalid_argument otherwise.
[[nodiscard]] server_address parse_ws_url(std::string_view url);

/// Something the server did, as a case observes it.
struct event {
  enum class kind {
    message,    ///< a whole text or binary message, reassembled from its frames
    ping,
    pong,
    close,      ///< a valid close frame
    tcp_closed, ///< the server closed TCP (read returned 0)
    tcp_reset,  ///< the server reset TCP
    timeout,    ///< nothing within the wait
    violation,  ///< the server broke the protocol (masked frame, bad close code, ...)
  };
  kind what = kind::timeout;
  std::uint8_t opcode = 0;           ///< message: op::text or op::binary
  std::string payload{};             ///< message, ping and pong payload; close reason
  std::optional<std::uint16_t> code{}; ///< close: its code, none when the payload was empty
  std::string detail{};              ///< violation: what was wrong
};

/// One line for a report: "close 1002", "text message of 65536 bytes 2a2a...", ...
[[nodiscard]] std::string describe(const event& e);

/// A WebSocket connection to the server under test, open once constructed.
class client {
public:
  /// Connects and does the opening handshake with `key` (base64 of 16 bytes), offering
  /// `offer` in Sec-WebSocket-Extensions (a permessage-deflate offer) if any; throws
  /// std::runtime_error saying what went wrong, an answer breaking RFC 7692 included.
  /// `patience` bounds every wait.
  client(const server_address& server, const std::string& key, std::chrono::milliseconds patience,
         const std::optional<std::string>& offer = std::nullopt);
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  ~client();

  /// Writes `bytes` in writes of at most `chop` bytes (0: as few as the kernel allows),
  /// sleeping `pause` between them. Reads whatever arrives meanwhile, so that a server
  /// echoing while we write never deadlocks us. Stops quietly when the server has closed
  /// (the case then observes the close); throws when the server stops reading.
  void send(std::string_view bytes, std::size_t chop = 0, std::chrono::microseconds pause = {});

  /// The next event, waiting at most `wait` for it.
  [[nodiscard]] event next(std::chrono::milliseconds wait);

  /// permessage-deflate as agreed in the handshake; none without it.
  [[nodiscard]] const std::optional<deflate_agreement>& deflate() const { return agreed_; }
  /// Whole messages received so far, and how many of them came compressed.
  [[nodiscard]] std::size_t messages_received() const { return messages_received_; }
  [[nodiscard]] std::size_t compressed_received() const { return compressed_received_; }

private:
  void handshake(const server_address& server, const std::string& key, const std::optional<std::string>& offer);
  /// Reads what is available within `wait_ms` into `inbound_`; false when nothing came.
  bool read_some(int wait_ms);
  /// The next event already in `inbound_`, if any.
  std::optional<event> decode();
  /// The event one frame makes, if any (a middle fragment makes none).
  std::optional<event> on_frame(const wire_frame& f);

  int fd_ = -1;
  std::chrono::milliseconds patience_;
  inbound_bytes inbound_;
  bool eof_ = false;
  bool reset_ = false;
  bool write_failed_ = false;
  bool close_seen_ = false;
  std::optional<std::uint8_t> message_opcode_; // the server's fragmented message in progress
  bool message_compressed_ = false;             // its first frame had RSV1
  std::string message_;
  std::optional<deflate_agreement> agreed_;
  std::unique_ptr<message_inflater> inflater_;
  std::size_t messages_received_ = 0;
  std::size_t compressed_received_ = 0;
};

} // namespace conformance
