#include "redis_link.hpp"

#include <websockets/error.hpp>
#include <websockets/random.hpp>

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <boost/url/parse.hpp>

#include <pthread.h>
#include <signal.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cerrno>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

namespace websockets::detail {

// ---- The URL ----

redis_target parse_redis_url(std::string_view url) {
  const auto parsed = boost::urls::parse_uri(boost::urls::string_view(url.data(), url.size()));
  const auto fail = [&](std::string_view why) {
    throw std::invalid_argument("redis url " + std::string(why) + ": " + std::string(url));
  };
  if (!parsed) fail("is not a URI");
  const auto& u = *parsed;
  if (u.scheme() != "redis") fail("must start with redis://");
  if (!u.has_authority() || u.encoded_host().empty()) fail("has no host");
  if (u.has_userinfo()) fail("names a user or password, which is not supported");
  if (u.has_query() || u.has_fragment()) fail("has a query or fragment");
  redis_target out;
  out.host = u.host_address();
  if (u.has_port()) {
    // Read the digits here: Boost.URL's port_number() wraps values past 65535.
    unsigned long value = 0;
    for (const char c : u.port()) {
      value = value * 10 + static_cast<unsigned long>(c - '0');
      if (value > 65535) break;
    }
    if (value == 0 || value > 65535) fail("has a bad port");
    out.port = static_cast<std::uint16_t>(value);
  }
  std::string path = u.path(); // decoded
  if (!path.empty() && path.front() == '/') path.erase(0, 1);
  if (!path.empty()) out.channel = std::move(path);
  return out;
}

namespace {

// ---- Records on the wire ----
//
// One PUBLISH per record; its message is a 32-byte head and the payload:
//   0-1  "WS"      magic
//   2    1         version
//   3    kind      redis_kind, message to hello
//   4    opcode    text (1) or binary (2) for message and stream_start, else 0
//   5-7  0         reserved
//   8-15           the publishing instance's id, big-endian
//   16-23          its sequence number, big-endian (from 1, one per record attempted)
//   24-31          the stream id for stream records, else 0, big-endian
//   32-            the payload (message, stream_fragment), any bytes

constexpr std::size_t head_size = 32;
constexpr std::uint8_t version = 1;

void put_u64(std::byte* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<std::byte>(v & 0xFF);
    v >>= 8;
  }
}

std::uint64_t get_u64(const std::byte* in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint64_t>(in[i]);
  return v;
}

void encode_record(std::vector<std::byte>& out, const redis_record& r) {
  out.resize(head_size + r.payload.size());
  std::fill_n(out.begin(), head_size, std::byte{0});
  out[0] = std::byte{'W'};
  out[1] = std::byte{'S'};
  out[2] = std::byte{version};
  out[3] = static_cast<std::byte>(r.kind);
  if (r.kind == redis_kind::message || r.kind == redis_kind::stream_start)
    out[4] = static_cast<std::byte>(r.opcode);
  put_u64(out.data() + 8, r.instance);
  put_u64(out.data() + 16, r.sequence);
  put_u64(out.data() + 24, r.stream);
  if (!r.payload.empty()) std::memcpy(out.data() + head_size, r.payload.data(), r.payload.size());
}

/// The record in `in`, or false when it is not one of ours.
bool decode_record(std::span<const std::byte> in, redis_record& r) {
  if (in.size() < head_size || in[0] != std::byte{'W'} || in[1] != std::byte{'S'} ||
      in[2] != std::byte{version})
    return false;
  const auto kind = static_cast<std::uint8_t>(in[3]);
  if (kind < static_cast<std::uint8_t>(redis_kind::message) || kind > static_cast<std::uint8_t>(redis_kind::hello))
    return false;
  r.kind = static_cast<redis_kind>(kind);
  r.instance = get_u64(in.data() + 8);
  r.sequence = get_u64(in.data() + 16);
  r.stream = get_u64(in.data() + 24);
  r.payload = in.subspan(head_size);
  if (r.kind == redis_kind::message || r.kind == redis_kind::stream_start) {
    r.opcode = static_cast<websockets::opcode>(in[4]);
    if (r.opcode != opcode::text && r.opcode != opcode::binary) return false;
  }
  if (!r.payload.empty() && r.kind != redis_kind::message && r.kind != redis_kind::stream_fragment)
    return false;
  return r.sequence != 0;
}

/// hiredis writes with write(2): a connection Redis reset raises SIGPIPE, which would
/// end the process. The guard blocks it on this thread for the write and takes back
/// one it raised, leaving the process's signal dispositions alone.
class sigpipe_guard {
public:
  sigpipe_guard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    pending_before_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~sigpipe_guard() {
    if (!pending_before_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{};
        while (sigtimedwait(&pipe_, nullptr, &zero) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool pending_before_ = false;
};

// ---- hiredis driven by Asio ----
//
// hiredis asks for readiness through the context's ev hooks; this watches the context's
// descriptor with async_wait and calls redisAsyncHandleRead/Write. The descriptor stays
// hiredis's: cleanup (called as hiredis frees the context, before it closes the
// descriptor) releases it, which cancels the waits. Waits hold the watch alive until
// they complete; a wait that completes after cleanup does nothing.
class asio_watch : public std::enable_shared_from_this<asio_watch> {
public:
  asio_watch(const asio::any_io_executor& executor, redisAsyncContext* ac)
      : descriptor_(executor, ac->c.fd), ac_(ac) {}

  /// Installs the hooks on `ac`; false (and nothing installed) if Asio cannot watch it.
  static bool attach(redisAsyncContext* ac, const asio::any_io_executor& executor) {
    std::shared_ptr<asio_watch> watch;
    try {
      watch = std::make_shared<asio_watch>(executor, ac);
    } catch (const std::exception&) {
      return false;
    }
    watch->self_ = watch;
    ac->ev.data = watch.get();
    ac->ev.addRead = &add_read;
    ac->ev.delRead = &del_read;
    ac->ev.addWrite = &add_write;
    ac->ev.delWrite = &del_write;
    ac->ev.cleanup = &cleanup;
    return true;
  }

  static void add_read(void* p) { static_cast<asio_watch*>(p)->want(true); }
  static void del_read(void* p) { static_cast<asio_watch*>(p)->read_.wanted = false; }
  static void add_write(void* p) { static_cast<asio_watch*>(p)->want(false); }
  static void del_write(void* p) { static_cast<asio_watch*>(p)->write_.wanted = false; }
  static void cleanup(void* p) {
    auto* watch = static_cast<asio_watch*>(p);
    watch->ac_ = nullptr;
    watch->read_.wanted = watch->write_.wanted = false;
    (void)watch->descriptor_.release(); // cancels the waits; hiredis closes the descriptor
    const auto last = std::move(watch->self_); // the watch goes once its waits are done
  }

private:
  struct direction {
    bool wanted = false;
    bool waiting = false;
  };

  void want(bool reading) {
    direction& d = reading ? read_ : write_;
    d.wanted = true;
    if (d.waiting || ac_ == nullptr) return;
    d.waiting = true;
    descriptor_.async_wait(reading ? asio::posix::descriptor_base::wait_read : asio::posix::descriptor_base::wait_write,
                           [self = shared_from_this(), reading](const std::error_code& ec) {
                             direction& d = reading ? self->read_ : self->write_;
                             d.waiting = false;
                             if (ec == asio::error::operation_aborted || self->ac_ == nullptr || !d.wanted) return;
                             // hiredis asks again (addRead always, addWrite while it has
                             // more to write); it may free the context meanwhile.
                             if (reading) {
                               redisAsyncHandleRead(self->ac_);
                             } else {
                               const sigpipe_guard guard;
                               redisAsyncHandleWrite(self->ac_);
                             }
                           });
  }

  asio::posix::stream_descriptor descriptor_;
  redisAsyncContext* ac_;
  direction read_, write_;
  std::shared_ptr<asio_watch> self_; ///< Until cleanup.
};

std::string detail_of(const redisAsyncContext* ac, std::string_view otherwise) {
  if (ac != nullptr && ac->err != 0 && ac->errstr != nullptr && *ac->errstr != '\0') return ac->errstr;
  return std::string(otherwise);
}

} // namespace

// ---- The link ----

struct redis_link::state : std::enable_shared_from_this<redis_link::state> {
  /// One of the two connections; `ac->data` points here while it is ours.
  struct side {
    state* owner;
    redisAsyncContext* ac = nullptr;
    bool ready = false; ///< Connected (publisher) or subscribed (subscriber).
  };
  enum class phase { idle, connecting, up, waiting, stopped };
  /// What the link knows of another instance.
  struct publisher {
    std::uint64_t last = 0;           ///< Its last sequence number seen.
    std::set<std::uint64_t> streams;  ///< Its streams open here.
  };

  state(asio::any_io_executor ex, redis_target t, redis_link_handlers h, redis_link_options o)
      : executor(std::move(ex)), target(std::move(t)), handlers(std::move(h)), options(o),
        timer(executor), resolver(executor), backoff(options.initial_backoff) {
    std::array<std::byte, 8> bytes{};
    do {
      fill_random(bytes);
      id = get_u64(bytes.data());
    } while (id == 0);
  }

  asio::any_io_executor executor;
  redis_target target;
  redis_link_handlers handlers;
  redis_link_options options;
  std::uint64_t id = 0;
  side sub{this}, pub{this};
  phase now = phase::idle;
  asio::steady_timer timer; ///< The connect deadline, then the back-off.
  asio::ip::tcp::resolver resolver;
  std::chrono::milliseconds backoff;
  std::uint64_t attempt = 0; ///< Bumped by each connection attempt and by stop().
  bool failing = false;      ///< This attempt's failure is posted.
  bool outage_reported = false;
  std::string failure;
  std::uint64_t next_sequence = 1;
  std::uint64_t next_stream = 1;
  std::size_t pending_bytes = 0;
  std::set<std::uint64_t> open_streams; ///< Ours, begun and not ended.
  std::set<std::uint64_t> cut_streams;  ///< Ours that lost a record.
  std::map<std::uint64_t, publisher> publishers;
  std::vector<std::byte> buffer;
  redis_link_stats stats;

  // -- Connecting --

  /// Runs `f(state&)` later on the executor, unless the link is gone or has moved on
  /// to another attempt.
  template <class F>
  void later(F f) {
    asio::post(executor, [weak = weak_from_this(), at = attempt, f = std::move(f)] {
      if (auto self = weak.lock(); self && self->attempt == at && self->now != phase::stopped) f(*self);
    });
  }

  void connect() {
    now = phase::connecting;
    ++attempt;
    failing = false;
    timer.expires_after(options.connect_timeout);
    timer.async_wait([weak = weak_from_this(), at = attempt](const std::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->attempt != at || self->now != phase::connecting) return;
      self->fail("timed out connecting to Redis");
    });
    std::error_code ec;
    const auto address = asio::ip::make_address(target.host, ec);
    if (!ec) return open(address.to_string());
    resolver.async_resolve(target.host, std::to_string(target.port),
                           [weak = weak_from_this(), at = attempt](const std::error_code& ec,
                                                                   const asio::ip::tcp::resolver::results_type& results) {
                             auto self = weak.lock();
                             if (!self || self->attempt != at || self->now != phase::connecting) return;
                             if (ec || results.empty())
                               return self->fail("cannot resolve " + self->target.host + ": " + ec.message());
                             self->open(results.begin()->endpoint().address().to_string());
                           });
  }

  void open(const std::string& address) {
    if (!open(sub, address) || !open(pub, address)) return;
    // hiredis connects on the first writable event: the subscriber's SUBSCRIBE asks for
    // one, the publisher asks for it directly.
    redisAsyncCommand(sub.ac, &on_channel, nullptr, "SUBSCRIBE %b", target.channel.data(), target.channel.size());
    pub.ac->ev.addWrite(pub.ac->ev.data);
  }

  bool open(side& s, const std::string& address) {
    redisAsyncContext* ac = redisAsyncConnect(address.c_str(), target.port);
    if (ac == nullptr || ac->err != 0) {
      fail(detail_of(ac, "cannot connect to Redis"));
      if (ac != nullptr) redisAsyncFree(ac);
      return false;
    }
    if (!asio_watch::attach(ac, executor)) {
      redisAsyncFree(ac);
      fail("cannot watch the Redis connection");
      return false;
    }
    ac->data = &s;
    redisAsyncSetConnectCallback(ac, &on_connect);
    redisAsyncSetDisconnectCallback(ac, &on_disconnect);
    s.ac = ac;
    s.ready = false;
    return true;
  }

  /// The side `ac` belongs to while it is ours, else null.
  static side* side_of(const redisAsyncContext* ac) { return static_cast<side*>(ac->data); }

  /// hiredis frees `ac` once this returns: forget it.
  static void forget(side& s) {
    const_cast<redisAsyncContext*>(s.ac)->data = nullptr;
    s.ac = nullptr;
    s.ready = false;
  }

  static void on_connect(const redisAsyncContext* ac, int status) {
    side* s = side_of(ac);
    if (s == nullptr) return;
    if (status != REDIS_OK) {
      const std::string why = detail_of(ac, "cannot connect to Redis");
      forget(*s);
      s->owner->fail(why);
      return;
    }
    if (s == &s->owner->pub) {
      s->ready = true;
      s->owner->later([](state& st) { st.maybe_up(); });
    }
  }

  static void on_disconnect(const redisAsyncContext* ac, int) {
    side* s = side_of(ac);
    if (s == nullptr) return;
    const std::string why = detail_of(ac, "Redis closed the connection");
    forget(*s);
    s->owner->fail(why);
  }

  /// Ends this attempt or this connection: later, outside hiredis's callbacks.
  void fail(std::string why) {
    if ((now != phase::connecting && now != phase::up) || failing) return;
    failing = true;
    failure = std::move(why);
    later([](state& st) { st.go_down(); });
  }

  void maybe_up() {
    if (now != phase::connecting || !sub.ready || !pub.ready) return;
    now = phase::up;
    timer.cancel();
    backoff = options.initial_backoff;
    outage_reported = false;
    ++stats.connections;
    send(redis_kind::hello, opcode::binary, 0, {});
    if (now == phase::up && handlers.on_connected) handlers.on_connected();
  }

  void go_down() {
    close_connections();
    pending_bytes = 0;
    // Our open streams may have lost records with the connection: cut them, and skip a
    // sequence number so that receivers see a gap even if none was lost.
    if (const auto before = cut_streams.size(); (cut_streams.insert(open_streams.begin(), open_streams.end()),
                                                  cut_streams.size() != before))
      ++next_sequence;
    now = phase::waiting;
    // Streams of other instances lose fragments from now on: end them here.
    for (auto& [instance, p] : publishers) {
      interrupt(instance, p);
      if (now == phase::stopped) return;
    }
    if (!outage_reported) {
      outage_reported = true;
      if (handlers.on_error) handlers.on_error(make_error_code(error::redis_unavailable), failure);
      if (now == phase::stopped) return;
    }
    timer.expires_after(backoff);
    backoff = std::min(backoff * 2, options.max_backoff);
    timer.async_wait([weak = weak_from_this(), at = attempt](const std::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->attempt != at || self->now != phase::waiting) return;
      self->connect();
    });
  }

