// Private: one connection's machinery behind websockets::socket. The reader coroutine
// waits for readability without a buffer, then parses what it reads into a buffer
// borrowed from a pool and publishes events (without suspending when consumers have
// room); the send queues go out in one gather write per turn of the event loop,
// started by a posted handler; the teardown runs once, reports the close event, and
// leaves the server.
#pragma once

#include "transport.hpp"

#include <websockets/deflate.hpp>
#include <websockets/event.hpp>
#include <websockets/frame_parser.hpp>
#include <websockets/frame_writer.hpp>
#include <websockets/generator.hpp>
#include <websockets/socket.hpp>
#include <websockets/upgrade.hpp>
#include <websockets/utf8.hpp>

#include <asio/cancellation_signal.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <any>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace websockets::detail {

class server_core;
struct server_loop;
struct server_hubs;

/// Frame bytes encoded once and shared by every queue that sends them: a broadcast or
/// a stream fragment costs one allocation whatever the number of peers.
struct shared_bytes {
  std::shared_ptr<const std::byte[]> data;
  std::size_t size = 0;
};

/// Encodes a whole frame (head and payload) for `role`: masked with a fresh key for a
/// client, so a client's frame is never shared. `compressed` sets RSV1.
[[nodiscard]] shared_bytes encode_frame(websockets::role role, opcode op, bool fin,
                                        std::span<const std::byte> payload, bool compressed = false);

/// A deflater with the buffer it compresses whole messages into, reused.
class message_compressor {
public:
  message_compressor(int window_bits, const deflate_options& options, bool no_context_takeover)
      : deflater_(window_bits, options.mem_level, options.level, no_context_takeover) {}
  /// `payload` compressed as one whole message; valid until the next call.
  std::span<const std::byte> compress(std::span<const std::byte> payload) {
    out_.clear();
    deflater_.compress(payload, true, out_);
    return out_;
  }

private:
  deflater deflater_;
  std::vector<std::byte> out_;
};

/// An allocator that leaves new elements uninitialized: a frame is written into the
/// bytes at once, so zeroing them first is wasted work.
template <class T>
struct uninitialized_allocator : std::allocator<T> {
  using value_type = T;
  uninitialized_allocator() = default;
  template <class U>
  explicit uninitialized_allocator(const uninitialized_allocator<U>&) noexcept {}
  template <class U>
  void construct(U* at) noexcept {
    ::new (static_cast<void*>(at)) U;
  }
  template <class U, class... Args>
  void construct(U* at, Args&&... args) {
    ::new (static_cast<void*>(at)) U(std::forward<Args>(args)...);
  }
};

/// Encoded frames on their way out.
using frame_bytes = std::vector<std::byte, uninitialized_allocator<std::byte>>;

/// Buffers lent to the connections of one server (or to one client) while they have
/// bytes in flight, so that an idle connection holds none and a busy one allocates
/// none. Read buffers: a connection waits for readability without one; the parser
/// keeps its own state between reads (a frame split across reads needs none of the
/// earlier bytes), so a buffer goes back once what was read has been parsed. Write
/// storage: what a connection encodes its frames into goes back, capacity kept, once
/// written. Used on one executor (one thread, or a strand), without locks.
class buffer_pool {
public:
  explicit buffer_pool(std::size_t read_size) : size_(read_size) {}
  buffer_pool(const buffer_pool&) = delete;
  buffer_pool& operator=(const buffer_pool&) = delete;

  /// A buffer borrowed from the pool, given back when destroyed.
  class lease {
  public:
    lease(buffer_pool& pool, std::unique_ptr<std::byte[]> bytes) noexcept
        : pool_(&pool), bytes_(std::move(bytes)) {}
    lease(lease&& other) noexcept : pool_(other.pool_), bytes_(std::move(other.bytes_)) {}
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() {
      if (bytes_) pool_->give_back(std::move(bytes_));
    }
    [[nodiscard]] std::span<std::byte> span() const noexcept { return {bytes_.get(), pool_->size_}; }

