// The WebSocket server (the seed's WebSocketServer): it listens, upgrades, keeps the
// registry of open sockets, reports their events through generators, and sends to all
// of them (broadcast, co_write streams, pipes).
#pragma once

#include <websockets/deflate.hpp>
#include <websockets/event.hpp>
#include <websockets/frame.hpp>
#include <websockets/generator.hpp>
#include <websockets/http.hpp>
#include <websockets/socket.hpp>
#include <websockets/tls.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <any>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace websockets {

namespace detail {
class server_core;
struct server_access;
} // namespace detail

/// How a server listens and what it allows. The first three are the seed's options,
/// with its defaults.
struct server_options {
  /// Where to listen (`ws://host:port/path` or `wss://...`, parsed with Boost.URL).
  /// Only `path` upgrades; other paths get 404. `localhost` listens on 127.0.0.1 and
  /// ::1; port 0 picks a free port (see `server::local_endpoint`). `wss://` serves TLS
  /// with the certificate and key of `tls`.
  std::string url = "ws://localhost:3000";
  /// Idle time after which a socket is pinged; when nothing at all comes back within
  /// the same time again, it is closed (close frame 1001 "idle timeout", close event
  /// 1006, error event `error::idle_timeout`). Zero disables it.
  std::chrono::milliseconds timeout{600000};
  /// Open sockets allowed; the next upgrade is refused with HTTP 503 and fires no event.
  std::size_t max_connections = 10;
  /// Largest message, reassembled; past it the socket is closed with 1009.
  std::uint64_t max_message_size = 16 << 20;
  /// Largest frame payload; past it the socket is closed with 1009.
  std::uint64_t max_frame_size = 16 << 20;
  /// Most frames in one message; past it the socket is closed with 1009. Each frame
  /// costs a head's parsing and, for a streamed message, one event.
  std::uint32_t max_fragments = 1 << 17;
  /// Time a client has to send its whole upgrade request.
  std::chrono::milliseconds handshake_timeout{10000};
  /// Time the peer has to answer our close frame before TCP is closed anyway.
  std::chrono::milliseconds close_timeout{5000};
  /// Largest upgrade request head; past it the answer is 431.
  std::size_t max_head_size = 8192;
  /// Events each generator buffers before the connections producing them wait: a
  /// socket's own generators hold this many, the server's this many per open socket
  /// (so that many sockets do not queue for one small buffer). Buffers grow as they fill.
  std::size_t event_queue = 64;
  /// Bytes queued for one socket and not written yet, past which `overflow` decides.
  std::size_t max_queued_bytes = 4 << 20;
  /// What a message to a socket past `max_queued_bytes` meets: by default the slow
  /// socket is closed with 1008, so it never slows the others nor grows memory.
  overflow_policy overflow = overflow_policy::close;
  /// A single-frame message of at least this many bytes is streamed, as a fragmented
  /// one is: its bytes go to `streams()` and pipes as they arrive, not reassembled, when
  /// anyone reads streams. Smaller ones always arrive whole as `message`.
  std::uint64_t stream_threshold = 64 * 1024;
  /// permessage-deflate (RFC 7692), off by default: `{.enabled = true}` accepts a
  /// client's offer. The server compresses every message on its own with compressors
  /// shared by all sockets (a broadcast compresses once), so a connection costs only
  /// its inflater (2^peer_window_bits bytes of window, plus about 7 KB). A stream
  /// (`co_write`, `pipe`) is one compressed message for every peer that agreed, whatever
  /// its size (`threshold` does not apply), with compressors of its own while it runs.
  deflate_options deflate{};
  /// Subprotocols the server speaks, in its order of preference: the first of them the
  /// client offers is chosen (an accept hook may choose instead); none when empty.
  std::vector<std::string> subprotocols{};
  /// Origins allowed to connect, such as `https://example.com` (compared ignoring ASCII
  /// case): a request from another origin gets 403. Empty allows every origin; requests
  /// without `Origin` (not from a browser) always pass.
  std::vector<std::string> allowed_origins{};
  /// The certificate and key of a `wss://` server; unused for `ws://`. Plain HTTP
  /// requests (`on_http`) are served over TLS too.
  server_tls tls{};
  /// Other instances to share broadcasts and streams with, through a Redis pub/sub
  /// channel: `redis://host[:port][/channel]` (port 6379, channel `websockets` by
  /// default); empty: this instance alone. What this server broadcasts, streams with
  /// `co_write` or relays with `pipe` reaches the peers of every instance on the channel
  /// once (`except` and `include_sender` concern this instance's sockets only), and
  /// what they send reaches ours, each instance's in its order. Delivery is at most
  /// once: while Redis is away (an error event `error::redis_unavailable`; the server
  /// reconnects by itself with back-off) each instance serves its own peers only, and
  /// what was sent meanwhile does not cross; a stream cut by an outage, or by its
  /// server's stop, ends early at the other instances. Needs a build with hiredis
  /// (`std::invalid_argument` otherwise).
  std::string redis{};
  /// Event loops, each on a thread of its own, among which accepted sockets are shared
  /// out in turn (one acceptor hands them out); each socket lives on one loop all its
  /// life. The first loop is the server's executor, which the application runs
  /// (`threads` > 1 needs an `asio::io_context` executor there); the server starts the
  /// other `threads - 1` and joins them when it is destroyed. Broadcasts and `co_write`
  /// streams are still encoded once and reach the peers of every loop; the generators
  /// deliver the events of every loop on the server's executor. See `server` for which
  /// calls are safe from which thread. 0 is invalid (`std::invalid_argument`).
  std::size_t threads = 1;
};

