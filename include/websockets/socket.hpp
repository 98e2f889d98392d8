// One WebSocket connection (the seed's WebSocketSocket), on the server or the client
// side. A socket is always held by std::shared_ptr: the connection's coroutines keep
// it alive until the connection has closed and reported its close event.
#pragma once

#include <websockets/close_code.hpp>
#include <websockets/event.hpp>
#include <websockets/frame.hpp>
#include <websockets/generator.hpp>
#include <websockets/upgrade.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <any>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>

namespace websockets {

/// What happens to a message for a socket whose queue of unsent bytes is past its
/// `max_queued_bytes`: a peer that reads slower than it is sent to.
enum class overflow_policy : std::uint8_t {
  /// Close the socket with 1008 (what is queued and not being written is dropped):
  /// error event `error::send_queue_full`. A slow peer costs at most its limit.
  close,
  /// Drop the message for that socket only, counted in `dropped_messages()` and
  /// reported as error event `error::message_dropped`. A stream's fragment cannot be
  /// dropped alone: a stream that finds no room closes the socket as `close` does.
  drop,
  /// The sender waits until the queue has room: lossless backpressure, at the cost of
  /// a slow peer slowing whoever sends to it.
  wait,
};

namespace detail {
class connection;
struct socket_access;
} // namespace detail

/// One connection. Sends are safe from any coroutine (off the socket's executor, they
/// hop to it: see `server` about threads); they queue whole frames for one writer, which sends everything queued in one gather
/// write. Data frames of different messages never interleave: a send to a socket
/// that is receiving a server stream (`server::co_write`, `pipe`) waits for the end
/// of that stream. Pings and pongs may go between the frames of a stream.
///
/// Every `co_await` returns an `std::error_code` instead of throwing: empty when the
/// frame was queued, `error::not_open` once the socket is closing or closed.
class socket : public std::enable_shared_from_this<socket> {
public:
  socket(const socket&) = delete;
  socket& operator=(const socket&) = delete;
  ~socket();

  /// A number unique among the sockets of this process, for logs and maps.
  [[nodiscard]] std::uint64_t id() const noexcept;

  /// Which end this socket is: `role::server` for sockets a server accepted.
  [[nodiscard]] websockets::role role() const noexcept;

  /// Sends a text message (one frame). `text` must be UTF-8: the peer checks it.
  /// Completes once the frame is queued; with a queue past `max_queued_bytes`, as the
  /// overflow policy says: `error::send_queue_full` (closed), `error::message_dropped`,
  /// or after waiting for room.
  asio::awaitable<std::error_code> send(std::string_view text);

  /// Sends a binary message (one frame).
  asio::awaitable<std::error_code> send(std::span<const std::byte> bytes);

  /// Sends a message with an explicit opcode (`opcode::text` or `opcode::binary`).
  asio::awaitable<std::error_code> send(websockets::opcode opcode, std::span<const std::byte> payload);

  /// Sends a ping; its pong comes back as a `pong_event`. At most 125 bytes
  /// (`std::errc::message_size` otherwise). Pings go ahead of queued data frames.
  asio::awaitable<std::error_code> ping(std::span<const std::byte> payload = {});

  /// Closes with the full handshake: sends a close frame with `code` and `reason` (cut
  /// to 123 bytes), waits for the peer's close frame up to the close timeout, then
  /// closes TCP. Completes when the socket is closed and its close event is out:
  /// empty when the peer answered, `error::close_timeout` when it did not, or
  /// `error::connection_dropped` when TCP ended first (the close event then reports
  /// 1006); `std::errc::invalid_argument` for a code that may not be sent (1005, 1006,
  /// 1015, ...). Closing a closed socket does nothing.
  asio::awaitable<std::error_code> close(close_code code = close_code::normal,
                                         std::string_view reason = {});

  /// This socket's messages (text and binary; fragmented ones reassembled). A streamed
  /// message comes here only when nobody reads it as a stream.
  [[nodiscard]] generator<message> messages();

  /// This socket's streamed messages (fragmented, or one frame of at least the
  /// `stream_threshold` option's size), piece by piece as they arrive.
  [[nodiscard]] generator<stream_event> streams();

  /// Every event of this socket in order: messages, pongs, streams, errors, and
  /// finally its close event. A client reads its close code here.
  [[nodiscard]] generator<event> events();

  /// The upgrade request that opened this socket (path, query, headers, origin);
  /// empty for a client's socket. The socket keeps only the request's bytes until this
  /// is first called (from any thread), which parses them once.
  [[nodiscard]] const upgrade_request& request() const;

  /// The subprotocol the handshake chose (`Sec-WebSocket-Protocol`); empty for none.
  [[nodiscard]] std::string_view subprotocol() const noexcept;

  /// What the server's accept hook attached to this socket (`accept_decision::user_data`),
  /// for the application to keep per-socket state in; empty otherwise. Read it with
  /// `std::any_cast<T&>(sock->user_data())`.
  [[nodiscard]] std::any& user_data() noexcept;

  /// The peer's address; a default endpoint once the socket is closed.
  [[nodiscard]] asio::ip::tcp::endpoint remote_endpoint() const noexcept;

  /// True until a close frame was sent or received or the connection dropped: while
  /// sends are accepted.
  [[nodiscard]] bool is_open() const noexcept;

  /// Bytes queued for sending and not written yet (the browser's `bufferedAmount`).
  [[nodiscard]] std::size_t buffered_amount() const noexcept;

  /// Messages dropped for this socket by `overflow_policy::drop`.
  [[nodiscard]] std::uint64_t dropped_messages() const noexcept;

  /// The executor the socket lives on: its I/O and state are used there (the event
  /// loop of a server with `threads` > 1 it was given to, else the server's or the
  /// client's executor).
  [[nodiscard]] const asio::any_io_executor& executor() const noexcept;

private:
  friend struct detail::socket_access;
  explicit socket(std::unique_ptr<detail::connection> connection) noexcept;

  std::unique_ptr<detail::connection> connection_;
};

} // namespace websockets