  private:
    buffer_pool* pool_;
    std::unique_ptr<std::byte[]> bytes_;
  };

  [[nodiscard]] lease borrow() {
    if (free_.empty()) return {*this, std::make_unique_for_overwrite<std::byte[]>(size_)};
    auto bytes = std::move(free_.back());
    free_.pop_back();
    return {*this, std::move(bytes)};
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// Empty storage to encode frames into: with the capacity of storage given back
  /// earlier, when there is some.
  [[nodiscard]] frame_bytes take_storage() noexcept {
    if (free_storage_.empty()) return {};
    auto bytes = std::move(free_storage_.back());
    free_storage_.pop_back();
    kept_storage_ -= bytes.capacity();
    return bytes;
  }
  /// Takes `bytes`' storage for `take_storage` (freed when the pool has enough, or when
  /// it is larger than a write needs to be).
  void give_back(frame_bytes&& bytes) noexcept {
    bytes.clear();
    const std::size_t size = bytes.capacity();
    if (size == 0 || kept_storage_ + size > max_kept_storage || free_storage_.size() >= max_free_storage) {
      frame_bytes{}.swap(bytes);
      return;
    }
    try {
      free_storage_.push_back(std::move(bytes));
      kept_storage_ += size;
    } catch (...) { // out of memory: the storage is freed instead
      frame_bytes{}.swap(bytes);
    }
  }

private:
  /// Read buffers kept for reuse; past that many, returned ones are freed.
  static constexpr std::size_t max_free = 16;
  /// Write storage kept for reuse, in bytes: enough for the writes of a busy loop pass
  /// (a hundred sockets with 64 KiB each); past it, returned storage is freed.
  static constexpr std::size_t max_kept_storage = 8 << 20;
  static constexpr std::size_t max_free_storage = 256;
  void give_back(std::unique_ptr<std::byte[]> bytes) noexcept {
    if (free_.size() < max_free) {
      try {
        free_.push_back(std::move(bytes));
      } catch (...) { // out of memory: the buffer is freed instead
      }
    }
  }

  std::size_t size_;
  std::vector<std::unique_ptr<std::byte[]>> free_;
  std::vector<frame_bytes> free_storage_;
  std::size_t kept_storage_ = 0; // the capacity of free_storage_'s vectors
};

/// Appends a whole unmasked-or-masked (per `role`) uncompressed frame to `out`.
void encode_frame_into(frame_bytes& out, websockets::role role, opcode op, bool fin,
                       std::span<const std::byte> payload);

/// How many frames `encode_frame` has encoded in this process: lets tests check that a
/// broadcast encodes once.
[[nodiscard]] std::uint64_t encoded_frames() noexcept;

/// The settings of one connection, from the server's or the client's options.
struct connection_config {
  websockets::role role = role::server;
  parser_limits limits{};
  std::chrono::milliseconds timeout{0}; // idle; zero: none
  std::chrono::milliseconds close_timeout{5000};
  std::size_t event_queue = 64;
  std::size_t max_queued_bytes = 4 << 20;
  overflow_policy overflow = overflow_policy::wait;
  std::size_t read_buffer = 16 * 1024;
  std::uint64_t stream_threshold = 64 * 1024;
  deflate_options deflate{}; // what this side allows
};

/// The connection settings of a server's or a client's options, which name them alike.
template <class Options>
connection_config config_from(websockets::role role, const Options& options) {
  connection_config config;
  config.role = role;
  config.limits.max_frame_size = options.max_frame_size;
  config.limits.max_message_size = options.max_message_size;
  config.limits.max_fragments = options.max_fragments;
  config.timeout = options.timeout;
  config.close_timeout = options.close_timeout;
  config.event_queue = options.event_queue;
  config.max_queued_bytes = options.max_queued_bytes;
  config.overflow = options.overflow;
  config.stream_threshold = options.stream_threshold;
  config.deflate = options.deflate;
  return config;
}

/// A server-side stream to a fixed set of sockets: `co_write`'s, or a pipe's relay.
/// With permessage-deflate, the stream is one compressed message for the targets that
/// agreed it: a deflater for each window size among them (the index), made when the
/// stream opens and freed when it closes, compresses every chunk once for all of them.
struct outgoing_stream {
  std::vector<std::shared_ptr<socket>> targets;
  websockets::opcode opcode = opcode::binary;
  bool open = false;    // holds the server's stream slot and its targets
  bool started = false; // the first frame, which carries the opcode, is out
  bool sending = false; // a chunk is being queued: the next one waits its turn
  bool plain = false;   // some target takes the stream uncompressed
  std::array<std::unique_ptr<deflater>, 16> deflaters{};
  std::vector<std::byte> compressed; // a chunk's deflate output, reused
  std::uint64_t shared_as = 0; // its id on the Redis link, while other instances get it too
};

/// One chunk of a stream encoded once in each form its targets need: index 0 plain,
/// the others compressed with that many window bits.
using stream_frames = std::array<shared_bytes, 16>;

/// A `pipe` attached to a socket: where to relay, and when it is over.
struct pipe_state {
  explicit pipe_state(const asio::any_io_executor& ex) : done(ex) {}
  std::shared_ptr<server_core> to;
  bool include_sender = false;
  bool relaying = false;
  bool finished = false;
  notifier done;
  std::shared_ptr<pipe_state> follows; // attached from another thread to a socket piped already: that pipe
};

/// The idle watchdog of one server loop's sockets: one timer for all of them, which
/// every `timeout` looks at each (`connection::on_idle`), instead of a timer and a
/// pending wait per socket. Used on the loop's executor only.
class idle_watch {
public:
  idle_watch(const asio::any_io_executor& ex, std::chrono::milliseconds period) : timer_(ex), period_(period) {}
  idle_watch(const idle_watch&) = delete;
  idle_watch& operator=(const idle_watch&) = delete;
  /// Watches `c`, until `remove`.
  void add(connection& c) noexcept;
  void remove(connection& c) noexcept;

private:
  void arm();
  void tick();