/// What an accept hook decides about one upgrade request.
struct accept_decision {
  /// 0 accepts; an HTTP status from 300 to 599 refuses the upgrade with it and `body`.
  unsigned status = 0;
  /// The refusal's plain-text body; the status's reason phrase when empty.
  std::string body{};
  /// The subprotocol to answer with, one the client offered; empty lets the server
  /// choose from `server_options::subprotocols`.
  std::string subprotocol{};
  /// Attached to the socket as `socket::user_data()`.
  std::any user_data{};
  /// More header lines for the 101 response or the refusal, such as `Set-Cookie`.
  std::vector<std::pair<std::string, std::string>> headers{};
};

/// Looks at an upgrade request that passed every check of the server (path, origin,
/// connection limit) and accepts or refuses it. The request gives the path and query
/// (`head().target_url()`, Boost.URL), the headers and the cookies. An exception
/// refuses with 500.
using accept_hook = std::function<asio::awaitable<accept_decision>(const upgrade_request&)>;

/// Answers a plain HTTP request (not an upgrade) with a whole HTTP response, which the
/// server writes before closing the connection.
using http_handler = std::function<asio::awaitable<std::string>(const http_head&)>;

/// How `pipe` relays.
struct pipe_options {
  /// Relay to the sending socket too (an echo of the stream), not only to the others.
  bool include_sender = false;
};

/// A WebSocket server. Runs on one executor: a single-threaded io_context's, or a
/// strand of one (README, Threads). `co_await stop()` before destroying it to close sockets gracefully;
/// destroying a running server drops its connections.
///
/// Threads (`server_options::threads` > 1). The server's own calls (listen, accept,
/// on_http, on_upgrade, the generators, broadcast, co_write, stop, sockets,
/// connection_count, pipe's target) are made on the server's executor, as with one
/// thread; the accept and HTTP hooks run there too. The generators' events come from
/// the sockets of every loop, each socket's in order. A socket lives on the loop of
/// `socket::executor()`:
///  - `send`, `ping` and `close` may be awaited from any thread: called off the
///    socket's loop, they hop to it (a coroutine each time) and back;
///  - its generators (`messages()`, `streams()`, `events()`) may be made and read
///    from any thread (a hop per `next()` off its loop), and so may `pipe`;
///  - `id`, `role`, `request`, `subprotocol` and `user_data` (as set by the accept
///    hook) may be read from any thread, and so may `buffered_amount` and
///    `dropped_messages` (a moment's value); `is_open` and `remote_endpoint` only on
///    the socket's loop.
/// To serve a socket at full speed, run its per-socket code on its loop:
/// `co_spawn(sock->executor(), session(sock), detached)`. Destroying the server joins
/// its threads (waiting up to the close timeout for their sockets to wind down): code of
/// the application still suspended on a loop then never resumes; its sockets keep
/// their loop's io_context alive (not running) until they are dropped.
class server {
public:
  /// A server; listens only when `listen()` is called. Throws `std::invalid_argument`
  /// for an executor that is neither an io_context's nor a strand of one, for a url that
  /// is not `ws[s]://host[:port][/path]`, and for a `wss://` url whose certificate or key
  /// cannot be used.
  explicit server(asio::any_io_executor executor, server_options options = {});
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server();

  /// Binds the url's host and port (both loopback addresses for `localhost`) at once,
  /// throwing `std::system_error` if it cannot, and returns the accept loop, which
  /// runs until `stop()`. Binding happens in the call, so `local_endpoint()` is known
  /// as soon as `listen()` returns, even before the loop is awaited or spawned.
  [[nodiscard]] asio::awaitable<void> listen();

  /// The address bound by `listen()`: with port 0 in the url, the port actually chosen.
  [[nodiscard]] asio::ip::tcp::endpoint local_endpoint() const;

  /// Takes over a connection accepted elsewhere (an HTTP server built on Asio, the
  /// seed's `listen(http.Server)`), with the bytes already read from it, which may be
  /// all or part of the upgrade request. Completes once the handshake is answered;
  /// the connection then runs on its own. A `wss://` server does the TLS handshake on
  /// it, so nothing may have been read (`std::invalid_argument` otherwise).
  asio::awaitable<void> accept(asio::ip::tcp::socket tcp, std::string_view already_read = {});

