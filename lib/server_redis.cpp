// The server's side of the Redis link (server_options::redis): what this instance
// broadcasts and streams with co_write goes to the other instances, and what they send
// reaches this instance's peers, relayed in the order Redis delivers it.
#include "server_core.hpp"

#include <websockets/error.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>

#include <deque>
#include <map>
#include <stdexcept>
#include <utility>

#ifdef WEBSOCKETS_HAS_REDIS
#include "redis_link.hpp"
#endif

namespace websockets::detail {

#ifdef WEBSOCKETS_HAS_REDIS

/// Records of other instances waiting to reach this instance's peers, and the remote
/// streams open here. Remote streams take the server's stream slot one at a time: while
/// one is open, the records of other streams and whole messages wait behind it (a
/// message to a peer inside a stream would wait for the stream's end anyway).
struct server_core::remote_relay {
  explicit remote_relay(const asio::any_io_executor& ex) : changed(ex) {}
  using key = std::pair<std::uint64_t, std::uint64_t>; // instance, stream

  struct item {
    redis_kind kind;
    opcode op;
    key stream;
    std::string payload;
  };

  std::unique_ptr<redis_link> link;
  std::deque<item> queue;
  std::size_t queued_bytes = 0;
  std::map<key, std::shared_ptr<outgoing_stream>> streams; // open here
  std::map<key, bool> cut; // streams whose records were dropped here: the rest is skipped
  std::optional<key> active; // the remote stream holding the slot
  notifier changed;
  bool stopping = false;
  bool relaying = false;

  /// Past this many bytes waiting, records are dropped (a slow set of local peers).
  static constexpr std::size_t max_queued_bytes = std::size_t{64} << 20;
  /// A remote stream that sends nothing for this long is ended here (its instance died).
  static constexpr std::chrono::seconds stream_silence{30};

