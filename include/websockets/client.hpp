// The WebSocket client: connect to a ws:// url and get the same socket type a server
// hands out, with the same send and receive API.
#pragma once

#include <websockets/deflate.hpp>
#include <websockets/socket.hpp>
#include <websockets/tls.hpp>
#include <websockets/upgrade.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace websockets {

/// What `connect` allows. (Named apart from `client_options`, which is the handshake's
/// own part and sits inside as `handshake`.)
struct connect_options {
  /// Largest message from the server, reassembled; past it the socket closes with 1009.
  std::uint64_t max_message_size = 16 << 20;
  /// Largest frame payload from the server; past it the socket closes with 1009.
  std::uint64_t max_frame_size = 16 << 20;
  /// Most frames in one message from the server; past it the socket closes with 1009.
  std::uint32_t max_fragments = 1 << 17;
  /// Time for resolving, connecting and the whole opening handshake.
  std::chrono::milliseconds handshake_timeout{10000};
  /// Time the server has to answer our close frame, and then to close TCP.
  std::chrono::milliseconds close_timeout{5000};
  /// Idle time after which the server is pinged, and the socket closed when nothing
  /// comes back within the same time again; zero (the default) disables it.
  std::chrono::milliseconds timeout{0};
  /// Largest response head accepted.
  std::size_t max_head_size = 8192;
  /// Events each generator buffers before the socket's reader waits.
  std::size_t event_queue = 64;
  /// Bytes queued for sending and not written yet, past which `overflow` decides.
  std::size_t max_queued_bytes = 4 << 20;
  /// What a send past `max_queued_bytes` meets; a client waits by default.
  overflow_policy overflow = overflow_policy::wait;
  /// A single-frame message of at least this many bytes is streamed like a fragmented
  /// one when anyone reads the socket's streams.
  std::uint64_t stream_threshold = 64 * 1024;
  /// permessage-deflate (RFC 7692), off by default: `{.enabled = true}` offers it; a
  /// server that accepts with parameters breaking the offer fails the connection
  /// (`error::bad_extension_response`).
  deflate_options deflate{};
  /// Origin, subprotocols, extensions and extra headers of the request.
  client_options handshake{};
  /// For `wss://` urls: the server's certificate is checked against the system's trust
  /// anchors and the url's host unless told otherwise.
  client_tls tls{};
};

/// Opens a WebSocket connection to `url` (`ws[s]://host[:port][/path][?query]`). The
/// socket starts reading on the executor's next turn: subscribe to its generators
/// right after this returns, before any other `co_await`, and nothing is missed.
/// Throws `std::system_error` with a `websockets::error` when the server's answer is
/// not a valid upgrade (`error::bad_status` for an HTTP error status such as 503),
/// with a system error when the connection fails (an `asio::error::get_ssl_category()`
/// one when TLS fails, a certificate that does not verify included) or
/// `error::handshake_timeout` after the handshake timeout, and `std::invalid_argument`
/// for a url it cannot use or an executor that is neither an io_context's nor a strand
/// of one (the socket's completions run on `executor`).
///
/// With g++ 12, name the options before the call (`connect_options o{...}; co_await
/// connect(ex, url, o);`): it miscompiles an aggregate temporary written inside a
/// `co_await` expression.
asio::awaitable<std::shared_ptr<socket>> connect(asio::any_io_executor executor, std::string_view url,
                                                 const connect_options& options);

/// Same, with the default options.
asio::awaitable<std::shared_ptr<socket>> connect(asio::any_io_executor executor, std::string_view url);

} // namespace websockets
