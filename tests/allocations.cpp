// The echo path in steady state: once a connection has warmed up (its queues, its
// output buffer and Asio's per-thread caches grown), echoing a message allocates
// nothing on the heap, in the server or in our client. Counted at malloc's level (the
// process's own malloc family, which operator new and Asio's frames both use), so no
// allocation hides below operator new. Sanitizer builds bring their own malloc: there
// the test only checks that the echo works.
#include "loopback.hpp"

#include <websockets/socket.hpp>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string>

#if defined(__SANITIZE_ADDRESS__)
#define WEBSOCKETS_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer) || __has_feature(thread_sanitizer)
#define WEBSOCKETS_TEST_SANITIZED 1
#endif
#endif

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
} // namespace

#ifndef WEBSOCKETS_TEST_SANITIZED
// glibc's own entry points, under the names it exports for interposers like this one.
extern "C" {
void* __libc_malloc(std::size_t size) noexcept;
void* __libc_calloc(std::size_t count, std::size_t size) noexcept;
void* __libc_realloc(void* p, std::size_t size) noexcept;
void* __libc_memalign(std::size_t alignment, std::size_t size) noexcept;
void __libc_free(void* p) noexcept;

void* malloc(std::size_t size) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(size);
}
void* calloc(std::size_t count, std::size_t size) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(count, size);
}
void* realloc(void* p, std::size_t size) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, size);
}
void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, size);
}
void* memalign(std::size_t alignment, std::size_t size) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) noexcept { __libc_free(p); }
}
#endif

using namespace loopback;

namespace {

// The server's side, as bench/ours_echo and samples/echo do it.
asio::awaitable<void> echo(std::shared_ptr<websockets::socket> peer,
                           websockets::generator<websockets::message> messages) {
  while (auto m = co_await messages.next())
    if (co_await peer->send(m->opcode, m->bytes())) break;
}

// `rounds` times: `in_flight` messages out, then their echoes back, checked.
// 15 bytes by default: the payload fits in std::string's own storage, so the message
// itself needs no allocation (a longer payload costs one, its std::string's).
asio::awaitable<bool> exchange(websockets::socket& client, websockets::generator<websockets::message>& replies,
                               int rounds, int in_flight, std::string payload = "0123456789abcde") {
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < in_flight; ++i)
      if (co_await client.send(payload)) co_return false;
    for (int i = 0; i < in_flight; ++i) {
      auto reply = co_await replies.next();
      if (!reply || reply->text() != payload) co_return false;
    }
  }
  co_return true;
}

// Allocations during 5,000 echoes of `payload`, then during 20,000, after a warm-up.
std::pair<long, long> count_echo_allocations(const std::string& payload) {
  long shorter = -1;
  long longer = -1;
  run([&](executor ex) -> asio::awaitable<void> {
    fixture f{ex};
    auto conns = f.srv.connections();
    auto client = co_await websockets::connect(ex, url_of(f.srv));
    auto replies = client->messages();
    auto peer = co_await next(conns);
    auto peer_messages = peer->messages();
    asio::co_spawn(ex, echo(peer, std::move(peer_messages)), asio::detached);

    // Warm-up: queues, output buffers and the handler caches grow to their working size.
    REQUIRE(co_await exchange(*client, replies, 1200, 10, payload));
    // Counted from inside the exchange (its frame is made before), 10 in flight at a time.
    for (auto [rounds, count] : {std::pair{500, &shorter}, std::pair{2000, &longer}}) {
      auto measured = exchange(*client, replies, rounds, 10, payload);
      allocations = 0;
      counting = true;
      const bool ok = co_await std::move(measured);
      counting = false;
      *count = allocations;
      CHECK(ok);
    }
    co_await f.srv.stop();
  });
  return {shorter, longer};
}

} // namespace

TEST_CASE("echo allocates nothing per message once warmed up") {
  [[maybe_unused]] const auto [shorter, longer] = count_echo_allocations("0123456789abcde");
#ifndef WEBSOCKETS_TEST_SANITIZED
  // What is left is a constant, the same for 4 times the messages: the measuring itself.
  // The measured coroutine's frame takes a slot of Asio's per-thread frame cache, so the
  // first few frames made inside it miss the cache (2 with g++, 3 with clang++).
  MESSAGE("heap allocations during 5,000 echoes: " << shorter << "; during 20,000: " << longer);
  CHECK(longer == shorter);
  CHECK(longer <= 4);
#endif
}

TEST_CASE("echo of 4 KiB messages allocates only the payloads once warmed up") {
  // Writes of 40 KiB at a time: the storage they are encoded into is reused, not
  // allocated per write, though idle sockets hold none.
  [[maybe_unused]] const auto [shorter, longer] = count_echo_allocations(std::string(4096, 'p'));
#ifndef WEBSOCKETS_TEST_SANITIZED
  MESSAGE("heap allocations during 5,000 echoes of 4 KiB: " << shorter << "; during 20,000: " << longer);
  // Each echo makes two messages: the server's and the client's, each a std::string.
  CHECK(longer - shorter == 2 * (20'000 - 5'000));
#endif
}