  /// Sets the handler for plain HTTP requests (any path); without one they get 426.
  void on_http(http_handler handler);

  /// Sets the hook that accepts or refuses each upgrade request (authentication,
  /// per-socket data, a subprotocol of its choice); without one every valid request is
  /// accepted.
  void on_upgrade(accept_hook hook);

  /// New sockets (the seed's `open`). A socket starts reading once its consumers have
  /// taken it from here: subscribe to its own generators before the next `co_await`
  /// and none of its messages is missed.
  [[nodiscard]] generator<std::shared_ptr<socket>> connections();
  /// Every socket's messages (the seed's `message`).
  [[nodiscard]] generator<message> messages();
  /// Every socket's pongs (the seed's `pong`).
  [[nodiscard]] generator<pong_event> pongs();
  /// Every socket's close, exactly once each (the seed's `close`).
  [[nodiscard]] generator<close_event> closes();
  /// Protocol errors, timeouts and failed handshakes (the seed's `error`).
  [[nodiscard]] generator<error_event> errors();
  /// Streamed messages as they arrive (fragmented ones, and single frames of at least
  /// `stream_threshold` bytes; the seed's `stream:start` and `stream:end`,
  /// with the pieces between). After a `stream_start`, the sender's socket reads on
  /// only once the consumers have taken it, so a `pipe` attached before the consumer's
  /// next `co_await` relays the stream from its first byte.
  [[nodiscard]] generator<stream_event> streams();
  /// All of the above in one stream, in order.
  [[nodiscard]] generator<event> events();

  /// Sends one whole message to every open socket (the seed's `broadcast`): the frame
  /// is encoded once and the same bytes are queued for every peer. `head` gives the
  /// opcode: text, binary (`fin` must be set: streams go through `co_write`) or ping.
  /// Completes once every peer has it queued; a peer in the middle of a stream gets it
  /// after the stream, and peers with room are served before peers without. With
  /// `threads` > 1, the peers of the other loops get it in order too, from their own
  /// thread, without being waited for unless more than 32 deliveries to a loop, or
  /// more than an eighth of `max_queued_bytes`, are still in progress.
  /// Throws `std::invalid_argument` for other heads. `except`, when given, is left out
  /// (the sender of a relayed message, typically).
  asio::awaitable<void> broadcast(frame_head head, std::span<const std::byte> payload,
                                  const socket* except = nullptr);
  /// Same, for text.
  asio::awaitable<void> broadcast(frame_head head, std::string_view payload, const socket* except = nullptr);

  /// Streams one fragment to every open socket (the seed's `write`); an empty chunk
  /// ends the stream with a final frame. The first chunk fixes the recipients (the
  /// sockets open then) and the opcode; other streams and sends to those sockets wait
  /// until this stream ends. One stream at a time: `co_write` calls from different
  /// coroutines are fragments of the same stream.
  asio::awaitable<void> co_write(std::span<const std::byte> chunk,
                                 websockets::opcode opcode = opcode::binary);

  /// Stops: closes the listening sockets, closes every socket with 1001, waits up to
  /// the close timeout for them, drops the rest, then ends every generator.
  asio::awaitable<void> stop();

  /// The open sockets.
  [[nodiscard]] std::size_t connection_count() const noexcept;

  /// The open sockets, in the order they opened.
  [[nodiscard]] std::vector<std::shared_ptr<socket>> sockets() const;

  /// The options in force.
  [[nodiscard]] const server_options& options() const noexcept;

  /// True while the link to the other instances (the `redis` option) is up and
  /// subscribed: what is broadcast now reaches them. Always false without `redis`.
  [[nodiscard]] bool redis_connected() const noexcept;

  /// The executors of the server's event loops (`server_options::threads` of them),
  /// the server's own first.
  [[nodiscard]] std::vector<asio::any_io_executor> executors() const;

private:
  friend struct detail::server_access;
  std::shared_ptr<detail::server_core> core_;
};

/// Relays a streamed message from `from` to every other open socket of `to` as it
/// arrives (the seed's `socket.pipe(server)`): the current one when called on taking
/// its `stream_start`, before the next `co_await`; otherwise the next one.
/// Attaches at the call, before the first suspension, so `co_spawn(ex, pipe(s, srv),
/// detached)` right in the `stream_start` handler relays the whole stream. Completes
/// when the relayed stream ends (or `from` closes). Relays are streams like
/// `co_write`: one at a time per server, so a second sender waits (and, through TCP,
/// its peer) until the first stream ends. Do not await it in the loop that reads the
/// same generator: that loop must keep reading while the relay runs.
asio::awaitable<void> pipe(std::shared_ptr<socket> from, server& to, pipe_options options = {});

} // namespace websockets
