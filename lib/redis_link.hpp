// The Redis link: server instances on any number of machines share their broadcasts and
// streams through one Redis pub/sub channel. Private to the library (built when hiredis
// is found: WEBSOCKETS_HAS_REDIS); the server drives it.
//
// Each link publishes records on the channel through one Redis connection and
// subscribes to it through another, both hiredis async contexts driven by the link's
// Asio executor. A record names the instance that published it, so a link never hands
// on its own records (no echo), and carries a per-instance sequence number, so a
// receiver knows when it missed some.
//
// Delivery is at most once, as Redis pub/sub is: what is published while Redis is away,
// or while a receiver is not subscribed, is lost. The link says so:
//  - publishing while disconnected (or past `max_pending_bytes`) drops the record,
//    returns false and counts it (`stats().dropped`); the sequence number is used all
//    the same, so receivers see the gap;
//  - a receiver that sees a publisher's sequence jump hands on a `gap` record (with the
//    number missed) and ends every stream of that publisher it had open with a
//    `stream_interrupted` record: the server ends those streams for its peers. Later
//    fragments of an interrupted stream are not handed on;
//  - a receiver whose own subscription drops interrupts every open stream at once;
//  - a publisher whose connection drops treats its open streams as cut (and skips a
//    sequence number, so receivers see a gap): their further fragments are dropped,
//    without using sequence numbers, until their end, which is published as usual and
//    which receivers skip for a stream they interrupted;
//  - on each (re)connection a link publishes a `hello` record (never handed on), so
//    receivers notice a publisher's gap at once rather than at its next record.
// Not detected: an instance that dies mid-stream leaves that stream open at the
// receivers (no heartbeat), and a Redis that hangs without closing its connections.
#pragma once

#include <websockets/frame.hpp>

#include <asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace websockets::detail {

/// Where the link meets the other instances, from `redis://host[:port][/channel]`.
struct redis_target {
  std::string host;                 ///< A name or an address (IPv6 without brackets).
  std::uint16_t port = 6379;        ///< Redis's port unless the URL names one.
  std::string channel = "websockets"; ///< The path without its slash, percent-decoded.
};

/// Parses a redis:// URL; throws `std::invalid_argument` naming what is wrong (another
/// scheme, no host, a bad port, a user or password: AUTH is not supported).
[[nodiscard]] redis_target parse_redis_url(std::string_view url);

/// What a record is. On the wire: `message` to `hello`; `stream_interrupted` and `gap`
/// are made by the receiving link.
enum class redis_kind : std::uint8_t {
  message = 1,        ///< A whole message; `opcode` text or binary.
  stream_start,       ///< Stream `stream` of the publisher begins; `opcode` text or binary.
  stream_fragment,    ///< The next piece of stream `stream`.
  stream_end,         ///< Stream `stream` ends.
  hello,              ///< The publisher (re)connected; never handed on.
  stream_interrupted = 16, ///< Stream `stream` of `instance` lost records: end it here.
  gap,                ///< `missed` records of `instance` never arrived.
};

/// One record as handed to the receiver (its `payload` only lives during the call).
struct redis_record {
  redis_kind kind{};
  websockets::opcode opcode = websockets::opcode::binary; ///< For `message` and `stream_start`.
  std::uint64_t instance = 0; ///< The publishing instance's id.
  std::uint64_t sequence = 0; ///< Its number among that instance's records (from 1).
  std::uint64_t stream = 0;   ///< For stream records: the publisher's stream id.
  std::uint64_t missed = 0;   ///< For `gap`: how many records were lost.
  std::span<const std::byte> payload{}; ///< For `message` and `stream_fragment`.
};

/// Counters, for reports and tests.
struct redis_link_stats {
  std::uint64_t published = 0;  ///< Records handed to the publishing connection.
  std::uint64_t dropped = 0;    ///< Records not published: Redis away, a cut stream, too much pending.
  std::uint64_t received = 0;   ///< Records of other instances handed on.
  std::uint64_t own = 0;        ///< Our own records seen on the channel and skipped.
  std::uint64_t missed = 0;     ///< Records of other instances known lost (sum of gaps).
  std::uint64_t malformed = 0;  ///< Channel messages that are not records, skipped.
  std::uint64_t connections = 0; ///< Times the link came up (1 + reconnections).
};

struct redis_link_options {
  std::chrono::milliseconds initial_backoff{100}; ///< First wait before reconnecting.
  std::chrono::milliseconds max_backoff{5000};    ///< Waits double up to this.
  std::chrono::milliseconds connect_timeout{5000}; ///< For both connections and the subscription.
  /// Bytes handed to the publishing connection and not yet confirmed by Redis past
  /// which records are dropped (a Redis too slow for the traffic).
  std::size_t max_pending_bytes = std::size_t{256} << 20;
};

/// What the link calls, always on its executor and never after `stop()`.
struct redis_link_handlers {
  /// Each record of another instance, in the order Redis delivers them, plus the
  /// `gap` and `stream_interrupted` records the link makes.
  std::function<void(const redis_record&)> on_record;
  /// Redis became unreachable (`error::redis_unavailable`), once per outage; `detail`
  /// is hiredis's reason. The link keeps reconnecting by itself.
  std::function<void(std::error_code, std::string_view detail)> on_error;
  /// The link is up: at the start, and after each outage. Optional.
  std::function<void()> on_connected;
};

/// A link to the other instances through one Redis channel. Lives on one executor:
/// every call must be made there (one thread), and the handlers run there.
class redis_link {
public:
  /// Parses `url` (throws `std::invalid_argument`); connects on `start()`.
  redis_link(asio::any_io_executor executor, std::string_view url, redis_link_handlers handlers,
             redis_link_options options = {});
  ~redis_link(); ///< Stops.
  redis_link(const redis_link&) = delete;
  redis_link& operator=(const redis_link&) = delete;

  /// Connects, and from then on reconnects with back-off whenever Redis goes away.
  void start();
  /// Closes both connections and cancels every wait: no handler is called after it.
  /// Final: a stopped link does not start again.
  void stop();

  /// Publishes a whole message (`opcode` text or binary). False when dropped.
  bool publish_message(websockets::opcode opcode, std::span<const std::byte> payload);
  /// Begins a stream (`opcode` text or binary) and returns its id, published or not:
  /// pass it to `publish_fragment` and `publish_stream_end`.
  std::uint64_t publish_stream_start(websockets::opcode opcode);
  /// The next piece of `stream`. False when dropped, which cuts the stream: its
  /// further pieces are dropped too.
  bool publish_fragment(std::uint64_t stream, std::span<const std::byte> payload);
  /// Ends `stream` (also after a cut). False when dropped.
  bool publish_stream_end(std::uint64_t stream);

  /// True while both connections are up and subscribed.
  [[nodiscard]] bool connected() const noexcept;
  /// This instance's random id, as other links see it in `redis_record::instance`.
  [[nodiscard]] std::uint64_t instance() const noexcept;
  [[nodiscard]] const redis_target& target() const noexcept;
  [[nodiscard]] redis_link_stats stats() const noexcept;

  struct state;

private:
  std::shared_ptr<state> state_;
};

} // namespace websockets::detail
