// Test helpers for the socket, server and client tests: a bounded run of one coroutine
// on a fresh io_context, waits with deadlines, and a raw TCP peer that speaks bytes.
#pragma once

#include <websockets/client.hpp>
#include <websockets/frame_writer.hpp>
#include <websockets/server.hpp>

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace websockets::detail {
// Exported by the library for tests: frames encoded so far (see lib/connection.hpp).
std::uint64_t encoded_frames() noexcept;
} // namespace websockets::detail

namespace loopback {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using executor = asio::any_io_executor;
inline constexpr auto nothrow = websockets::detail::nothrow;

/// Runs `body(executor)` to completion, for at most `limit`; then gives the
/// connections it leaves behind a moment to wind down. Every test ends on its own:
/// a hang is a failure, not a stuck test run.
template <class Body>
void run(Body body, std::chrono::milliseconds limit = 15s) {
  asio::io_context io;
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, body(io.get_executor()), [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < deadline && io.run_one_until(deadline) != 0) {
  }
  const auto grace = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < grace && io.run_one_until(grace) != 0) {
  }
  REQUIRE_MESSAGE(done, "the test did not finish in time");
  if (failure) std::rethrow_exception(failure);
}

inline asio::awaitable<void> sleep(std::chrono::milliseconds duration) {
  asio::steady_timer timer{co_await asio::this_coro::executor, duration};
  (void)co_await timer.async_wait(nothrow);
}

/// Runs `a` on its own; the flag says when it is done.
inline std::shared_ptr<bool> spawn(executor ex, asio::awaitable<void> a) {
  auto done = std::make_shared<bool>(false);
  asio::co_spawn(ex, std::move(a), [done](const std::exception_ptr&) { *done = true; });
  return done;
}

/// Waits until `flag` is set, for at most `limit`; the flag's value.
inline asio::awaitable<bool> until(const std::shared_ptr<bool>& flag, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!*flag && std::chrono::steady_clock::now() < deadline) co_await sleep(std::chrono::milliseconds{5});
  co_return *flag;
}

/// `co_await a`, or an empty optional after `limit`.
template <class T>
asio::awaitable<std::optional<T>> within(asio::awaitable<T> a, std::chrono::milliseconds limit) {
  auto result = co_await (std::move(a) || sleep(limit));
  if (result.index() == 1) co_return std::nullopt;
  co_return std::move(std::get<0>(result));
}

/// The next item of `gen`, failing the test after `limit`.
template <class T>
asio::awaitable<T> next(websockets::generator<T>& gen, std::chrono::milliseconds limit = 5s) {
  auto item = co_await within(gen.next(), limit);
  REQUIRE_MESSAGE(item.has_value(), "no event in time");
  REQUIRE_MESSAGE(item->has_value(), "the generator ended");
  co_return std::move(**item);
}

/// The rest of a stream on a streams() generator, after its stream_start: the pieces
/// joined, up to its stream_end (checked to be what ends it).
inline asio::awaitable<std::string> rest_of_stream(websockets::generator<websockets::stream_event>& gen) {
  std::string joined;
  for (;;) {
    auto ev = co_await next(gen);
    if (auto* data = std::get_if<websockets::stream_data>(&ev)) {
      joined += data->chunk;
      continue;
    }
    CHECK(std::holds_alternative<websockets::stream_end>(ev));
    co_return joined;
  }
}

/// True when `gen` yields nothing within `limit` (or has ended).
template <class T>
asio::awaitable<bool> quiet(websockets::generator<T>& gen, std::chrono::milliseconds limit = 200ms) {
  auto item = co_await within(gen.next(), limit);
  co_return !item.has_value() || !item->has_value();
}

/// The next event of the given kind on an events() generator, skipping others.
template <class E>
asio::awaitable<E> next_of(websockets::generator<websockets::event>& gen,
                           std::chrono::milliseconds limit = 5s) {
  for (;;) {
    auto ev = co_await next(gen, limit);
    if (auto* e = std::get_if<E>(&ev)) co_return std::move(*e);
  }
}

/// The ws:// url of `srv`'s port on 127.0.0.1.
inline std::string url_of(const websockets::server& srv, std::string_view path = "/") {
  return "ws://127.0.0.1:" + std::to_string(srv.local_endpoint().port()) + std::string(path);
}

/// `options` with the default url replaced by 127.0.0.1 and a free port.
/// With WEBSOCKETS_TEST_THREADS=N in the environment (tests/run --tsan), servers of
/// one thread get N: every test through here runs with sockets on several event loops.
inline websockets::server_options local(websockets::server_options options = {}) {
  if (options.url == "ws://localhost:3000") options.url = "ws://127.0.0.1:0/";
  if (const char* threads = std::getenv("WEBSOCKETS_TEST_THREADS"); threads && options.threads == 1)
    options.threads = static_cast<std::size_t>(std::max(1, std::atoi(threads)));
  return options;
}

/// A server on 127.0.0.1 and a free port, listening from its construction on.
struct fixture {
  explicit fixture(executor ex, websockets::server_options options = {})
      : srv(ex, local(std::move(options))) {
    asio::co_spawn(ex, srv.listen(), [flag = listening](const std::exception_ptr&) { *flag = false; });
  }
  websockets::server srv;
  std::shared_ptr<bool> listening = std::make_shared<bool>(true); ///< The accept loop runs.
};

inline std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span{s.data(), s.size()});
}

/// A TCP peer that writes and reads raw bytes: for what our own client never does.
class raw_peer {
public:
  explicit raw_peer(executor ex) : tcp_(ex) {}