  /// Frees both contexts; their callbacks see nothing of ours any more.
  void close_connections() {
    for (side* s : {&sub, &pub}) {
      if (s->ac == nullptr) continue;
      redisAsyncContext* ac = s->ac;
      forget(*s);
      ac->onConnect = nullptr;
      ac->onDisconnect = nullptr;
      redisAsyncFree(ac);
    }
  }

  void stop() {
    if (now == phase::stopped) return;
    now = phase::stopped;
    ++attempt;
    timer.cancel();
    resolver.cancel();
    // What was published last (a stream's end, at a server's stop) still goes out when
    // the socket takes it now; freeing the context would discard it. Never waits.
    if (pub.ac != nullptr && !(pub.ac->c.flags & REDIS_DISCONNECTING)) {
      int done = 0;
      for (int attempts = 0; attempts < 64 && done == 0; ++attempts)
        if (redisBufferWrite(&pub.ac->c, &done) != REDIS_OK) break;
    }
    close_connections();
  }

  // -- Publishing --

  static void on_published(redisAsyncContext* ac, void*, void* privdata) {
    side* s = side_of(ac);
    if (s == nullptr) return;
    const auto size = reinterpret_cast<std::uintptr_t>(privdata);
    s->owner->pending_bytes -= std::min<std::size_t>(s->owner->pending_bytes, size);
  }

