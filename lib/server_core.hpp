// Private: the state behind websockets::server, shared with its connections (which
// report events into its hubs and leave its registry when they close).
#pragma once

#include "connection.hpp"

#include <websockets/server.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace websockets::detail {

struct redis_record;

/// Throws `std::invalid_argument` for a `server_options::redis` url this build cannot use.
void check_redis_option(const std::string& url);

/// The hubs behind the server's generators. The server's own live on its executor;
/// each further event loop has stand-ins that forward to them (`hub::forward_to`).
struct server_hubs {
  explicit server_hubs(std::size_t capacity)
      : connections_(capacity), messages_(capacity), pongs_(capacity), closes_(capacity),
        errors_(capacity), streams_(capacity), events_(capacity) {}
  hub<std::shared_ptr<socket>> connections_;
  hub<message> messages_;
  hub<pong_event> pongs_;
  hub<close_event> closes_;
  hub<error_event> errors_;
  hub<stream_event> streams_;
  hub<event> events_;
  /// Each generator made from now on holds `capacity` events per open socket.
  void scale_with(const publisher_count& open_sockets) noexcept {
    connections_.scale_with(open_sockets);
    messages_.scale_with(open_sockets);
    pongs_.scale_with(open_sockets);
    closes_.scale_with(open_sockets);
    errors_.scale_with(open_sockets);
    streams_.scale_with(open_sockets);
    events_.scale_with(open_sockets);
  }
};

/// One event loop of a server (`server_options::threads`): the first is the server's
/// executor, run by the application; the others are io_contexts of the server's own,
/// each run by a thread of its own. A socket lives on one loop: its I/O, its state
/// and what it shares with the other sockets of its loop (read buffers, compressors).
struct server_loop {
  std::size_t index = 0;
  std::shared_ptr<asio::io_context> context; // loops past the first
  asio::any_io_executor ex;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  std::future<void> finished; // the thread's run() has returned
  std::shared_ptr<buffer_pool> buffers;
  std::unique_ptr<idle_watch> idle; // with a `timeout`: the watchdog of this loop's sockets
  std::array<std::unique_ptr<message_compressor>, 16> compressors; // by window bits
  server_hubs* hubs = nullptr;            // where this loop's sockets report events
  std::unique_ptr<server_hubs> stand_ins; // loops past the first: forwarding to the server's
  std::set<tcp_socket*> handshaking;
  // Deliveries to this loop's peers posted by the server's executor and not done yet
  // (and the bytes of their largest frames), and where it waits past `max_in_flight`
  // of them or an eighth of `max_queued_bytes` (used on the server's executor only).
  static constexpr std::size_t max_in_flight = 32;
  std::size_t in_flight = 0;
  std::size_t in_flight_bytes = 0;
  std::unique_ptr<notifier> room;
  /// The compressor shared by this loop's sockets whose messages go out with `window_bits`.
  message_compressor& compressor(int window_bits, const deflate_options& options);
  /// Runs `f` on this loop: now when called on it, else posted.
  void run_here(std::function<void()> f);
};

class server_core : public server_hubs, public std::enable_shared_from_this<server_core> {
public:
  server_core(asio::any_io_executor ex, server_options options);
  ~server_core();

  // Listening and handshakes.
  void bind();
  asio::awaitable<void> accept_all();
  /// Runs the handshake of `tcp`, whose handlers run on `ex` (its loop's executor, or
  /// the executor of a connection handed to `server::accept`).
  asio::awaitable<void> handle(tcp_socket tcp, std::string already_read, server_loop& loop, asio::any_io_executor ex);
  /// The loop whose io_context `ex` belongs to; the first when none does.
  server_loop& loop_of(const asio::any_io_executor& ex);
  /// Stops and joins the threads of the loops past the first (after `shutdown_now`):
  /// waits for them to run out of work, for at most the close timeout.
  void join_loops() noexcept;

  // The registry.
  void add(const std::shared_ptr<socket>& s);
  /// A socket leaves; its close event is still to be published (`closed_reported`).
  void remove(std::uint64_t id);
  void closed_reported() noexcept;

  // Sending to many.
  asio::awaitable<void> broadcast(frame_head head, std::span<const std::byte> payload, const socket* except);
  /// A whole text or binary message to every open socket but `except`, encoded once per form.
  asio::awaitable<void> deliver_message(opcode op, std::span<const std::byte> payload, const socket* except);
  asio::awaitable<void> co_write(std::span<const std::byte> chunk, opcode op);
  /// Waits for the server's stream slot, then fixes `st`'s targets (every open socket
  /// but `exclude`) and claims them.
  /// `open_stream` for a stream of this instance (co_write, a pipe): the other
  /// instances on the Redis link get it too.
  asio::awaitable<void> open_shared_stream(outgoing_stream& st, opcode op, const socket* exclude);
  asio::awaitable<void> open_stream(outgoing_stream& st, opcode op, const socket* exclude);
  /// Sends one fragment of `st`; with `fin`, the last. Encoded once per form (plain,
  /// compressed per window size), each form's bytes shared by its targets; fragments
  /// from concurrent callers go out one after the other, in the order of their calls.
  asio::awaitable<void> stream_chunk(outgoing_stream& st, std::span<const std::byte> chunk, bool fin);
  /// Releases `st`'s targets and the stream slot, and frees its deflaters.
  void close_stream(outgoing_stream& st) noexcept;
  /// Ends `st` at once with a final frame, past the queue limits, and closes it.
  void abandon_stream(outgoing_stream& st) noexcept;