  asio::awaitable<void> connect(std::uint16_t port) {
    asio::ip::tcp::endpoint endpoint{asio::ip::make_address("127.0.0.1"), port};
    co_await tcp_.async_connect(endpoint, asio::use_awaitable);
  }

  asio::awaitable<void> write(std::string_view bytes) {
    co_await asio::async_write(tcp_, asio::buffer(bytes), asio::use_awaitable);
  }

  asio::awaitable<void> write(std::span<const std::byte> bytes) {
    co_await asio::async_write(tcp_, asio::buffer(bytes.data(), bytes.size()), asio::use_awaitable);
  }

  /// Sends an upgrade request for `path` and returns the response head.
  asio::awaitable<std::string> upgrade(std::string_view path = "/", std::string_view extra = {}) {
    std::string request = "GET " + std::string(path) +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n" +
                          std::string(extra) + "\r\n";
    co_await write(request);
    co_return co_await read_head();
  }

  /// Reads up to the blank line; what follows stays buffered for `read_frame`.
  asio::awaitable<std::string> read_head(std::chrono::milliseconds limit = 5s) {
    auto r = co_await within(read_head_now(), limit);
    REQUIRE_MESSAGE(r.has_value(), "no response head in time");
    co_return *r;
  }

  /// One whole frame (unmasked if it came masked): opcode, fin and payload.
  struct frame {
    websockets::opcode opcode;
    bool fin;
    std::string payload;
    bool rsv1 = false; ///< Compressed (permessage-deflate).
  };
  asio::awaitable<std::optional<frame>> read_frame(std::chrono::milliseconds limit = 5s) {
    auto r = co_await within(read_frame_now(), limit);
    if (!r) co_return std::nullopt;
    co_return *r;
  }

  /// Waits for the server to close TCP: true when it did within `limit`.
  asio::awaitable<bool> closed_by_peer(std::chrono::milliseconds limit = 5s) {
    auto r = co_await within(read_until_eof(), limit);
    co_return r.has_value();
  }

  /// One frame's bytes as a client sends it (masked) or, with `masked` false, as no
  /// client may; `rsv1` marks a compressed message.
  static std::string frame_bytes(websockets::opcode op, std::string_view payload, bool fin = true,
                                 bool masked = true, bool rsv1 = false) {
    websockets::frame_head head{.fin = fin, .rsv1 = rsv1, .opcode = op, .masked = masked,
                                .key = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}},
                                .payload_size = payload.size()};
    std::array<std::byte, websockets::max_head_size> head_bytes{};
    const std::size_t n = websockets::encode_head(head, head_bytes);
    std::string bytes(reinterpret_cast<const char*>(head_bytes.data()), n);
    std::string body(payload);
    if (masked) websockets::apply_mask(std::as_writable_bytes(std::span{body.data(), body.size()}), head.key);
    return bytes + body;
  }

  /// Sends one frame (see `frame_bytes`).
  asio::awaitable<void> send_frame(websockets::opcode op, std::string_view payload, bool fin = true,
                                   bool masked = true, bool rsv1 = false) {
    co_await write(frame_bytes(op, payload, fin, masked, rsv1));
  }

  void close() {
    std::error_code ignored;
    tcp_.close(ignored);
  }

  asio::ip::tcp::socket& tcp() { return tcp_; }

private:
  asio::awaitable<std::string> read_head_now() {
    auto [ec, n] = co_await asio::async_read_until(tcp_, asio::dynamic_buffer(buffer_), "\r\n\r\n", nothrow);
    if (ec) co_return std::string{};
    std::string head = buffer_.substr(0, n);
    buffer_.erase(0, n);
    co_return head;
  }

  asio::awaitable<bool> fill(std::size_t want) {
    while (buffer_.size() < want) {
      std::array<char, 4096> chunk{};
      auto [ec, n] = co_await tcp_.async_read_some(asio::buffer(chunk), nothrow);
      if (ec) co_return false;
      buffer_.append(chunk.data(), n);
    }
    co_return true;
  }

  asio::awaitable<frame> read_frame_now() {
    for (;;) {
      if (!co_await fill(2)) co_return frame{websockets::opcode::close, true, "<eof>"};
      std::size_t want = 2;
      for (;;) {
        auto r = websockets::decode_head(std::as_bytes(std::span{buffer_.data(), buffer_.size()}));
        if (r.state == websockets::head_decode_result::status::complete) {
          const std::size_t total = r.size + r.head.payload_size;
          if (!co_await fill(total)) co_return frame{websockets::opcode::close, true, "<eof>"};
          frame f{r.head.opcode, r.head.fin, buffer_.substr(r.size, r.head.payload_size), r.head.rsv1};
          if (r.head.masked) // a client's frame
            websockets::apply_mask(std::as_writable_bytes(std::span{f.payload.data(), f.payload.size()}),
                                   r.head.key);
          buffer_.erase(0, total);
          co_return f;
        }
        REQUIRE(r.state == websockets::head_decode_result::status::need_more);
        ++want;
        if (!co_await fill(want)) co_return frame{websockets::opcode::close, true, "<eof>"};
      }
    }
  }

  asio::awaitable<bool> read_until_eof() {
    for (;;) {
      std::array<char, 4096> chunk{};
      auto [ec, n] = co_await tcp_.async_read_some(asio::buffer(chunk), nothrow);
      if (ec) co_return true;
      buffer_.append(chunk.data(), n);
    }
  }

  asio::ip::tcp::socket tcp_;
  std::string buffer_;
};

/// The close code in a close frame's payload (1005 when it has none).
inline std::uint16_t close_code_of(const std::string& payload) {
  if (payload.size() < 2) return 1005;
  return static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                    static_cast<unsigned char>(payload[1]));
}

} // namespace loopback