  bool send(redis_kind kind, websockets::opcode op, std::uint64_t stream, std::span<const std::byte> payload) {
    const redis_record r{.kind = kind, .opcode = op, .instance = id, .sequence = next_sequence++,
                         .stream = stream, .payload = payload};
    const std::size_t size = head_size + payload.size();
    if (now != phase::up || pub.ac == nullptr ||
        (pending_bytes != 0 && pending_bytes + size > options.max_pending_bytes)) {
      ++stats.dropped;
      return false;
    }
    encode_record(buffer, r);
    const int status = redisAsyncCommand(pub.ac, &on_published, reinterpret_cast<void*>(static_cast<std::uintptr_t>(size)),
                                         "PUBLISH %b %b", target.channel.data(), target.channel.size(),
                                         buffer.data(), buffer.size());
    if (buffer.capacity() > (std::size_t{1} << 20)) std::vector<std::byte>().swap(buffer);
    if (status != REDIS_OK) {
      ++stats.dropped;
      return false;
    }
    pending_bytes += size;
    ++stats.published;
    return true;
  }

  // -- Receiving --

  static void on_channel(redisAsyncContext* ac, void* reply, void*) {
    side* s = side_of(ac);
    if (s == nullptr || reply == nullptr) return;
    const auto keep = s->owner->shared_from_this(); // a handler may drop the link
    keep->received(*static_cast<const redisReply*>(reply));
  }

