// One connection: the read loop, the send queue and its writer, ping/pong, the idle
// watchdog and the close handshake.
#include "connection.hpp"
#include "server_core.hpp"

#include <websockets/utf8.hpp>

#include <asio/bind_allocator.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <mutex>
#include <utility>

namespace websockets {
namespace detail {
namespace {

// Frames encoded, for tests. Each thread counts its own with a plain load and store: a
// locked increment would wait for the frame just copied to drain from the store buffer,
// which measured 4% of a 4 KiB echo. Reading sums the threads'.
struct encode_tally {
  std::mutex mutex;
  std::vector<const std::atomic<std::uint64_t>*> running; // the threads' own counts
  std::uint64_t ended = 0;                                 // what threads gone counted
};
encode_tally& tally() {
  static auto* made = new encode_tally; // never destroyed: threads may end after statics
  return *made;
}
struct thread_encodes {
  std::atomic<std::uint64_t> count{0};
  thread_encodes() {
    const std::lock_guard lock{tally().mutex};
    tally().running.push_back(&count);
  }
  ~thread_encodes() {
    const std::lock_guard lock{tally().mutex};
    tally().ended += count.load(std::memory_order_relaxed);
    std::erase(tally().running, &count);
  }
  thread_encodes(const thread_encodes&) = delete;
  thread_encodes& operator=(const thread_encodes&) = delete;
};
thread_local thread_encodes encodes;
void count_encode() noexcept {
  // One writer (this thread): no read-modify-write needed.
  encodes.count.store(encodes.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

std::atomic<std::uint64_t> last_socket_id{0};

std::error_code not_connected() { return make_error_code(error::not_open); }

std::string to_string(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Every event kind becomes the `event` variant for events() subscribers.
template <class E>
event to_event(E&& e) {
  return event{std::forward<E>(e)};
}
event to_event(stream_event&& e) {
  return std::visit([](auto&& alternative) { return event{std::move(alternative)}; }, std::move(e));
}

// Memory for the handlers of a connection's own operations (its writes and the posts
// that start them), cached per thread by size: Asio's own cache keeps two blocks per
// thread, which the operations of many connections evict all the time, so that every
// write would otherwise allocate.
constexpr std::size_t handler_chunk = 16;  // fine-grained: an idle connection holds one such block
constexpr std::size_t handler_classes = 64; // blocks of up to 1 KiB are cached
constexpr std::size_t handler_cached = 64;  // per size

thread_local bool handler_cache_gone = false; // trivially destructible: valid to the end

struct handler_cache {
  std::array<std::vector<void*>, handler_classes + 1> free;
  ~handler_cache() {
    handler_cache_gone = true;
    for (auto& blocks : free)
      for (void* p : blocks) ::operator delete(p);
  }
};
thread_local handler_cache handler_blocks;

template <class T>
struct handler_allocator {
  using value_type = T;
  handler_allocator() noexcept = default;
  template <class U>
  handler_allocator(const handler_allocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    const std::size_t chunks = (n * sizeof(T) + handler_chunk - 1) / handler_chunk;
    if (chunks <= handler_classes && !handler_cache_gone) {
      auto& blocks = handler_blocks.free[chunks];
      if (!blocks.empty()) {
        void* p = blocks.back();
        blocks.pop_back();
        return static_cast<T*>(p);
      }
    }
    return static_cast<T*>(::operator new(chunks * handler_chunk));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    const std::size_t chunks = (n * sizeof(T) + handler_chunk - 1) / handler_chunk;
    if (chunks <= handler_classes && !handler_cache_gone) {
      auto& blocks = handler_blocks.free[chunks];
      if (blocks.size() < handler_cached) {
        try {
          blocks.push_back(p);
          return;
        } catch (...) { // out of memory: freed instead
        }
      }
    }
    ::operator delete(p);
  }
  template <class U>
  bool operator==(const handler_allocator<U>&) const noexcept { return true; }
};

shared_bytes copy_bytes(std::span<const std::byte> bytes) {
  auto buffer = std::make_shared_for_overwrite<std::byte[]>(bytes.size());
  std::memcpy(buffer.get(), bytes.data(), bytes.size());
  return {std::move(buffer), bytes.size()};
}

} // namespace

shared_bytes encode_frame(websockets::role role, opcode op, bool fin,
                          std::span<const std::byte> payload, bool compressed) {
  const frame_writer writer{role};
  const encoded_head head = writer.head(op, payload.size(), fin, compressed);
  const std::size_t size = head.size() + payload.size();
  auto buffer = std::make_shared_for_overwrite<std::byte[]>(size);
  std::memcpy(buffer.get(), head.bytes().data(), head.size());
  if (!payload.empty()) head.mask_copy(payload, std::span{buffer.get() + head.size(), payload.size()});
  count_encode();
  return {std::move(buffer), size};
}

void encode_frame_into(frame_bytes& out, websockets::role role, opcode op, bool fin,
                       std::span<const std::byte> payload) {
  const frame_writer writer{role};
  const encoded_head head = writer.head(op, payload.size(), fin, false);
  const std::size_t start = out.size();
  out.resize(start + head.size() + payload.size());
  std::memcpy(out.data() + start, head.bytes().data(), head.size());
  if (!payload.empty()) head.mask_copy(payload, std::span{out.data() + start + head.size(), payload.size()});
  count_encode();
}

std::uint64_t encoded_frames() noexcept {
  const std::lock_guard lock{tally().mutex};
  std::uint64_t sum = tally().ended;
  for (const auto* count : tally().running) sum += count->load(std::memory_order_relaxed);
  return sum;
}

std::shared_ptr<socket> socket_access::create(transport io, asio::any_io_executor ex,
                                              std::shared_ptr<const connection_config> config,
                                              const std::optional<deflate_params>& compression,
                                              std::string_view request_head,
                                              std::shared_ptr<server_core> server, server_loop* loop) {
  std::shared_ptr<socket> s{new socket{nullptr}};
  s->connection_ = std::make_unique<connection>(*s, std::move(io), std::move(ex), std::move(config), compression,
                                                request_head,
                                                std::move(server), loop, ++last_socket_id);
  return s;
}

connection::connection(socket& owner, transport io, asio::any_io_executor ex,
                       std::shared_ptr<const connection_config> shared_config,
                       const std::optional<deflate_params>& compression, std::string_view request_head,
                       std::shared_ptr<server_core> server, server_loop* loop, std::uint64_t id)
    : owner_(owner),
      loop_keep_(loop ? loop->context : nullptr),
      ex_(std::move(ex)),
      io_(std::move(io)),
      config_(std::move(shared_config)),
      request_head_(request_head),
      server_(std::move(server)),
      loop_(loop),
      hubs_(loop ? loop->hubs : nullptr),
      id_(id),
      parser_(parser_options{.role = config_->role,
                             .limits = config_->limits,
                             .allow_compression = compression.has_value()}),
      writer_(config_->role),
      buffers_(loop ? loop->buffers : std::make_shared<buffer_pool>(std::max<std::size_t>(config_->read_buffer, 512))) {
  const connection_config& config = *config_;
  plain_executor_ = target_as<asio::io_context::executor_type>(ex_) != nullptr;
  if (const auto& agreed = compression) {
    // The peer compresses with its own window and context settings; we inflate for them.
    const bool server = config.role == role::server;
    inflation_ = std::make_unique<inflation>(
        server ? agreed->client_max_window_bits : agreed->server_max_window_bits,
        server ? agreed->client_no_context_takeover : agreed->server_no_context_takeover,
        config.limits.max_message_size);
    if (!server)
      compressor_ = std::make_unique<message_compressor>(agreed->client_max_window_bits, config.deflate,
                                                         agreed->client_no_context_takeover);
    deflate_bits_ = static_cast<std::uint8_t>(server ? agreed->server_max_window_bits : agreed->client_max_window_bits);
  }
}

connection::~connection() {
  stop_idle_watch(); // done by the teardown, unless the event loop was torn down first
  delete own_hubs();
}

const upgrade_request& connection::request() const {
  std::call_once(request_parsed_, [this] {
    auto parsed = std::make_unique<upgrade_request>();
    if (!request_head_.empty()) {
      // The head passed these very checks during the handshake, so this cannot fail.
      http_parser parser(http_kind::request, request_head_.size());
      parser.feed(request_head_);
      *parsed = check_upgrade(parser.take_head()).request;
    }
    request_ = std::move(parsed);
    // The parsed request holds its own copy of the bytes.
    std::string{}.swap(request_head_);
  });
  return *request_;
}

connection::socket_hubs& connection::make_own_hubs() {
  if (auto* made = own_hubs()) return *made;
  auto fresh = std::make_unique<socket_hubs>(config_->event_queue, loop_keep_);
  socket_hubs* expected = nullptr;
  if (own_hubs_.compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel)) return *fresh.release();
  return *expected; // another thread made them first
}

void connection::start(std::span<const std::byte> initial, std::shared_ptr<handoff> open) {
  initial_.assign(initial.begin(), initial.end());
  // Plain reads wait for readability, then take what is there without blocking.
  std::error_code ignored;
  if (!io_.secure()) io_.tcp().non_blocking(true, ignored);
  if (config_->timeout.count() > 0) arm_idle();
  // Plain TCP with nothing to wait for goes straight to the readiness wait; otherwise
  // a coroutine first waits at the open handoff, parses the bytes read with the
  // handshake, or reads through TLS.
  if (!open && initial_.empty() && !io_.secure()) {
    wait_for_bytes();
  } else {
    run_reader(read_start(std::move(open)));
  }
}

std::size_t connection::loop_index() const noexcept { return loop_ ? loop_->index : 0; }

asio::ip::tcp::endpoint connection::remote_endpoint() const noexcept {
  std::error_code ec;
  auto endpoint = io_.tcp().remote_endpoint(ec);
  return ec ? asio::ip::tcp::endpoint{} : endpoint;
}

// ---- Reading ----

// Between bursts an idle connection keeps only its readiness wait: a handler, no
// coroutine, no buffer. What it reads is parsed and delivered from that handler as long
// as nothing needs waiting (whole uncompressed messages to consumers with room); an
// event that does (a full consumer, a stream, a ping, a close) hands the rest of the
// read to a coroutine, which goes back to the readiness wait when done.

void connection::run_reader(asio::awaitable<void> part) {
  // Under the reader's cancellation slot, so that giving up on a peer also stops a
  // reader that waits on a consumer.
  asio::co_spawn(ex_, std::move(part),
                 asio::bind_cancellation_slot(read_cancel_.slot(), [me = self()](const std::exception_ptr& e) {
                   auto& c = socket_access::get(*me);
                   if (e) c.stop_reading_ = true;
                   // Posted: the slot is the coroutine's until its last frame is gone.
                   asio::post(c.ex_, asio::bind_allocator(handler_allocator<void>{}, [me] {
                                socket_access::get(*me).go_on_reading();
                              }));
                 }));
}

void connection::go_on_reading() {
  if (stop_reading_) {
    finish_reading();
  } else if (io_.secure()) {
    run_reader(read_start(nullptr));
  } else {
    wait_for_bytes();
  }
}

void connection::finish_reading() {
  // Reading is over for good, a read error included: from now on nothing emits on the
  // reader's slot, whose last handler may be a finished wait of a socket about to close.
  stop_reading_ = true;
  // The teardown runs outside the reader's cancellation slot, uncancelled.
  asio::co_spawn(ex_, teardown(self()), asio::detached);
}

void connection::wait_for_bytes() {
  reading_ = true;
  auto on_ready = asio::bind_cancellation_slot(
      read_cancel_.slot(),
      asio::bind_allocator(handler_allocator<void>{}, [this, me = self()](std::error_code ec) { on_readable(ec); }));
  if (transport::wait_fails()) {
    asio::post(ex_, [on_ready = std::move(on_ready)]() mutable {
      on_ready(make_error_code(asio::error::connection_reset));
    });
  } else if (plain_executor_) {
    io_.wait_readable(std::move(on_ready));
  } else {
    io_.wait_readable(asio::bind_executor(ex_, std::move(on_ready)));
  }
}

void connection::on_readable(std::error_code ec) {
  reading_ = false;
  if (!stop_reading_ && ec) read_error_ = ec;
  if (stop_reading_ || ec) {
    finish_reading();
    return;
  }
  // What is there is read into a borrowed buffer and parsed (the parser keeps a split
  // frame's state, not its bytes), then the buffer goes back.
  auto buffer = buffers_->borrow();
  const auto space = buffer.span();
  for (;;) {
    const std::size_t size = io_.read_now(asio::buffer(space.data(), space.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec) {
      read_error_ = ec;
      stop_reading_ = true;
      break;
    }
    ++reads_;
    std::span<std::byte> rest = space.first(size);
    parse_event pending;
    if (!process_now(rest, pending)) {
      run_reader(finish_read(std::move(buffer), std::move(pending), rest));
      return;
    }
    // A short read has most likely drained the socket: wait for more.
    if (stop_reading_ || size < space.size()) break;
  }
  if (stop_reading_) {
    finish_reading();
  } else {
    wait_for_bytes();
  }
}

asio::awaitable<void> connection::read_start(std::shared_ptr<handoff> open) {
  if (open) {
    open_handoff_ = open;
    while (open->pending() && !stop_reading_) co_await open->wait();
    open_handoff_.reset();
  }
  if (!initial_.empty() && !stop_reading_) {
    co_await process(initial_);
    std::vector<std::byte>{}.swap(initial_);
  }
  while (!stop_reading_ && io_.secure()) {
    // TLS may hold decrypted bytes the TCP socket no longer shows as readable: read
    // through it, holding a buffer while waiting.
    const auto buffer = buffers_->borrow();
    const auto space = buffer.span();
    reading_ = true;
    auto [ec, size] = co_await io_.read_some(asio::buffer(space.data(), space.size()));
    reading_ = false;
    if (stop_reading_) break;
    if (ec) {
      read_error_ = ec;
      stop_reading_ = true;
      break;
    }
    ++reads_;
    co_await process(space.first(size));
  }
}

asio::awaitable<void> connection::finish_read(buffer_pool::lease buffer, parse_event pending,
                                              std::span<std::byte> rest) {
  co_await handle(std::move(pending));
  if (!stop_reading_) co_await process(rest);
  (void)buffer; // given back here, once its bytes are parsed
}

asio::awaitable<void> connection::process(std::span<std::byte> input) {
  parse_event pending;
  while (!process_now(input, pending)) {
    co_await handle(std::move(pending));
    if (stop_reading_) co_return;
  }
}

bool connection::process_now(std::span<std::byte>& input, parse_event& pending) {
  for (;;) {
    auto [ev, used] = parser_.parse(input);
    input = input.subspan(used);
    if (std::holds_alternative<parse::need_more>(ev)) return true;
    if (!handle_now(ev)) {
      pending = std::move(ev);
      return false;
    }
    if (stop_reading_) return true;
  }
}

bool connection::handle_now(const parse_event& ev) {
  // Whole, uncompressed messages take no coroutine: their events are handled here, and
  // the message goes to consumers with room without suspending.
  if (const auto* begin = std::get_if<parse::message_begin>(&ev)) {
    if (begin->fragmented || begin->frame_size >= config_->stream_threshold) return false;
    begin_message(begin->opcode, false, begin->compressed);
    if (assembling_) payload_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(begin->frame_size, 64 * 1024)));
    return true;
  }
  if (const auto* data = std::get_if<parse::data>(&ev)) {
    if (compressed_ || streamed_) return false;
    if (assembling_) payload_.append(reinterpret_cast<const char*>(data->bytes.data()), data->bytes.size());
    return true;
  }
  if (std::holds_alternative<parse::message_end>(ev)) {
    if (compressed_ || streamed_) return false;
    if (!assembling_) return true;
    message whole{self(), message_op_, std::move(payload_)};
    if (!try_fan_out(whole, own_hub(&socket_hubs::messages), hubs_ ? &hubs_->messages_ : nullptr, true)) {
      payload_ = std::move(whole.payload); // for handle(), which waits for room
      return false;
    }
    assembling_ = false;
    return true;
  }
  // parse::frame_end needs nothing: relays forward pieces as they come.
  return std::holds_alternative<parse::frame_end>(ev);
}

asio::awaitable<void> connection::handle(parse_event ev) {
  // What handle_now refused: a streamed message's start, the pieces of a compressed or
  // streamed message, a message for consumers without room, control frames, the close,
  // a failure.
  if (const auto* begin = std::get_if<parse::message_begin>(&ev)) {
    begin_message(begin->opcode, true, begin->compressed);
    co_await on_begin(begin->opcode);
  } else if (const auto* data = std::get_if<parse::data>(&ev)) {
    co_await on_data(data->bytes);
  } else if (std::holds_alternative<parse::message_end>(ev)) {
    if (compressed_ || streamed_) {
      co_await on_end();
    } else {
      assembling_ = false;
      message whole{self(), message_op_, std::move(payload_)};
      co_await fan_out(std::move(whole), own_hub(&socket_hubs::messages), hubs_ ? &hubs_->messages_ : nullptr, true);
    }
  } else if (const auto* control = std::get_if<parse::control>(&ev)) {
    if (control->opcode == opcode::ping) {
      co_await on_ping(control->payload);
    } else if (!close_sent_) {
      pong_event pong{self(), to_string(control->payload)};
      co_await fan_out(std::move(pong), nullptr, hubs_ ? &hubs_->pongs_ : nullptr, true);
    }
  } else if (const auto* close = std::get_if<parse::close>(&ev)) {
    co_await let_consumers_answer();
    on_close(close->code, close->reason);
    stop_reading_ = true;
  } else if (const auto* failure = std::get_if<parse::failure>(&ev)) {
    protocol_error_ = failure->code;
    stop_reading_ = true;
  }
}

bool connection::wants_message(bool streamed) const noexcept {
  // A streamed message is reassembled only when nobody reads it as a stream: a reader
  // of both streams() and messages() (or of events()) gets it once, as a stream.
  if (streamed && wants_stream()) return false;
  const auto* own = own_hubs();
  return (own && (own->messages.wanted() || own->events.wanted())) ||
         (hubs_ && (hubs_->messages_.wanted() || hubs_->events_.wanted()));
}

bool connection::wants_stream() const noexcept {
  const auto* own = own_hubs();
  return (own && (own->streams.wanted() || own->events.wanted())) ||
         (hubs_ && (hubs_->streams_.wanted() || hubs_->events_.wanted()));
}

void connection::begin_message(opcode op, bool streamed, bool compressed) {
  message_op_ = op;
  streamed_ = streamed;
  compressed_ = compressed;
  if (compressed) inflation_->text.reset();
  payload_.clear();
  assembling_ = wants_message(streamed);
}

asio::awaitable<void> connection::on_begin(opcode op) {
  if (wants_stream()) {
    // Hold the stream until every consumer of stream_start has had its chance to
    // attach a pipe, which needs the stream from its first byte.
    auto point = std::make_shared<handoff>(ex_);
    point->add(); // while publishing
    stream_handoff_ = point;
    stream_event start{stream_start{self(), op}};
    co_await fan_out(std::move(start), own_hub(&socket_hubs::streams), hubs_ ? &hubs_->streams_ : nullptr, true, point);
    point->done();
    while (point->pending() && !stop_reading_) co_await point->wait();
    stream_handoff_.reset();
  }
  if (pipe_ && !stop_reading_) {
    pipe_->relaying = true;
    relay_ = std::make_unique<outgoing_stream>();
    co_await relay_open(op);
  }
}

// A pipe's target server keeps its streams on its own executor: from another thread,
// its calls hop there (the relay is used by one of them at a time).
asio::awaitable<void> connection::relay_open(opcode op) {
  const auto to = pipe_->to;
  const socket* exclude = pipe_->include_sender ? nullptr : &owner_;
  if (running_here(to->ex_)) {
    co_await to->open_shared_stream(*relay_, op, exclude);
  } else {
    co_await asio::co_spawn(to->ex_, to->open_shared_stream(*relay_, op, exclude), hop_token());
  }
}

asio::awaitable<void> connection::relay_chunk(std::span<const std::byte> bytes, bool fin) {
  const auto to = pipe_->to;
  if (running_here(to->ex_)) {
    co_await to->stream_chunk(*relay_, bytes, fin);
    if (fin) to->close_stream(*relay_);
    co_return;
  }
  auto there = [](std::shared_ptr<server_core> core, outgoing_stream& st, std::span<const std::byte> chunk,
                  bool last) -> asio::awaitable<void> {
    co_await core->stream_chunk(st, chunk, last);
    if (last) core->close_stream(st);
  };
  co_await asio::co_spawn(to->ex_, there(to, *relay_, bytes, fin), hop_token());
}

void connection::fail(websockets::error e) noexcept {
  protocol_error_ = e;
  stop_reading_ = true;
}

bool connection::inflate(std::span<const std::byte> bytes, bool fin) {
  auto& [engine, inflated, text] = *inflation_;
  inflated.clear();
  if (const auto ec = engine.inflate(bytes, fin, inflated)) {
    fail(static_cast<websockets::error>(ec.value()));
    return false;
  }
  // The parser checks only uncompressed text; this text is checked as it inflates,
  // failing as fast.
  if (message_op_ == opcode::text &&
      (!text.feed(std::string_view{inflated}) || (fin && !text.complete()))) {
    fail(websockets::error::invalid_utf8);
    return false;
  }
  return true;
}

asio::awaitable<void> connection::on_data(std::span<const std::byte> bytes) {
  if (!compressed_) {
    co_await on_payload(bytes);
  } else if (inflate(bytes, false) && !inflation_->out.empty()) {
    co_await on_payload(std::as_bytes(std::span{inflation_->out.data(), inflation_->out.size()}));
  }
}

asio::awaitable<void> connection::on_payload(std::span<const std::byte> bytes) {
  if (assembling_) payload_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (!streamed_) co_return;
  if (wants_stream()) {
    stream_event data{stream_data{self(), to_string(bytes)}};
    co_await fan_out(std::move(data), own_hub(&socket_hubs::streams), hubs_ ? &hubs_->streams_ : nullptr, true);
  }
  if (relay_) co_await relay_chunk(bytes, false);
}

asio::awaitable<void> connection::on_end() {
  if (compressed_) {
    // What zlib still holds comes out with the message's end.
    if (!inflate({}, true)) co_return;
    const auto& inflated = inflation_->out;
    if (!inflated.empty()) co_await on_payload(std::as_bytes(std::span{inflated.data(), inflated.size()}));
    if (stop_reading_) co_return;
  }
  if (streamed_) {
    if (wants_stream()) {
      stream_event end{stream_end{self()}};
      co_await fan_out(std::move(end), own_hub(&socket_hubs::streams), hubs_ ? &hubs_->streams_ : nullptr, true);
    }
    if (relay_) {
      co_await relay_chunk({}, true);
      relay_.reset();
      finish_pipe();
    }
  }
  if (assembling_) {
    assembling_ = false;
    message whole{self(), message_op_, std::move(payload_)};
    co_await fan_out(std::move(whole), own_hub(&socket_hubs::messages), hubs_ ? &hubs_->messages_ : nullptr, !streamed_);
  }
  streamed_ = false;
}

asio::awaitable<void> connection::on_ping(std::span<const std::byte> payload) {
  // No frame may follow our close frame, pongs included.
  if (close_sent_ || finished_) co_return;
  enqueue_control(writer_.control(opcode::pong, payload));
  // A peer that pings without reading our pongs fills our queue: stop reading it.
  while (queued() > config_->max_queued_bytes && !stop_reading_ && !write_error_)
    co_await changed().wait();
}

asio::awaitable<void> connection::let_consumers_answer() {
  // The peer's close ends what we may send once we answer it (RFC 6455 section 5.5.1
  // lets us finish first): the messages read before it are taken by their consumers,
  // whose replies (an echo) then go out ahead of our close. Bounded by the close timeout.
  auto point = std::make_shared<handoff>(ex_);
  point->add(); // while registering
  if (auto* own = own_hubs()) {
    own->messages.hand_off_all(point);
    own->streams.hand_off_all(point);
    own->events.hand_off_all(point);
  }
  const bool stand_ins = hubs_ && hubs_->messages_.forwards();
  if (hubs_ && !stand_ins) {
    hubs_->messages_.hand_off_all(point);
    hubs_->streams_.hand_off_all(point);
    hubs_->events_.hand_off_all(point);
  }
  point->done();
  if (stand_ins && (hubs_->messages_.wanted() || hubs_->streams_.wanted() || hubs_->events_.wanted())) {
    // The server's consumers are on its executor: they take theirs there.
    co_await asio::co_spawn(server_->ex_, server_->let_consumers_take(config_->close_timeout), hop_token());
  }
  if (!point->pending()) co_return;
  stream_handoff_ = point; // released too when the connection is given up
  asio::steady_timer deadline{ex_};
  deadline.expires_after(config_->close_timeout);
  deadline.async_wait([point](std::error_code ec) {
    if (!ec) point->release();
  });
  while (point->pending() && !stop_reading_) co_await point->wait();
  deadline.cancel();
  stream_handoff_.reset();
}

void connection::on_close(std::uint16_t code, std::string_view reason) {
  close_received_ = true;
  received_code_ = code;
  received_reason_.assign(reason);
  // Echo the code (RFC 6455 section 5.5.1); a close without a code is answered with 1000.
  if (!close_sent_)
    queue_close(code == static_cast<std::uint16_t>(close_code::no_status) ? close_code::normal
                                                                           : static_cast<close_code>(code),
                {});
  arm_close_deadline();
  notify_changed();
}

template <class E>
connection::recipients connection::recipients_of(hub<E>* own, hub<E>* server_kind, bool to_events) noexcept {
  hub<event>* own_events = to_events ? own_hub(&socket_hubs::events) : nullptr;
  hub<event>* server_events = to_events && hubs_ ? &hubs_->events_ : nullptr;
  return {own_events,
          server_events,
          own && own->wanted(),
          server_kind && server_kind->wanted(),
          own_events && own_events->wanted(),
          server_events && server_events->wanted()};
}

template <class E>
bool connection::try_fan_out(E& value, std::type_identity_t<hub<E>>* own,
                             std::type_identity_t<hub<E>>* server_kind, bool to_events) {
  const recipients to = recipients_of<E>(own, server_kind, to_events);
  hub<event>* own_events = to.own_events;
  hub<event>* server_events = to.server_events;
  const bool w0 = to.own_wanted, w1 = to.server_kind_wanted, w2 = to.own_events_wanted, w3 = to.server_events_wanted;
  if ((w0 && !own->ready()) || (w1 && !server_kind->ready()) || (w2 && !own_events->ready()) ||
      (w3 && !server_events->ready()))
    return false;
  // As fan_out, without suspending: the last recipient gets the value itself.
  if (w0) own->publish_now(w1 || w2 || w3 ? E{value} : std::move(value));
  if (w1) server_kind->publish_now(w2 || w3 ? E{value} : std::move(value));
  if (w2 || w3) {
    event ev = to_event(std::move(value));
    if (w2) own_events->publish_now(w3 ? event{ev} : std::move(ev));
    if (w3) server_events->publish_now(std::move(ev));
  }
  return true;
}

template <class E>
asio::awaitable<void> connection::fan_out(E value, std::type_identity_t<hub<E>>* own,
                                std::type_identity_t<hub<E>>* server_kind, bool to_events,
                                          std::shared_ptr<handoff> point) {
  const recipients to = recipients_of<E>(own, server_kind, to_events);
  hub<event>* own_events = to.own_events;
  hub<event>* server_events = to.server_events;
  const bool w0 = to.own_wanted, w1 = to.server_kind_wanted, w2 = to.own_events_wanted, w3 = to.server_events_wanted;
  // The last recipient gets the value itself; the others get copies. (Copies are
  // named: g++ 12 miscompiles aggregate temporaries inside a co_await expression.)
  if (w0) {
    E copy = w1 || w2 || w3 ? value : std::move(value);
    co_await own->publish(std::move(copy), point);
  }
  if (w1) {
    E copy = w2 || w3 ? value : std::move(value);
    co_await server_kind->publish(std::move(copy), point);
  }
  if (w2 || w3) {
    event ev = to_event(std::move(value));
    if (w2) {
      event copy = w3 ? ev : std::move(ev);
      co_await own_events->publish(std::move(copy), point);
    }
    if (w3) co_await server_events->publish(std::move(ev), point);
  }
}

// ---- Writing ----

void connection::push_data(shared_bytes frame) {
  set_queued(queued() + frame.size);
  data_q_.push_back(std::move(frame));
  schedule_write();
}

void connection::push_own_message(opcode op, std::span<const std::byte> payload) {
  if (own_out_.capacity() == 0) own_out_ = buffers_->take_storage();
  const std::size_t before = own_out_.size();
  encode_frame_into(own_out_, config_->role, op, true, payload);
  const std::size_t size = own_out_.size() - before;
  set_queued(queued() + size);
  // Consecutive frames of this socket's own go out as one piece of the gather write.
  if (!data_q_.empty() && !data_q_.back().data) {
    data_q_.back().size += size;
  } else {
    data_q_.push_back({nullptr, size});
  }
  schedule_write();
}

void connection::enqueue_control(const control_frame& frame) {
  if (close_sent_ || finished_ || write_error_) return;
  set_queued(queued() + frame.size());
  control_q_.push_back(frame);
  schedule_write();
}

void connection::enqueue_now(const shared_bytes& frame) {
  if (close_sent_ || finished_ || write_error_) return;
  push_data(frame);
}

bool connection::has_room() const noexcept {
  const std::size_t bytes = queued();
  return bytes == 0 || bytes < config_->max_queued_bytes;
}

bool connection::held_by_other_stream(const void* stream) const noexcept {
  return stream_owner_ != nullptr && stream_owner_ != stream;
}

connection::turn connection::overflow(const void* stream) {
  if (config_->overflow == overflow_policy::drop && stream == nullptr) {
    dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // Reported from its own coroutine: the sender (a broadcast) must not wait on the
    // consumers of errors.
    asio::co_spawn(ex_, fan_out(error_event{self(), make_error_code(websockets::error::message_dropped)}, nullptr,
                                hubs_ ? &hubs_->errors_ : nullptr, true),
                   asio::detached);
    return turn::dropped;
  }
  close_overflowing();
  return turn::closed;
}

void connection::close_overflowing() {
  if (close_sent_ || tearing_down_ || finished_) return;
  overflowed_ = true;
  for (const auto& frame : data_q_) set_queued(queued() - frame.size);
  data_q_.clear();
  own_out_.clear();
  queue_close(close_code::policy_violation, "send queue full");
  arm_close_deadline();
}

bool connection::try_enqueue(const shared_bytes& frame, const void* stream) {
  if (!is_open()) return true; // nothing to wait for: it will never be sent
  const bool stream_frame = stream != nullptr && stream == stream_owner_;
  if ((!stream_frame && !waiters_.empty()) || held_by_other_stream(stream)) return false;
  if (!has_room()) {
    if (config_->overflow == overflow_policy::wait) return false;
    (void)overflow(stream);
    return true;
  }
  push_data(frame);
  return true;
}

asio::awaitable<connection::turn> connection::wait_turn(const void* stream) {
  // Frames of a stream this socket belongs to only wait for room; everything else
  // waits in line, so that messages keep their order when some had to wait.
  const bool stream_frame = stream != nullptr && stream == stream_owner_;
  const auto at_front = [&](const int* place) {
    return (stream_frame || (place == nullptr ? waiters_.empty() : waiters_.front() == place)) &&
           !held_by_other_stream(stream);
  };
  if (is_open() && at_front(nullptr)) {
    if (has_room()) co_return turn::go;
    if (config_->overflow != overflow_policy::wait) co_return overflow(stream);
  }
  int place = 0;
  struct in_line {
    connection& c;
    const int* place;
    bool queued;
    ~in_line() {
      if (!queued) return;
      auto it = std::find(c.waiters_.begin(), c.waiters_.end(), place);
      if (it != c.waiters_.end()) c.waiters_.erase(it);
      c.notify_changed();
    }
  } guard{*this, &place, !stream_frame};
  if (!stream_frame) waiters_.push_back(&place);
  for (;;) {
    if (!is_open()) co_return turn::closed;
    if (at_front(&place)) {
      if (has_room()) co_return turn::go;
      if (config_->overflow != overflow_policy::wait) co_return overflow(stream);
    }
    co_await changed().wait();
  }
}

asio::awaitable<bool> connection::enqueue(shared_bytes frame, const void* stream) {
  const turn t = co_await wait_turn(stream);
  if (t == turn::go) push_data(std::move(frame));
  co_return t == turn::go;
}

void connection::release_stream(const void* stream) noexcept {
  if (stream_owner_ != stream) return;
  stream_owner_ = nullptr;
  notify_changed();
}

void connection::schedule_write() {
  if (writing_ || write_scheduled_ || finished_ || write_error_) return;
  write_scheduled_ = true;
  auto flush = asio::bind_allocator(handler_allocator<void>{}, [this, me = self()] {
    write_scheduled_ = false;
    start_write();
  });
  // Through the io_context's own executor when that is ours: posting through the
  // type-erased one would allocate past the handler's allocator.
  if (plain_executor_) {
    const auto* io = ex_.target<asio::io_context::executor_type>(); // checked once, at construction
    asio::post(*io, std::move(flush));
  } else {
    asio::post(ex_, std::move(flush));
  }
}

void connection::start_write() {
  if (writing_ || finished_ || write_error_ || (control_q_.empty() && data_q_.empty())) return;
  // Everything queued goes in one gather write: pings and pongs first (they may pass
  // data frames, never split one), then data frames and the close frame in order.
  writing_control_.swap(control_q_);
  writing_data_.swap(data_q_);
  writing_own_.swap(own_out_);
  write_buffers_.clear();
  std::size_t own = 0; // the next of this socket's own bytes
  std::size_t bytes = 0;
  for (const auto& frame : writing_control_) {
    write_buffers_.emplace_back(frame.bytes().data(), frame.size());
    bytes += frame.size();
  }
  for (const auto& frame : writing_data_) {
    if (frame.data) {
      write_buffers_.emplace_back(frame.data.get(), frame.size);
    } else {
      write_buffers_.emplace_back(writing_own_.data() + own, frame.size);
      own += frame.size;
    }
    bytes += frame.size;
  }
  writing_bytes_ = bytes;
  writing_ = true;
  if (io_.secure() && write_buffers_.size() > 1) {
    // A TLS stream writes a record per buffer: one buffer makes full records.
    if (tls_out_.capacity() == 0) tls_out_ = buffers_->take_storage();
    for (const auto& b : write_buffers_) {
      const auto* first = static_cast<const std::byte*>(b.data());
      tls_out_.insert(tls_out_.end(), first, first + b.size());
    }
    write_buffers_.assign(1, asio::buffer(tls_out_));
  }
  // A span: the write keeps no copy of the buffer list.
  const std::span<const asio::const_buffer> buffers{write_buffers_};
  auto done = asio::bind_allocator(handler_allocator<void>{},
                                   [this, me = self()](std::error_code ec, std::size_t) { on_written(ec); });
  if (plain_executor_) {
    io_.async_write(buffers, std::move(done));
  } else {
    io_.async_write(buffers, asio::bind_executor(ex_, std::move(done)));
  }
}

void connection::on_written(std::error_code ec) {
  writing_ = false;
  set_queued(queued() - writing_bytes_);
  writing_bytes_ = 0;
  writing_control_.clear();
  writing_data_.clear();
  // The storage goes back to the pool, so that a connection with nothing in flight
  // holds none, and the next writes (of any connection) allocate none.
  buffers_->give_back(std::move(writing_own_));
  buffers_->give_back(std::move(tls_out_));
  if (ec) {
    write_error_ = ec;
    set_queued(0);
    control_q_.clear();
    data_q_.clear();
    own_out_.clear();
    give_up_ = true;
    stop_read();
  } else {
    // What was queued meanwhile goes out now, in one more write.
    start_write();
  }
  notify_changed();
}

// ---- The API ----

asio::awaitable<std::error_code> connection::send(opcode op, std::span<const std::byte> payload) {
  release_open_handoff();
  if (op != opcode::text && op != opcode::binary)
    co_return std::make_error_code(std::errc::invalid_argument);
  // Usually nothing stands in the way: no waiting, and no coroutine for it.
  if (!(is_open() && waiters_.empty() && !held_by_other_stream(nullptr) && has_room())) {
    const auto keep = self();
    switch (co_await wait_turn(nullptr)) {
    case turn::go: break;
    case turn::dropped: co_return make_error_code(websockets::error::message_dropped);
    case turn::closed:
      co_return overflowed_ ? make_error_code(websockets::error::send_queue_full) : not_connected();
    }
  }
  if (compression_bits(payload.size()) == 0) {
    push_own_message(op, payload); // encoded straight into this socket's output
  } else {
    push_data(encode_message(op, payload));
  }
  co_return std::error_code{};
}

int connection::compression_bits(std::size_t size) const noexcept {
  return size < config_->deflate.threshold ? 0 : deflate_bits();
}

int connection::deflate_bits() const noexcept {
  return deflate_bits_;
}

shared_bytes connection::encode_message(opcode op, std::span<const std::byte> payload) {
  const int bits = compression_bits(payload.size());
  if (bits == 0) return encode_frame(config_->role, op, true, payload);
  message_compressor& compressor = compressor_ ? *compressor_ : loop_->compressor(bits, config_->deflate);
  return encode_frame(config_->role, op, true, compressor.compress(payload), true);
}

asio::awaitable<std::error_code> connection::ping(std::span<const std::byte> payload) {
  release_open_handoff();
  if (payload.size() > max_control_payload) co_return std::make_error_code(std::errc::message_size);
  if (!is_open()) co_return not_connected();
  enqueue_control(writer_.control(opcode::ping, payload));
  co_return std::error_code{};
}

asio::awaitable<std::error_code> connection::close(close_code code, std::string_view reason) {
  release_open_handoff();
  const auto keep = self();
  if (!is_sendable(code) || !is_valid_utf8(reason))
    co_return std::make_error_code(std::errc::invalid_argument);
  if (!close_sent_ && !close_received_ && !tearing_down_) {
    queue_close(code, reason);
    arm_close_deadline();
  }
  co_await wait_closed();
  if (close_received_) co_return std::error_code{};
  co_return make_error_code(close_expired_ ? error::close_timeout : error::connection_dropped);
}

void connection::begin_close(close_code code, std::string_view reason) {
  if (close_sent_ || tearing_down_) return;
  queue_close(code, reason);
  arm_close_deadline();
}

template <class T>
generator<T> connection::subscribe(hub<T> socket_hubs::*kind) {
  hub<T>& h = make_own_hubs().*kind;
  if (on_its_thread()) {
    release_handoff();
    auto made = h.subscribe(ex_);
    if (reported_) h.end(); // the hubs were made after the socket ended: nothing will come
    return made;
  }
  // From another thread: attached on the socket's loop, in order with what the caller
  // does next there (the reader, held at the open handoff, goes on after it).
  auto sub = h.prepare(ex_);
  asio::post(ex_, [me = self(), &h, sub] {
    auto& c = socket_access::get(*me);
    c.release_handoff();
    h.attach(sub);
    if (c.reported_) h.end(); // the hubs were made after the socket ended: nothing will come
  });
  return hub<T>::generator_of(std::move(sub));
}

generator<message> connection::messages() { return subscribe(&socket_hubs::messages); }

generator<stream_event> connection::streams() { return subscribe(&socket_hubs::streams); }

generator<event> connection::events() { return subscribe(&socket_hubs::events); }

std::shared_ptr<pipe_state> connection::attach_pipe(std::shared_ptr<server_core> to, bool include_sender,
                                                    std::shared_ptr<pipe_state> made) {
  release_handoff();
  if (pipe_) {
    if (made) made->follows = pipe_;
    return pipe_;
  }
  auto state = made ? std::move(made) : std::make_shared<pipe_state>(ex_);
  state->to = std::move(to);
  state->include_sender = include_sender;
  if (tearing_down_ || stop_reading_ || !state->to) {
    state->finished = true;
    return state;
  }
  pipe_ = state;
  return state;
}

void connection::finish_pipe() noexcept {
  if (!pipe_) return;
  pipe_->finished = true;
  pipe_->relaying = false;
  pipe_->done.notify_all();
  pipe_.reset();
}

void connection::release_handoff() noexcept {
  release_open_handoff();
  if (stream_handoff_) stream_handoff_->release();
}

void connection::release_open_handoff() noexcept {
  if (open_handoff_) open_handoff_->release();
}

// ---- Closing ----

void connection::queue_close(close_code code, std::string_view reason) {
  if (close_sent_ || finished_) return;
  close_sent_ = true;
  // Behind the data already queued: nothing the application sent before is lost.
  push_data(copy_bytes(writer_.close(code, reason).bytes()));
  notify_changed();
}

void connection::arm_close_deadline() {
  if (close_deadline_armed_ || finished_) return;
  close_deadline_armed_ = true;
  close_timer_ = std::make_unique<asio::steady_timer>(ex_, config_->close_timeout);
  close_timer_->async_wait([this, me = self()](std::error_code ec) {
    if (ec || finished_) return;
    close_expired_ = true;
    abort();
  });
}

void connection::stop_read() noexcept {
  if (stop_reading_) return;
  stop_reading_ = true;
  read_cancel_.emit(asio::cancellation_type::terminal);
}

void connection::abort() {
  give_up_ = true;
  stop_read();
  if (tearing_down_) {
    // The teardown waits on the writer or for the server's FIN: stop both.
    io_.cancel();
  }
  notify_changed();
}

asio::awaitable<void> connection::wait_closed() {
  if (!closed_) closed_ = std::make_unique<notifier>(ex_);
  while (!reported_) co_await closed_->wait();
}

void connection::arm_idle() {
  if (loop_ && loop_->idle) {
    loop_->idle->add(*this);
    return;
  }
  if (!idle_timer_) idle_timer_ = std::make_unique<asio::steady_timer>(ex_);
  idle_timer_->expires_after(config_->timeout);
  idle_timer_->async_wait([this, me = self()](std::error_code ec) {
    if (ec) return;
    on_idle();
    if (!tearing_down_ && !stop_reading_) arm_idle();
  });
}

void connection::stop_idle_watch() noexcept {
  if (idle_timer_) idle_timer_->cancel();
  if (watched_) loop_->idle->remove(*this);
}

void idle_watch::add(connection& c) noexcept {
  if (c.watched_) return;
  c.watched_ = true;
  c.watch_prev_ = nullptr;
  c.watch_next_ = first_;
  if (first_) first_->watch_prev_ = &c;
  first_ = &c;
  if (!c.watch_next_) arm(); // else the timer runs already
}

void idle_watch::arm() {
  timer_.expires_after(period_);
  timer_.async_wait([this](std::error_code ec) {
    if (!ec) tick(); // (cancelled: this watch may be gone)
  });
}

void idle_watch::remove(connection& c) noexcept {
  if (!c.watched_) return;
  c.watched_ = false;
  if (c.watch_prev_) {
    c.watch_prev_->watch_next_ = c.watch_next_;
  } else {
    first_ = c.watch_next_;
  }
  if (c.watch_next_) c.watch_next_->watch_prev_ = c.watch_prev_;
  c.watch_prev_ = c.watch_next_ = nullptr;
  // Nobody left to watch: no pending wait keeps the loop busy.
  if (!first_) timer_.cancel();
}

void idle_watch::tick() {
  // on_idle never unlinks a socket at once: its teardown comes later, from a handler.
  for (connection* c = first_; c != nullptr; c = c->watch_next_) c->on_idle();
  if (first_) arm();
}

void connection::on_idle() {
  if (tearing_down_ || stop_reading_) return;
  // Traffic, or a reader held up by our own consumers, is not idleness.
  if (reads_ != idle_seen_ || !reading_) {
    idle_seen_ = reads_;
    idle_pinged_ = false;
  } else if (!idle_pinged_) {
    enqueue_control(writer_.control(opcode::ping, {}));
    idle_pinged_ = true;
  } else {
    idle_expired_ = true;
    queue_close(close_code::going_away, "idle timeout");
    arm_close_deadline();
    stop_read();
  }
}

asio::awaitable<void> connection::teardown(std::shared_ptr<socket> me) {
  tearing_down_ = true;
  release_handoff();
  std::error_code error;
  auto code = static_cast<std::uint16_t>(close_code::abnormal);
  std::string reason;
  if (protocol_error_ != websockets::error{}) {
    const close_code answer = close_code_for(protocol_error_);
    error = make_error_code(protocol_error_);
    code = static_cast<std::uint16_t>(answer);
    queue_close(answer, {});
  } else if (overflowed_) {
    error = make_error_code(websockets::error::send_queue_full);
    code = static_cast<std::uint16_t>(close_code::policy_violation);
  } else if (close_received_) {
    code = received_code_;
    reason = std::move(received_reason_);
  } else if (idle_expired_) {
    error = make_error_code(websockets::error::idle_timeout);
  }
  // A relay cut short still ends with a final frame: its peers are not left inside a
  // message, and the server's stream slot is freed.
  if (relay_) {
    if (pipe_ && pipe_->to) {
      if (running_here(pipe_->to->ex_)) {
        pipe_->to->abandon_stream(*relay_);
      } else {
        // On the target's executor: the relay goes with it.
        std::shared_ptr<outgoing_stream> relay{std::move(relay_)};
        asio::post(pipe_->to->ex_, [to = pipe_->to, relay] { to->abandon_stream(*relay); });
      }
    }
    relay_.reset();
  }
  finish_pipe();
  notify_changed(); // senders waiting for room: the socket is closing

  // The close frame, and what was queued before it, goes out within the close timeout.
  arm_close_deadline();
  while (!give_up_ && !write_error_ && (writing_ || !control_q_.empty() || !data_q_.empty()))
    co_await changed().wait();
  // A client lets the server close TCP first (RFC 6455 section 7.1.1).
  if (config_->role == role::client && close_received_ && !give_up_ && !read_error_) {
    std::array<std::byte, 256> sink{};
    for (;;) {
      auto [ec, size] = co_await io_.read_some(asio::buffer(sink));
      (void)size;
      if (ec) break;
    }
  }
  io_.close();
  finished_ = true;
  if (close_timer_) close_timer_->cancel();
  stop_idle_watch();
  notify_changed();

  const auto server = server_;
  if (server) server->remove(id_);
  if (error) {
    error_event failed{me, error};
    co_await fan_out(std::move(failed), nullptr, hubs_ ? &hubs_->errors_ : nullptr, true);
  }
  close_event closed{me, code, std::move(reason)};
  co_await fan_out(std::move(closed), nullptr, hubs_ ? &hubs_->closes_ : nullptr, true);
  reported_ = true;
  // Generators made later end at once (subscribe checks reported_).
  if (auto* own = own_hubs()) own->end();
  if (closed_) closed_->notify_all();
  if (server) server->closed_reported();
  server_.reset(); // the server no longer needs this socket, nor it the server
}

} // namespace detail

// ---- websockets::socket ----

socket::socket(std::unique_ptr<detail::connection> connection) noexcept
    : connection_(std::move(connection)) {}

socket::~socket() = default;

std::uint64_t socket::id() const noexcept { return connection_->id(); }

websockets::role socket::role() const noexcept { return connection_->role(); }

namespace {

/// `call` on the socket's executor: as is when the caller runs there, else from a
/// coroutine spawned there (which keeps the socket alive), the caller resuming on its own.
asio::awaitable<std::error_code> on_socket_loop(std::shared_ptr<socket> s,
                                                asio::awaitable<std::error_code> call) {
  co_return co_await asio::co_spawn(s->executor(), std::move(call), detail::hop_token());
}

} // namespace

asio::awaitable<std::error_code> socket::send(std::string_view text) {
  return send(opcode::text, std::as_bytes(std::span{text.data(), text.size()}));
}

asio::awaitable<std::error_code> socket::send(std::span<const std::byte> bytes) {
  return send(opcode::binary, bytes);
}

asio::awaitable<std::error_code> socket::send(websockets::opcode opcode,
                                              std::span<const std::byte> payload) {
  if (connection_->on_its_thread()) return connection_->send(opcode, payload);
  return on_socket_loop(shared_from_this(), connection_->send(opcode, payload));
}

asio::awaitable<std::error_code> socket::ping(std::span<const std::byte> payload) {
  if (connection_->on_its_thread()) return connection_->ping(payload);
  return on_socket_loop(shared_from_this(), connection_->ping(payload));
}

asio::awaitable<std::error_code> socket::close(close_code code, std::string_view reason) {
  if (connection_->on_its_thread()) return connection_->close(code, reason);
  return on_socket_loop(shared_from_this(), connection_->close(code, reason));
}

const asio::any_io_executor& socket::executor() const noexcept { return connection_->executor(); }

generator<message> socket::messages() { return connection_->messages(); }

generator<stream_event> socket::streams() { return connection_->streams(); }

generator<event> socket::events() { return connection_->events(); }

const upgrade_request& socket::request() const { return connection_->request(); }

std::uint64_t socket::dropped_messages() const noexcept { return connection_->dropped_messages(); }

std::string_view socket::subprotocol() const noexcept { return connection_->subprotocol(); }

std::any& socket::user_data() noexcept { return connection_->user_data(); }

asio::ip::tcp::endpoint socket::remote_endpoint() const noexcept {
  return connection_->remote_endpoint();
}

bool socket::is_open() const noexcept { return connection_->is_open(); }

std::size_t socket::buffered_amount() const noexcept { return connection_->buffered_amount(); }

} // namespace websockets