  /// The next record to relay: the active stream's, or the first when none is active.
  std::optional<item> take() {
    for (auto it = queue.begin(); it != queue.end(); ++it) {
      const bool stream_record = it->kind == redis_kind::stream_fragment || it->kind == redis_kind::stream_end ||
                                 it->kind == redis_kind::stream_interrupted;
      if (active && !(stream_record && it->stream == *active)) continue;
      item taken = std::move(*it);
      queued_bytes -= taken.payload.size();
      queue.erase(it);
      return taken;
    }
    return std::nullopt;
  }
};

void server_core::start_redis() {
  if (options_.redis.empty() || remote_) return;
  remote_ = std::make_shared<remote_relay>(ex_);
  std::weak_ptr<server_core> weak = shared_from_this();
  redis_link_handlers handlers{
      .on_record = [weak](const redis_record& record) {
        if (auto self = weak.lock()) self->on_remote_record(record);
      },
      .on_error = [weak](std::error_code ec, std::string_view) {
        if (auto self = weak.lock()) asio::co_spawn(self->ex_, self->report_error(ec), asio::detached);
      },
      .on_connected = {},
  };
  remote_->link = std::make_unique<redis_link>(ex_, options_.redis, std::move(handlers));
  remote_->link->start();
  remote_->relaying = true;
  asio::co_spawn(ex_, relay_remote(), asio::detached);
}

void server_core::on_remote_record(const redis_record& record) {
  auto& relay = *remote_;
  const remote_relay::key stream{record.instance, record.stream};
  const bool stream_record = record.kind == redis_kind::stream_start || record.kind == redis_kind::stream_fragment ||
                             record.kind == redis_kind::stream_end;
  if (record.kind == redis_kind::gap || record.kind == redis_kind::hello) return;
  if (stream_record && relay.cut.contains(stream)) {
    if (record.kind == redis_kind::stream_end) relay.cut.erase(stream);
    return;
  }
  if (relay.queued_bytes + record.payload.size() > remote_relay::max_queued_bytes) {
    // Dropped, and said: a message is counted as an error event; a stream is ended here.
    if (record.kind == redis_kind::message) {
      asio::co_spawn(ex_, report_error(make_error_code(error::message_dropped)), asio::detached);
      return;
    }
    if (stream_record) {
      relay.cut[stream] = true;
      if (record.kind == redis_kind::stream_end) relay.cut.erase(stream);
      relay.queue.push_back({redis_kind::stream_interrupted, record.opcode, stream, {}});
      relay.changed.notify_all();
      return;
    }
  }
  std::string payload(reinterpret_cast<const char*>(record.payload.data()), record.payload.size());
  relay.queued_bytes += payload.size();
  relay.queue.push_back({record.kind, record.opcode, stream, std::move(payload)});
  relay.changed.notify_all();
}

asio::awaitable<void> server_core::relay_remote() {
  using namespace asio::experimental::awaitable_operators;
  auto self = shared_from_this();
  auto relay = remote_; // alive for as long as this runs
  while (!relay->stopping) {
    auto next = relay->take();
    if (!next) {
      asio::steady_timer silence{ex_, remote_relay::stream_silence};
      auto woken = co_await (relay->changed.wait() || silence.async_wait(nothrow));
      if (woken.index() == 1 && relay->active && !relay->stopping) {
        // The active stream's instance went quiet mid-stream: end it for our peers.
        relay->queue.push_front({redis_kind::stream_interrupted, opcode::binary, *relay->active, {}});
      }
      continue;
    }
    const auto found = relay->streams.find(next->stream);
    std::shared_ptr<outgoing_stream> st = found == relay->streams.end() ? nullptr : found->second;
    const auto payload = std::as_bytes(std::span{next->payload.data(), next->payload.size()});
    switch (next->kind) {
    case redis_kind::message:
      co_await deliver_message(next->op, payload, nullptr);
      break;
    case redis_kind::stream_start:
      st = std::make_shared<outgoing_stream>();
      relay->streams[next->stream] = st;
      relay->active = next->stream;
      co_await open_stream(*st, next->op, nullptr);
      break;
    case redis_kind::stream_fragment:
      if (st) co_await stream_chunk(*st, payload, false);
      break;
    case redis_kind::stream_end:
      if (st) {
        co_await stream_chunk(*st, {}, true);
        close_stream(*st);
      }
      relay->streams.erase(next->stream);
      relay->active.reset();
      break;
    case redis_kind::stream_interrupted:
      if (st) abandon_stream(*st);
      relay->streams.erase(next->stream);
      if (relay->active == next->stream) relay->active.reset();
      break;
    default:
      break;
    }
  }
  for (auto& [key, st] : relay->streams) abandon_stream(*st);
  relay->streams.clear();
  relay->relaying = false;
}

void server_core::stop_redis() noexcept {
  if (!remote_) return;
  remote_->stopping = true;
  remote_->link->stop();
  remote_->changed.notify_all();
}

bool server_core::redis_connected() const noexcept { return remote_ && remote_->link->connected(); }

void server_core::publish_message(opcode op, std::span<const std::byte> payload) {
  if (remote_) (void)remote_->link->publish_message(op, payload);
}

std::uint64_t server_core::publish_stream_start(opcode op) {
  return remote_ ? remote_->link->publish_stream_start(op) : 0;
}

void server_core::publish_fragment(std::uint64_t stream, std::span<const std::byte> chunk) {
  if (remote_) (void)remote_->link->publish_fragment(stream, chunk);
}

void server_core::publish_stream_end(std::uint64_t stream) {
  if (remote_) (void)remote_->link->publish_stream_end(stream);
}

void check_redis_option(const std::string& url) {
  if (!url.empty()) (void)parse_redis_url(url);
}

#else // without hiredis

struct server_core::remote_relay {};
void server_core::start_redis() {}
void server_core::stop_redis() noexcept {}
bool server_core::redis_connected() const noexcept { return false; }
void server_core::publish_message(opcode, std::span<const std::byte>) {}
std::uint64_t server_core::publish_stream_start(opcode) { return 0; }
void server_core::publish_fragment(std::uint64_t, std::span<const std::byte>) {}
void server_core::publish_stream_end(std::uint64_t) {}

void check_redis_option(const std::string& url) {
  if (!url.empty())
    throw std::invalid_argument("server_options::redis: this build of websockets has no Redis support "
                                "(hiredis was not found: install libhiredis-dev and rebuild)");
}

#endif

} // namespace websockets::detail