  void received(const redisReply& reply) {
    if (now == phase::stopped) return;
    if (reply.type == REDIS_REPLY_ERROR) return fail(std::string("Redis refused SUBSCRIBE: ") + reply.str);
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 3) return;
    const redisReply* what = reply.element[0];
    const redisReply* body = reply.element[2];
    if (what->type != REDIS_REPLY_STRING) return;
    const std::string_view verb(what->str, what->len);
    if (verb == "subscribe") {
      sub.ready = true;
      return later([](state& st) { st.maybe_up(); });
    }
    if (verb != "message" || body->type != REDIS_REPLY_STRING) return;
    redis_record r;
    if (!decode_record(std::as_bytes(std::span{body->str, body->len}), r)) {
      ++stats.malformed;
      return;
    }
    if (r.instance == id) {
      ++stats.own;
      return;
    }
    accept(r);
  }

  void accept(const redis_record& r) {
    auto [at, fresh] = publishers.try_emplace(r.instance);
    if (fresh) forget_quiet_publishers(r.instance);
    publisher& p = at->second;
    if (p.last != 0 && r.sequence > p.last + 1) {
      const std::uint64_t missed = r.sequence - p.last - 1;
      stats.missed += missed;
      p.last = r.sequence;
      deliver({.kind = redis_kind::gap, .instance = r.instance, .sequence = r.sequence, .missed = missed});
      if (now == phase::stopped) return;
      interrupt(r.instance, p);
      if (now == phase::stopped) return;
    }
    p.last = r.sequence;
    switch (r.kind) {
    case redis_kind::message: break;
    case redis_kind::stream_start:
      if (p.streams.contains(r.stream)) { // begun again: the old one's end was lost
        p.streams.erase(r.stream);
        deliver({.kind = redis_kind::stream_interrupted, .instance = r.instance, .stream = r.stream});
        if (now == phase::stopped) return;
      }
      p.streams.insert(r.stream);
      break;
    case redis_kind::stream_fragment:
      if (!p.streams.contains(r.stream)) return; // begun before we listened, or interrupted
      break;
    case redis_kind::stream_end:
      if (p.streams.erase(r.stream) == 0) return;
      break;
    default: return; // hello
    }
    ++stats.received;
    deliver(r);
  }