  asio::steady_timer timer_; // armed while a socket is watched
  std::chrono::milliseconds period_;
  connection* first_ = nullptr; // the watched sockets, linked through them
};

class connection {
public:
  /// `config` is shared by the sockets of a server; `compression` is what this socket's
  /// handshake agreed, if anything; `request_head` the raw upgrade request a server
  /// accepted (empty for a client).
  connection(socket& owner, transport io, asio::any_io_executor ex, std::shared_ptr<const connection_config> config,
             const std::optional<deflate_params>& compression, std::string_view request_head,
             std::shared_ptr<server_core> server, server_loop* loop, std::uint64_t id);
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection();

  /// Starts the writer, the reader and the idle watchdog. `initial` holds bytes read
  /// with the handshake, which are frames. With `open`, the reader waits at that
  /// handoff before reading.
  void start(std::span<const std::byte> initial, std::shared_ptr<handoff> open);

  // The socket's API.
  asio::awaitable<std::error_code> send(opcode op, std::span<const std::byte> payload);
  asio::awaitable<std::error_code> ping(std::span<const std::byte> payload);
  asio::awaitable<std::error_code> close(close_code code, std::string_view reason);
  generator<message> messages();
  generator<stream_event> streams();
  generator<event> events();

  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  /// The server loop this connection lives on: 0 for the server's executor (and clients).
  [[nodiscard]] std::size_t loop_index() const noexcept;
  [[nodiscard]] const asio::any_io_executor& executor() const noexcept { return ex_; }
  /// `running_here(executor())`, without comparing the executor's type each time.
  [[nodiscard]] bool on_its_thread() const noexcept {
    return !plain_executor_ || ex_.target<asio::io_context::executor_type>()->running_in_this_thread();
  }
  [[nodiscard]] websockets::role role() const noexcept { return config_->role; }
  /// Parsed from the kept head when first asked for: most servers never ask after the
  /// handshake, and the parsed form is about three times the size of the head.
  [[nodiscard]] const upgrade_request& request() const;
  [[nodiscard]] std::string_view subprotocol() const noexcept { return subprotocol_; }
  [[nodiscard]] std::any& user_data() noexcept { return user_data_; }
  /// What the handshake settled beyond the request: the subprotocol, the accept hook's data.
  void set_accepted(std::string subprotocol, std::any user_data) {
    subprotocol_ = std::move(subprotocol);
    user_data_ = std::move(user_data);
  }
  [[nodiscard]] asio::ip::tcp::endpoint remote_endpoint() const noexcept;
  [[nodiscard]] bool is_open() const noexcept {
    return !close_sent_ && !close_received_ && !finished_ && !write_error_;
  }
  // Readable from any thread (approximate there): written only on the socket's own,
  // with plain loads and stores (no read-modify-write on the send path).
  [[nodiscard]] std::size_t buffered_amount() const noexcept { return queued_bytes_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t dropped_messages() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  /// The window bits a message of `size` bytes to this socket is compressed with; 0
  /// when it goes uncompressed (no permessage-deflate, or under the threshold).
  [[nodiscard]] int compression_bits(std::size_t size) const noexcept;
  /// The window bits this socket's compressed messages use, whatever their size (a
  /// stream's, whose size is unknown when it starts); 0 without permessage-deflate.
  [[nodiscard]] int deflate_bits() const noexcept;

  // For the server.
  /// Starts a close without waiting for it (server stop).
  void begin_close(close_code code, std::string_view reason);
  /// Gives up on the peer: stops reading, and the teardown closes TCP at once.
  void abort();
  /// Queues shared frame bytes if nothing stands in the way (a stream other than
  /// `stream`, null for a whole message; senders in line; a full queue under
  /// `overflow_policy::wait`). True when the frame needs no waiting: queued, dropped
  /// or refused by the overflow policy, or never to be sent (the socket is closed).
  bool try_enqueue(const shared_bytes& frame, const void* stream);
  /// Queues shared frame bytes, waiting while something stands in the way. False when
  /// it was not queued: the socket closed, or the overflow policy refused it.
  asio::awaitable<bool> enqueue(shared_bytes frame, const void* stream);
  /// Queues shared frame bytes at once, past the limit (ending a cut-short stream).
  void enqueue_now(const shared_bytes& frame);
  /// Queues a control frame (ping) ahead of data frames.
  void enqueue_control(const control_frame& frame);
  /// Makes this socket a target of `stream`: other data waits until `release_stream`.
  void claim_stream(const void* stream) noexcept { stream_owner_ = stream; }
  /// Ends `claim_stream`.
  void release_stream(const void* stream) noexcept;
  /// Attaches a pipe (see websockets::pipe); with `state`, that one (made on another thread).
  std::shared_ptr<pipe_state> attach_pipe(std::shared_ptr<server_core> to, bool include_sender,
                                          std::shared_ptr<pipe_state> state = nullptr);

private:
  /// Runs a part of the reader as a coroutine; then reading goes on (`go_on_reading`).
  void run_reader(asio::awaitable<void> part);
  /// After a reader coroutine: the readiness wait again, TLS's read loop, or the teardown.
  void go_on_reading();
  /// The reader is done: the teardown starts.
  void finish_reading();
  /// Plain TCP: waits for readability without a buffer or a coroutine (`on_readable`).
  void wait_for_bytes();
  void on_readable(std::error_code ec);
  /// The open handoff, the bytes read with the handshake, and TLS's read loop.
  asio::awaitable<void> read_start(std::shared_ptr<handoff> open);
  /// The rest of a read that `on_readable` could not handle without waiting: `pending`,
  /// then `rest`, which lie in `buffer`.
  asio::awaitable<void> finish_read(buffer_pool::lease buffer, parse_event pending, std::span<std::byte> rest);
  asio::awaitable<void> process(std::span<std::byte> input);
  /// `process` without suspending, as far as it goes: false when an event needs
  /// `handle`, with that event in `pending` and the bytes after it left in `input`.
  bool process_now(std::span<std::byte>& input, parse_event& pending);
  /// Handles `ev` at once when that needs no waiting; false (and nothing done) otherwise.
  bool handle_now(const parse_event& ev);
  /// Handles an event `handle_now` refused, waiting as it must.
  asio::awaitable<void> handle(parse_event ev);
  /// A data message begins: what to do with it (assemble it, stream it).
  void begin_message(opcode op, bool streamed, bool compressed);
  /// A streamed message begins: stream_start, and a pipe's relay.
  asio::awaitable<void> on_begin(opcode op);
  asio::awaitable<void> on_data(std::span<const std::byte> bytes);
  asio::awaitable<void> on_payload(std::span<const std::byte> bytes);
  asio::awaitable<void> on_end();
  /// Inflates a piece of a compressed message (the rest with `fin`) into `inflation_->out`,
  /// checking text as it comes out. False when the connection failed.
  bool inflate(std::span<const std::byte> bytes, bool fin);
  void fail(websockets::error e) noexcept;
  /// A whole message's frame, compressed when permessage-deflate applies to it.
  shared_bytes encode_message(opcode op, std::span<const std::byte> payload);
  asio::awaitable<void> on_ping(std::span<const std::byte> payload);
  /// Before answering a close: waits until the consumers have taken what was read before it.
  asio::awaitable<void> let_consumers_answer();
  void on_close(std::uint16_t code, std::string_view reason);
  /// Starts a gather write of everything queued, soon (after the current handler), so
  /// that the sends of one turn of the event loop go out in one write.
  void schedule_write();
  void start_write();
  void on_written(std::error_code ec);
  /// Starts the idle watchdog: the loop's, or a client's own timer.
  void arm_idle();
  /// The watchdog looks: traffic since last time, a ping after a quiet period, a close
  /// after another.
  void on_idle();
  void stop_idle_watch() noexcept;
  friend class idle_watch;
  asio::awaitable<void> teardown(std::shared_ptr<socket> self);
  asio::awaitable<void> wait_closed();
  /// What a sender gets when its turn comes.
  enum class turn : std::uint8_t { go, closed, dropped };
  [[nodiscard]] bool has_room() const noexcept;
  /// True while another stream than `stream` holds this socket.
  [[nodiscard]] bool held_by_other_stream(const void* stream) const noexcept;
  asio::awaitable<turn> wait_turn(const void* stream);
  /// Applies the overflow policy to a frame of `stream` (null: a whole message) that
  /// finds the queue full (not for `overflow_policy::wait`).
  turn overflow(const void* stream);
  /// Closes with 1008 for a full queue, dropping what is queued and not being written.
  void close_overflowing();
  void stop_read() noexcept;

  // Event delivery: to this socket's generators and to the server's.
  template <class E>
  asio::awaitable<void> fan_out(E value, std::type_identity_t<hub<E>>* own,
                                std::type_identity_t<hub<E>>* server_kind, bool to_events,
                                std::shared_ptr<handoff> point = nullptr);
  /// Where an event goes: to this socket's and the server's `events()` (with
  /// `to_events`), and which of the four hubs anyone reads.
  struct recipients {
    hub<event>* own_events;
    hub<event>* server_events;
    bool own_wanted, server_kind_wanted, own_events_wanted, server_events_wanted;
  };
  template <class E>
  [[nodiscard]] recipients recipients_of(hub<E>* own, hub<E>* server_kind, bool to_events) noexcept;
  /// `fan_out` without suspending, when every recipient has room; false (and `value`
  /// untouched) otherwise.
  template <class E>
  bool try_fan_out(E& value, std::type_identity_t<hub<E>>* own, std::type_identity_t<hub<E>>* server_kind,
                   bool to_events);
  [[nodiscard]] bool wants_message(bool streamed) const noexcept;
  [[nodiscard]] bool wants_stream() const noexcept;

  void queue_close(close_code code, std::string_view reason);
  void push_data(shared_bytes frame);
  /// Queues a whole uncompressed message of this socket's own, encoded into `own_out_`.
  void push_own_message(opcode op, std::span<const std::byte> payload);
  void arm_close_deadline();
  void release_handoff() noexcept;
  /// Using the socket (send, ping, close) lets the open handoff go, not a stream_start
  /// one: any task may send to a socket, but only that stream's consumer may let its
  /// reader run on past the start, or a pipe attached then would miss the stream.
  void release_open_handoff() noexcept;
  void finish_pipe() noexcept;
  [[nodiscard]] std::shared_ptr<socket> self() { return owner_.shared_from_this(); }
  struct socket_hubs;
  /// A generator of one of this socket's hubs, from any thread.
  template <class T>
  generator<T> subscribe(hub<T> socket_hubs::*kind);
  /// The pipe target's stream calls, on its executor.
  asio::awaitable<void> relay_open(opcode op);
  asio::awaitable<void> relay_chunk(std::span<const std::byte> bytes, bool fin);

  socket& owner_;
  std::shared_ptr<void> loop_keep_; // a server loop's io_context: outlives the I/O objects below
  asio::any_io_executor ex_;
  transport io_;
  std::shared_ptr<const connection_config> config_;
  mutable std::string request_head_; // the upgrade request's raw head, until parsed
  mutable std::once_flag request_parsed_;
  mutable std::unique_ptr<const upgrade_request> request_;
  std::string subprotocol_;
  std::any user_data_;
  std::shared_ptr<server_core> server_;
  server_loop* loop_ = nullptr;  // a server's socket: its loop
  server_hubs* hubs_ = nullptr;  // where the server's events go: its hubs, or the loop's stand-ins
  std::uint64_t id_;
  frame_parser parser_;
  frame_writer writer_;

  // Reading.
  std::shared_ptr<buffer_pool> buffers_; // the server loop's, or this client's own
  std::vector<std::byte> initial_; // bytes read with the handshake, until parsed
  std::string payload_;        // the message being reassembled
  opcode message_op_ = opcode::text;
  bool streamed_ = false; // the message goes out as stream events while it arrives
  bool assembling_ = false;
  bool reading_ = false;       // in async_read_some: waiting on the peer, not on a consumer
  bool stop_reading_ = false;
  websockets::error protocol_error_{};
  std::uint64_t reads_ = 0;    // reads completed, for the idle watchdog
  std::error_code read_error_;
  asio::cancellation_signal read_cancel_;
  std::shared_ptr<handoff> open_handoff_;   // the open handoff being waited at
  std::shared_ptr<handoff> stream_handoff_; // the stream_start or close handoff being waited at

  // permessage-deflate, when agreed.
  // Made only when agreed: most connections never compress.
  struct inflation {
    template <class... Args>
    explicit inflation(Args&&... args) : engine(std::forward<Args>(args)...) {}
    inflater engine;
    std::string out;     // the piece last inflated, reused
    utf8_validator text; // the message's inflated text so far
  };
  std::unique_ptr<inflation> inflation_;
  std::unique_ptr<message_compressor> compressor_; // a client's own; servers share theirs
  bool compressed_ = false;   // the message being read is compressed
  std::uint8_t deflate_bits_ = 0; // our messages' window bits, when permessage-deflate was agreed

  // Streams in: a pipe relays the current fragmented message.
  std::shared_ptr<pipe_state> pipe_;
  std::unique_ptr<outgoing_stream> relay_;

  // Writing.
  std::vector<control_frame> control_q_;
  std::vector<shared_bytes> data_q_; // null data: the next `size` bytes of own_out_
  frame_bytes own_out_;              // frames encoded for this socket alone (its sends)
  std::atomic<std::size_t> queued_bytes_{0}; // see buffered_amount()
  void set_queued(std::size_t bytes) noexcept { queued_bytes_.store(bytes, std::memory_order_relaxed); }
  [[nodiscard]] std::size_t queued() const noexcept { return queued_bytes_.load(std::memory_order_relaxed); }
  const void* stream_owner_ = nullptr;
  std::vector<const int*> waiters_; // senders waiting, in order; each the address of its place
  std::atomic<std::uint64_t> dropped_{0}; // messages dropped by overflow_policy::drop
  bool overflowed_ = false;        // closed by overflow_policy::close
  bool writing_ = false;       // a gather write is in flight
  bool write_scheduled_ = false; // start_write is posted
  bool plain_executor_ = false;  // ex_ is the socket's io_context's own: its handlers need no binding
  std::error_code write_error_;
  // The frames of the write in flight (swapped with the queues, so their storage is reused).
  std::vector<control_frame> writing_control_;
  std::vector<shared_bytes> writing_data_;
  frame_bytes writing_own_;
  std::vector<asio::const_buffer> write_buffers_;
  frame_bytes tls_out_; // under TLS, the gather write's frames in one piece
  std::size_t writing_bytes_ = 0;
  // Queue drained, stream released, socket closing: senders re-check. Made when first
  // waited on: most connections never wait.
  std::unique_ptr<notifier> changed_;
  notifier& changed() {
    if (!changed_) changed_ = std::make_unique<notifier>(ex_);
    return *changed_;
  }
  void notify_changed() noexcept {
    if (changed_) changed_->notify_all();
  }

  // Closing (the flags together, so that they pack).
  std::uint16_t received_code_ = 0;
  bool close_sent_ = false;
  bool close_received_ = false;
  bool close_expired_ = false;
  bool close_deadline_armed_ = false;
  bool tearing_down_ = false;
  bool give_up_ = false;  // do not wait for the peer any more: close TCP
  bool finished_ = false; // TCP closed
  bool reported_ = false; // close event out
  bool idle_expired_ = false;
  bool idle_pinged_ = false;  // the watchdog pinged after a quiet period
  bool watched_ = false;      // by the loop's idle_watch
  std::string received_reason_;
  std::uint64_t idle_seen_ = 0; // reads_ when the watchdog last looked
  std::unique_ptr<asio::steady_timer> close_timer_; // made when a close begins
  std::unique_ptr<asio::steady_timer> idle_timer_; // a client's watchdog (a server loop watches its sockets)
  connection* watch_prev_ = nullptr;
  connection* watch_next_ = nullptr;
  std::unique_ptr<notifier> closed_; // made when close() waits

  // This socket's generators: made when first subscribed to (from any thread), so
  // that a socket read through the server's generators only carries none.
  struct socket_hubs {
    /// Generators keep `loop` (a server loop's io_context, their timers') alive, if any.
    socket_hubs(std::size_t capacity, const std::shared_ptr<void>& loop)
        : messages(capacity), streams(capacity), events(capacity) {
      if (!loop) return;
      messages.keep(loop);
      streams.keep(loop);
      events.keep(loop);
    }
    /// Ends every generator of this socket; later ones end at once.
    void end() noexcept {
      messages.end();
      streams.end();
      events.end();
    }
    hub<message> messages;
    hub<stream_event> streams;
    hub<event> events;
  };
  std::atomic<socket_hubs*> own_hubs_{nullptr}; // owned; deleted with the connection
  [[nodiscard]] socket_hubs* own_hubs() const noexcept { return own_hubs_.load(std::memory_order_acquire); }
  socket_hubs& make_own_hubs();
  /// This socket's hub of one kind, if anyone ever subscribed to one.
  template <class E>
  [[nodiscard]] hub<E>* own_hub(hub<E> socket_hubs::*kind) const noexcept {
    auto* hubs = own_hubs();
    return hubs ? &(hubs->*kind) : nullptr;
  }
};

/// What the server and `pipe` reach inside a socket.
struct socket_access {
  /// `ex`: where the socket's handlers run (its loop's executor, a client's own).
  static std::shared_ptr<socket> create(transport io, asio::any_io_executor ex,
                                        std::shared_ptr<const connection_config> config,
                                        const std::optional<deflate_params>& compression, std::string_view request_head,
                                        std::shared_ptr<server_core> server, server_loop* loop = nullptr);
  static connection& get(socket& s) noexcept { return *s.connection_; }
};

} // namespace websockets::detail
