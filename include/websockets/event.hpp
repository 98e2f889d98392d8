// Events: what a connection reports, one type per kind, each naming the socket it
// concerns. They are the seed's seven events (`open`, `message`, `pong`, `close`,
// `error`, `stream:start`, `stream:end`) plus `stream_data`, the fragments of a stream
// as they arrive, which the seed handed on through its stream interface.
#pragma once

#include <websockets/close_code.hpp>
#include <websockets/frame.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>

namespace websockets {

class socket;

/// A socket completed its opening handshake and joined the server (the seed's `open`).
struct open_event {
  std::shared_ptr<socket> peer; ///< The new socket.
};

/// A whole message: a single frame, or a fragmented one reassembled (the seed's `message`).
struct message {
  std::shared_ptr<socket> peer;     ///< Who sent it.
  websockets::opcode opcode{};      ///< `opcode::text` or `opcode::binary`.
  std::string payload;              ///< The bytes; for text, valid UTF-8 (checked on receipt).

  /// The payload as text; meaningful for `opcode::text`.
  [[nodiscard]] std::string_view text() const noexcept { return payload; }
  /// The payload as bytes, for binary messages.
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
    return std::as_bytes(std::span{payload.data(), payload.size()});
  }
};

/// A pong arrived, answering a ping or as a heartbeat (the seed's `pong`).
struct pong_event {
  std::shared_ptr<socket> peer; ///< Who sent it.
  std::string payload;          ///< 0 to 125 bytes.
};

/// A connection ended; fired exactly once per socket, after which the socket has left
/// the server (the seed's `close`).
struct close_event {
  std::shared_ptr<socket> peer; ///< The socket that closed.
  /// The code of the first close frame received, or: 1005 when that frame had no code,
  /// 1006 when none came (the TCP connection dropped, or the peer never answered our
  /// close or our idle ping), or the code we failed the connection with after a
  /// protocol error (1002, 1007, 1009).
  std::uint16_t code = static_cast<std::uint16_t>(close_code::abnormal);
  std::string reason; ///< The close frame's reason, possibly empty.
};

/// Something went wrong (the seed's `error`): a protocol error of a peer, an idle
/// timeout, a failed handshake. Always followed, for a socket, by its `close_event`.
struct error_event {
  std::shared_ptr<socket> peer; ///< The socket concerned; null for server-level errors.
  std::error_code error;        ///< A `websockets::error`, or a system error for I/O.
};

/// A streamed message began arriving (the seed's `stream:start`): a fragmented one, or
/// one frame of at least the `stream_threshold` option's size (the seed's "chunked
/// payload"), which is then handed on as its bytes arrive instead of whole. Call
/// `pipe(peer, server)` before the next `co_await` to relay it whole.
struct stream_start {
  std::shared_ptr<socket> peer; ///< Who sends it.
  websockets::opcode opcode{};  ///< `opcode::text` or `opcode::binary`.
};

/// A piece of a streamed message, as it arrived. Pieces follow the network, not the
/// sender's frames: a frame may come in several pieces.
struct stream_data {
  std::shared_ptr<socket> peer; ///< Who sends it.
  std::string chunk;            ///< Never empty.
};

/// A streamed message ended (the seed's `stream:end`).
struct stream_end {
  std::shared_ptr<socket> peer; ///< Who sent it.
};

/// The events of a stream, in order.
using stream_event = std::variant<stream_start, stream_data, stream_end>;

/// Any event, for `events()`: one stream of every kind in the order they happened
/// (per socket; events of different sockets interleave).
using event = std::variant<open_event, message, pong_event, close_event, error_event,
                           stream_start, stream_data, stream_end>;

} // namespace websockets