  /// Ends every stream of `instance` open here.
  void interrupt(std::uint64_t instance, publisher& p) {
    const auto streams = std::exchange(p.streams, {});
    for (const std::uint64_t stream : streams) {
      deliver({.kind = redis_kind::stream_interrupted, .instance = instance, .stream = stream});
      if (now == phase::stopped) return;
    }
  }

  /// Instances come and go (each start draws a new id): past a few thousand, forget
  /// those with no stream open here. Their next gap goes unnoticed, nothing else.
  void forget_quiet_publishers(std::uint64_t keep) {
    if (publishers.size() <= 4096) return;
    std::erase_if(publishers, [&](const auto& entry) { return entry.first != keep && entry.second.streams.empty(); });
  }

  void deliver(const redis_record& r) {
    if (now != phase::stopped && handlers.on_record) handlers.on_record(r);
  }
};

redis_link::redis_link(asio::any_io_executor executor, std::string_view url, redis_link_handlers handlers,
                       redis_link_options options)
    : state_(std::make_shared<state>(std::move(executor), parse_redis_url(url), std::move(handlers), options)) {}

redis_link::~redis_link() { stop(); }

void redis_link::start() {
  if (state_->now == state::phase::idle) state_->connect();
}

void redis_link::stop() { state_->stop(); }