  /// False when the request's Origin is not one of `allowed_origins`.
  [[nodiscard]] bool origin_allowed(const upgrade_request& request) const;
  /// The 101 response for `request` as `decision` and the agreed `compression` settle
  /// it, choosing the subprotocol into `decision`. Throws `std::invalid_argument` for a
  /// decision that cannot be sent.
  [[nodiscard]] std::string acceptance(const upgrade_request& request, accept_decision& decision,
                                       const std::optional<deflate_params>& compression) const;
  /// The refusal `decision` asks for.
  [[nodiscard]] static std::string refusal(const accept_decision& decision);
  /// The permessage-deflate parameters for a request: none when disabled or not offered.
  [[nodiscard]] std::optional<deflate_params> agree_compression(const upgrade_request& request) const;
  /// The compressor shared by every socket of the first loop whose messages go out with
  /// `window_bits`, and by broadcasts.
  message_compressor& compressor(int window_bits);

  // The other instances, through Redis (server_redis.cpp); no-ops without `redis`.
  /// Connects the Redis link and starts relaying what the other instances send.
  void start_redis();
  void stop_redis() noexcept;
  [[nodiscard]] bool redis_connected() const noexcept;
  void publish_message(opcode op, std::span<const std::byte> payload);
  std::uint64_t publish_stream_start(opcode op);
  void publish_fragment(std::uint64_t stream, std::span<const std::byte> chunk);
  void publish_stream_end(std::uint64_t stream);

  asio::awaitable<void> stop();
  /// The destructor's stop: no waiting.
  void shutdown_now() noexcept;
  /// Ends every server generator: their `next()` gives an empty optional from now on.
  void end_generators() noexcept;
  /// The open sockets now, in opening order.
  [[nodiscard]] std::vector<std::shared_ptr<socket>> sockets_now() const;
  /// The registry is empty and every close event out.
  [[nodiscard]] bool all_reported() const;
  /// Cuts short the handshakes in progress, each on its loop.
  void cancel_handshakes();
  /// Runs `f` on the connection of `s` on its loop: now for the first loop (the server's
  /// executor, where this is called), else posted to it.
  void on_loop_of(const std::shared_ptr<socket>& s, std::function<void(connection&)> f);

  asio::any_io_executor ex_;
  server_options options_;
  std::shared_ptr<const connection_config> config_; // every socket's, shared
  std::vector<std::unique_ptr<server_loop>> loops_; // the first runs on ex_
  std::size_t next_loop_ = 0;                       // round-robin for accepted sockets
  std::shared_ptr<asio::ssl::context> tls_; // for a wss:// url
  std::string host_;
  std::string port_;
  std::string path_;
  std::vector<asio::ip::tcp::acceptor> acceptors_;
  asio::ip::tcp::endpoint local_endpoint_;
  // The registry: changed from every loop, under the mutex.
  mutable std::mutex registry_mutex_;
  std::map<std::uint64_t, std::shared_ptr<socket>> registry_; // by id: in opening order
  // registry_.size(), readable without the mutex: the server's generators hold
  // `event_queue` events for each open socket.
  std::shared_ptr<std::atomic<std::size_t>> open_sockets_ = std::make_shared<std::atomic<std::size_t>>(0);
  std::size_t reserved_ = 0;       // handshakes past the limit check, not registered yet
  std::size_t pending_reports_ = 0; // sockets out of the registry whose close event is not out
  std::atomic<bool> stopping_ = false;
  std::atomic<bool> stopped_ = false;
  /// Wakes `changed_` from any loop.
  void notify_changed();
  /// A handshake past the limit check: false when full or stopping.
  bool reserve();
  void unreserve();
  http_handler http_;
  accept_hook accept_;
  notifier changed_; // registry or reports changed

  bool stream_busy_ = false;
  notifier stream_free_;
  notifier stream_turn_; // a stream's fragment is queued: the next may go
  std::shared_ptr<outgoing_stream> write_stream_; // co_write's
  struct remote_relay;
  std::shared_ptr<remote_relay> remote_; // with `redis`: the link and what it relays

  /// Lets the server's consumers of messages, streams and events take what they were
  /// given so far, for at most `limit` (a socket of another loop before answering a close).
  asio::awaitable<void> let_consumers_take(std::chrono::milliseconds limit);

private:
  void on_remote_record(const redis_record& record);
  asio::awaitable<void> relay_remote();
  asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor);
  /// Reports `ec` to the server's error and event generators, through `hubs` (the
  /// stand-ins of the loop this runs on; the server's own when null).
  asio::awaitable<void> report_error(std::error_code ec, server_hubs* hubs = nullptr);
  asio::awaitable<void> answer(transport& io, std::string response);
  /// One message for many peers, encoded in each form (plain, or compressed with a
  /// window size) the first time a peer needs it.
  struct message_frames {
    server_core& core;
    opcode op;
    std::span<const std::byte> payload;
    shared_bytes plain{};
    std::array<shared_bytes, 16> compressed{};
    const shared_bytes& for_peer(connection& peer);
  };
  /// `chunk` as `st`'s next frame in every form its targets need (the deflaters
  /// compress it, ending their message with `fin`).
  [[nodiscard]] static stream_frames encode_stream(outgoing_stream& st, std::span<const std::byte> chunk, bool fin);
  /// Queues `frame_for(peer)` for every target (every socket but `except` without
  /// targets).
  template <class FrameFor>
  asio::awaitable<void> deliver(FrameFor frame_for, std::vector<std::shared_ptr<socket>>* targets,
                                const void* stream, const socket* except);
};

/// Waits for a pipe to finish; `from` stays alive meanwhile.
asio::awaitable<void> wait_pipe(std::shared_ptr<socket> from, std::shared_ptr<pipe_state> state);

struct server_access {
  static server_core& core(server& s) noexcept { return *s.core_; }
  static std::shared_ptr<server_core> shared(server& s) noexcept { return s.core_; }
};

} // namespace websockets::detail
