// Private: the state behind websockets::server, shared with its connections (which
// report events into its hubs and leave its registry when they close).
#pragma once

#include "connection.hpp"

#include <websockets/server.hpp>

#include <asio/ip/tcp.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace websockets::detail {

struct redis_record;

/// Throws `std::invalid_argument` for a `server_options::redis` url this build cannot use.
void check_redis_option(const std::string& url);

class server_core : public std::enable_shared_from_this<server_core> {
public:
  server_core(asio::any_io_executor ex, server_options options);

  // Listening and handshakes.
  void bind();
  asio::awaitable<void> accept_all();
  asio::awaitable<void> handle(asio::ip::tcp::socket tcp, std::string already_read);

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
  /// The 101 response for `request` as `decision` and `config` settle it, choosing the
  /// subprotocol into `decision`. Throws `std::invalid_argument` for a decision that
  /// cannot be sent.
  [[nodiscard]] std::string acceptance(const upgrade_request& request, accept_decision& decision,
                                       const connection_config& config) const;
  /// The refusal `decision` asks for.
  [[nodiscard]] static std::string refusal(const accept_decision& decision);
  /// The permessage-deflate parameters for a request: none when disabled or not offered.
  [[nodiscard]] std::optional<deflate_params> agree_compression(const upgrade_request& request) const;
  /// The compressor shared by every socket whose messages go out with `window_bits`.
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

  asio::any_io_executor ex_;
  server_options options_;
  connection_config config_;
  std::shared_ptr<read_buffer_pool> read_pool_; // lent to connections while they read
  std::shared_ptr<asio::ssl::context> tls_; // for a wss:// url
  std::string host_;
  std::string port_;
  std::string path_;
  std::vector<asio::ip::tcp::acceptor> acceptors_;
  asio::ip::tcp::endpoint local_endpoint_;
  std::map<std::uint64_t, std::shared_ptr<socket>> registry_; // by id: in opening order
  std::size_t reserved_ = 0;       // handshakes past the limit check, not registered yet
  std::size_t pending_reports_ = 0; // sockets out of the registry whose close event is not out
  std::set<asio::ip::tcp::socket*> handshaking_;
  bool stopping_ = false;
  bool stopped_ = false;
  http_handler http_;
  accept_hook accept_;
  notifier changed_; // registry or reports changed

  std::array<std::unique_ptr<message_compressor>, 16> compressors_; // by window bits
  bool stream_busy_ = false;
  notifier stream_free_;
  notifier stream_turn_; // a stream's fragment is queued: the next may go
  std::shared_ptr<outgoing_stream> write_stream_; // co_write's
  struct remote_relay;
  std::shared_ptr<remote_relay> remote_; // with `redis`: the link and what it relays

  hub<std::shared_ptr<socket>> connections_;
  hub<message> messages_;
  hub<pong_event> pongs_;
  hub<close_event> closes_;
  hub<error_event> errors_;
  hub<stream_event> streams_;
  hub<event> events_;

private:
  void on_remote_record(const redis_record& record);
  asio::awaitable<void> relay_remote();
  asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor);
  asio::awaitable<void> report_error(std::error_code ec);
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