bool redis_link::publish_message(websockets::opcode opcode, std::span<const std::byte> payload) {
  if (opcode != opcode::text && opcode != opcode::binary)
    throw std::invalid_argument("redis_link: a message is text or binary");
  return state_->send(redis_kind::message, opcode, 0, payload);
}

std::uint64_t redis_link::publish_stream_start(websockets::opcode opcode) {
  if (opcode != opcode::text && opcode != opcode::binary)
    throw std::invalid_argument("redis_link: a stream is text or binary");
  auto& s = *state_;
  const std::uint64_t stream = s.next_stream++;
  s.open_streams.insert(stream);
  if (!s.send(redis_kind::stream_start, opcode, stream, {})) s.cut_streams.insert(stream);
  return stream;
}

bool redis_link::publish_fragment(std::uint64_t stream, std::span<const std::byte> payload) {
  auto& s = *state_;
  if (!s.open_streams.contains(stream) || s.cut_streams.contains(stream)) {
    ++s.stats.dropped; // receivers know of the cut already (a gap)
    return false;
  }
  if (s.send(redis_kind::stream_fragment, opcode::continuation, stream, payload)) return true;
  s.cut_streams.insert(stream);
  return false;
}

bool redis_link::publish_stream_end(std::uint64_t stream) {
  auto& s = *state_;
  s.open_streams.erase(stream);
  s.cut_streams.erase(stream);
  return s.send(redis_kind::stream_end, opcode::continuation, stream, {});
}

bool redis_link::connected() const noexcept { return state_->now == state::phase::up; }

std::uint64_t redis_link::instance() const noexcept { return state_->id; }

const redis_target& redis_link::target() const noexcept { return state_->target; }

redis_link_stats redis_link::stats() const noexcept { return state_->stats; }

} // namespace websockets::detail
