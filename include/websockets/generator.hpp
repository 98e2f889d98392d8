// Async generators: how events reach the application. Each generator is a subscription
// with its own bounded channel; a connection publishes into every subscription of an
// event kind and waits when one is full, so a consumer that stops reading stops the
// connection's reader, and TCP pushes back on the peer. An event kind with no
// subscriber costs nothing: the event is not even built.
//
// Each channel lives on one executor (one thread, or a strand) and is used there without
// locks: `generator::next()` called from another thread (a server with `threads` > 1,
// whose sockets live on other threads) hops to the channel's executor for the call.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <typeinfo>
#include <utility>
#include <vector>

namespace websockets {

template <class T>
class generator;

namespace detail {

/// Completion token that reports errors as values instead of throwing: connection
/// coroutines must never throw out.
inline constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);

/// The completion token of a hop to another thread's executor (`co_await
/// co_spawn(there, ..., hop_token())`): without a cancellation slot, since Asio 1.22's
/// co_spawn would run the caller's cancellation on the caller's thread inside the other
/// thread's coroutine.
inline auto hop_token() { return asio::bind_cancellation_slot(asio::cancellation_slot{}, asio::use_awaitable); }

/// `ex`'s target when it is a `T`, else null. (Asio 1.22's `any_executor::target` does
/// not check the type: asked for an io_context's executor, it hands out a strand's
/// inner executor, and whatever went through it bypassed the strand.)
template <class T>
[[nodiscard]] const T* target_as(const asio::any_io_executor& ex) noexcept {
  return ex.target_type() == typeid(T) ? ex.target<T>() : nullptr;
}

/// True when code running now may use objects of `ex` without a hop: `ex` is an
/// io_context's executor and this thread runs that io_context, or `ex` is of another
/// kind (a strand, ...), which this library takes to be the caller's own.
[[nodiscard]] inline bool running_here(const asio::any_io_executor& ex) noexcept {
  if (const auto* io = target_as<asio::io_context::executor_type>(ex)) return io->running_in_this_thread();
  return true;
}

/// A condition variable for coroutines on one executor: a timer that never expires,
/// cancelled to wake every waiter. Waiters re-check their condition in a loop.
class notifier {
public:
  explicit notifier(const asio::any_io_executor& ex)
      : timer_(ex, asio::steady_timer::time_point::max()) {}
  /// Suspends until the next `notify_all` (or until the wait is cancelled): `co_await
  /// n.wait()`. (The timer's own awaitable, without a coroutine frame around it.)
  auto wait() {
    armed_ = true;
    return timer_.async_wait(nothrow);
  }
  /// Wakes every current waiter. Costs nothing when nobody has waited since the last
  /// call: a channel notifies on every event, and its consumer is usually awake.
  void notify_all() noexcept {
    if (!armed_) return;
    armed_ = false;
    timer_.cancel();
  }

private:
  asio::steady_timer timer_;
  bool armed_ = false; // a wait may be pending (one cancelled on its own leaves it set)
};

/// Where a publisher waits until consumers have taken an event before it goes on:
/// after `open`, so that the application can subscribe to the new socket before its
/// first message is read; after `stream_start`, so that it can attach a `pipe` before
/// the stream's first fragment is read. A consumer's code runs on from `next()` before
/// the publisher resumes (its wake-up is queued behind), so whatever the consumer does
/// before its next `co_await` happens first. Dropping the generator, or using the
/// socket, also lets the publisher go on.
class handoff {
public:
  explicit handoff(const asio::any_io_executor& ex) : wake_(ex) {}
  /// One more consumer to wait for.
  void add() noexcept { ++pending_; }
  /// One consumer has taken the event.
  void done() noexcept {
    if (pending_ != 0 && --pending_ == 0) wake_.notify_all();
  }
  /// Stops waiting for anyone.
  void release() noexcept {
    pending_ = 0;
    wake_.notify_all();
  }
  /// True while consumers are still to take the event.
  [[nodiscard]] bool pending() const noexcept { return pending_ != 0; }
  /// Suspends until every consumer has taken the event (or the wait is cancelled).
  asio::awaitable<void> wait() {
    if (pending_ != 0) co_await wake_.wait();
    // A cancelled wait returns too; the caller decides whether to go on.
  }

private:
  std::size_t pending_ = 0;
  notifier wake_;
};

/// What a publisher sees of a subscription, whatever its event type.
class subscription_base {
public:
  virtual ~subscription_base() = default;
  /// False once the generator is gone or the publisher has ended it.
  [[nodiscard]] bool active() const noexcept { return !dropped_ && !ended_; }

  /// Called when the consumer takes an event: the handoffs of the events it has
  /// taken are done.
  void consumer_took() noexcept {
    ++taken_;
    std::erase_if(handoffs_, [this](const pending_handoff& h) {
      if (h.index > taken_) return false;
      if (auto p = h.point.lock()) p->done();
      return true;
    });
  }

  /// Counted in `counter` (a hub's subscribers, read from other threads) until it ends.
  void count_in(std::shared_ptr<std::atomic<std::size_t>> counter) noexcept {
    counter->fetch_add(1, std::memory_order_release);
    counter_ = std::move(counter);
  }
  /// Keeps `owner` (the event loop its channel's timers belong to) alive as long as it.
  void keep(std::shared_ptr<void> owner) noexcept { keep_ = std::move(owner); }

  /// The event just delivered starts a handoff at `point`.
  void hand_off(const std::shared_ptr<handoff>& point) {
    if (taken_ >= delivered_) return; // the consumer has it already
    point->add();
    handoffs_.push_back({point, delivered_});
  }

protected:
  void uncount() noexcept {
    if (counter_) counter_->fetch_sub(1, std::memory_order_release);
    counter_.reset();
  }
  void release_handoffs() noexcept {
    for (auto& h : handoffs_)
      if (auto p = h.point.lock()) p->done();
    handoffs_.clear();
  }

  struct pending_handoff {
    std::weak_ptr<handoff> point;
    std::uint64_t index; // done once the consumer has taken this many events
  };
  std::vector<pending_handoff> handoffs_;
  std::uint64_t delivered_ = 0; // events put into the channel
  std::uint64_t taken_ = 0;     // events the consumer took out
  bool dropped_ = false;        // the generator is gone
  bool ended_ = false;          // the publisher has ended
  std::shared_ptr<std::atomic<std::size_t>> counter_; // the hub's count of subscribers, if kept
  std::shared_ptr<void> keep_;                        // declared first: destroyed last
};

/// How many publishers a subscription's capacity is for: a hub fed by many sources
/// (the server's, by every open socket) holds `capacity` events for each of them.
using publisher_count = std::shared_ptr<const std::atomic<std::size_t>>;

/// One generator's queue and bookkeeping: a ring of at most `capacity` events (times
/// the publishers, when counted) that grows as it fills (an idle subscription holds
/// little, a busy one allocates nothing per event once grown); waiting happens on
/// notifiers.
template <class T>
class subscription final : public subscription_base {
public:
  subscription(const asio::any_io_executor& ex, std::size_t capacity, publisher_count publishers = nullptr)
      : ex_(ex), capacity_(std::max<std::size_t>(capacity, 1)), publishers_(std::move(publishers)),
        readable_(ex), writable_(ex) {}

  /// The executor the channel lives on.
  [[nodiscard]] const asio::any_io_executor& executor() const noexcept { return ex_; }

  /// Puts `value` in the channel, waiting while it is full. Returns false when the
  /// consumer is gone: the event is dropped for it.
  asio::awaitable<bool> deliver(T value) {
    for (;;) {
      if (!active()) co_return false;
      if (try_push(value)) {
        ++delivered_;
        readable_.notify_all();
        co_return true;
      }
      co_await writable_.wait();
    }
  }

  /// The publisher is done: the consumer gets what is buffered, then the end.
  void end() noexcept {
    if (ended_) return;
    ended_ = true;
    uncount();
    release_handoffs();
    readable_.notify_all();
    writable_.notify_all();
  }

  /// The generator is gone: wake a publisher waiting on the full channel.
  void drop() noexcept {
    dropped_ = true;
    uncount();
    release_handoffs();
    writable_.notify_all();
  }

  /// True when an event would go in now, without waiting (or the consumer is gone).
  [[nodiscard]] bool has_room() const noexcept { return !active() || count_ < capacity(); }

  /// `deliver` for a subscription with room (`has_room`), without suspending.
  void deliver_now(T value) {
    if (!active()) return;
    if (try_push(value)) {
      ++delivered_;
      readable_.notify_all();
    }
  }

  /// The consumer's side of `generator::next`: takes the oldest event into `out`.
  /// Buffered events come first, even after the end, so that nothing published is lost.
  bool try_take(std::optional<T>& out) {
    if (count_ == 0) return false;
    out.emplace(std::move(ring_[head_]));
    ring_[head_] = T{}; // nothing held (a socket, a payload) past its event
    head_ = head_ + 1 == ring_.size() ? 0 : head_ + 1;
    --count_;
    consumer_took();
    writable_.notify_all();
    return true;
  }

  /// Where the consumer waits for an event or the end.
  notifier& readable() noexcept { return readable_; }

private:
  /// Events the queue holds at most now.
  [[nodiscard]] std::size_t capacity() const noexcept {
    if (!publishers_) return capacity_;
    return capacity_ * std::max<std::size_t>(publishers_->load(std::memory_order_relaxed), 1);
  }

  /// Appends `value` (moved from only on success); false when the queue is full.
  bool try_push(T& value) {
    if (count_ >= capacity()) return false;
    if (count_ == ring_.size()) {
      // Grows, keeping the order: the oldest event first.
      std::vector<T> grown(std::min(capacity(), std::max<std::size_t>(ring_.size() * 2, 1)));
      for (std::size_t i = 0; i < count_; ++i)
        grown[i] = std::move(ring_[(head_ + i) % ring_.size()]);
      ring_ = std::move(grown);
      head_ = 0;
    }
    std::size_t tail = head_ + count_;
    if (tail >= ring_.size()) tail -= ring_.size();
    ring_[tail] = std::move(value);
    ++count_;
    return true;
  }

  asio::any_io_executor ex_;
  std::size_t capacity_;
  publisher_count publishers_; // null: one publisher
  std::vector<T> ring_;
  std::size_t head_ = 0;  // the oldest event
  std::size_t count_ = 0; // events queued
  notifier readable_; // an event was put in, or the end came
  notifier writable_; // an event was taken out, or the consumer left
};

/// The publisher's side: every subscription to one event kind of one source.
template <class T>
class hub {
public:
  explicit hub(std::size_t capacity) : capacity_(capacity) {}
  hub(const hub&) = delete;
  hub& operator=(const hub&) = delete;
  ~hub() { end(); }

  /// Makes this hub, on an event loop of its own, the stand-in of `main` (whose
  /// generators live on `main_ex`, another thread): `wanted()` tells whether `main` has
  /// subscribers, and `publish` delivers to them from `main_ex`, returning once they
  /// have it (and, with a handoff point, once they have taken it).
  void forward_to(hub& main, asio::any_io_executor main_ex) {
    if (!main.count_) main.count_ = std::make_shared<std::atomic<std::size_t>>(0);
    main_ = &main;
    main_ex_ = std::move(main_ex);
  }
  /// True for a stand-in (`forward_to`).
  [[nodiscard]] bool forwards() const noexcept { return main_ != nullptr; }
  /// Every subscription keeps `owner` alive (the event loop of its timers).
  void keep(std::shared_ptr<void> owner) noexcept { keep_ = std::move(owner); }
  /// Every subscription made from now on holds `capacity` events for each of
  /// `*publishers` (at least one), so that many sources do not share one small queue.
  void scale_with(publisher_count publishers) noexcept { publishers_ = std::move(publishers); }

  /// A new generator of this kind, whose waits run on `ex`. After `end()`, one that
  /// ends at once.
  generator<T> subscribe(const asio::any_io_executor& ex) {
    auto sub = prepare(ex);
    attach(sub);
    return generator<T>{std::move(sub)};
  }

  /// A subscription of this hub, not attached yet: `attach` it on the hub's executor
  /// (`subscribe` from another thread).
  std::shared_ptr<subscription<T>> prepare(const asio::any_io_executor& ex) {
    auto sub = std::make_shared<subscription<T>>(ex, capacity_, publishers_);
    if (keep_) sub->keep(keep_);
    return sub;
  }
  /// The generator of a prepared subscription.
  static generator<T> generator_of(std::shared_ptr<subscription<T>> sub) { return generator<T>{std::move(sub)}; }

  /// Starts delivering to `sub` (from `prepare`), or ends it after `end()`.
  void attach(const std::shared_ptr<subscription<T>>& sub) {
    if (!sub->active()) return;
    if (ended_) {
      sub->end();
    } else {
      // Copy on write: publishers iterate the old list undisturbed.
      auto next = std::make_shared<list>();
      if (subs_)
        for (auto& s : *subs_)
          if (s->active()) next->push_back(s);
      next->push_back(sub);
      subs_ = std::move(next);
      if (count_) sub->count_in(count_);
    }
  }

  /// True when some generator would receive an event: when false, do not build it.
  [[nodiscard]] bool wanted() const noexcept {
    if (main_) return main_->count_->load(std::memory_order_acquire) != 0;
    if (!subs_) return false;
    return std::any_of(subs_->begin(), subs_->end(), [](auto& s) { return s->active(); });
  }

  /// Delivers `value` to every subscriber, in turn, waiting on full channels. With
  /// `point`, every subscriber that got it must act before `point` is passed.
  asio::awaitable<void> publish(T value, const std::shared_ptr<handoff>& point = nullptr) {
    if (main_) {
      // A stand-in: delivered by `main` on its own executor.
      co_await asio::co_spawn(main_ex_, main_->publish_held(std::move(value), point != nullptr), hop_token());
      co_return;
    }
    auto subs = subs_; // a snapshot: subscriptions may come and go while we wait
    if (!subs) co_return;
    std::size_t last = subs->size();
    for (std::size_t i = subs->size(); i-- > 0;)
      if ((*subs)[i]->active()) {
        last = i;
        break;
      }
    bool stale = false;
    for (std::size_t i = 0; i < subs->size(); ++i) {
      auto& sub = (*subs)[i];
      if (!sub->active()) {
        stale = true;
        continue;
      }
      // A named copy: g++ 12 miscompiles class temporaries inside a co_await expression.
      T copy = i == last ? std::move(value) : value;
      const bool ok = co_await sub->deliver(std::move(copy));
      if (ok && point) sub->hand_off(point);
      if (i == last) break;
    }
    if (stale && subs == subs_) prune();
  }

  /// `publish`, then (with `hold`) waiting until every subscriber has taken the event:
  /// what a stand-in's publish runs on this hub's executor.
  asio::awaitable<void> publish_held(T value, bool hold) {
    if (!hold) {
      co_await publish(std::move(value));
      co_return;
    }
    auto point = std::make_shared<handoff>(co_await asio::this_coro::executor);
    point->add(); // while publishing
    co_await publish(std::move(value), point);
    point->done();
    while (point->pending()) co_await point->wait();
  }

  /// True when `publish_now` may be used: every subscriber has room. Never for a
  /// stand-in, which must hop.
  [[nodiscard]] bool ready() const noexcept {
    if (main_) return false;
    if (!subs_) return true;
    return std::all_of(subs_->begin(), subs_->end(), [](auto& s) { return s->has_room(); });
  }

  /// `publish` without suspending, when `ready()`: no coroutine, no waiting.
  void publish_now(T value) {
    if (!subs_) return;
    const list& subs = *subs_;
    std::size_t last = subs.size();
    for (std::size_t i = subs.size(); i-- > 0;)
      if (subs[i]->active()) {
        last = i;
        break;
      }
    bool stale = false;
    for (std::size_t i = 0; i < subs.size(); ++i) {
      if (!subs[i]->active()) {
        stale = true;
        continue;
      }
      if (i == last) {
        subs[i]->deliver_now(std::move(value));
        break;
      }
      subs[i]->deliver_now(T{value});
    }
    if (stale) prune();
  }

  /// Makes `point` wait until every generator has taken what was delivered to it so far.
  void hand_off_all(const std::shared_ptr<handoff>& point) {
    if (!subs_) return;
    for (auto& s : *subs_)
      if (s->active()) s->hand_off(point);
  }

  /// Ends every generator of this kind; later subscribers end at once.
  void end() noexcept {
    ended_ = true;
    if (subs_)
      for (auto& s : *subs_) s->end();
    subs_.reset();
  }

private:
  using list = std::vector<std::shared_ptr<subscription<T>>>;

  void prune() {
    auto next = std::make_shared<list>();
    for (auto& s : *subs_)
      if (s->active()) next->push_back(s);
    subs_ = std::move(next);
  }

  std::size_t capacity_;
  std::shared_ptr<const list> subs_;
  bool ended_ = false;
  std::shared_ptr<std::atomic<std::size_t>> count_; // subscribers, for stand-ins on other threads
  hub* main_ = nullptr;                              // a stand-in's hub
  asio::any_io_executor main_ex_;
  std::shared_ptr<void> keep_;
  publisher_count publishers_;
};

} // namespace detail

/// A stream of events of one kind, read with `co_await gen.next()`. Each generator
/// has its own bounded queue (`server_options::event_queue` events); when it is full,
/// the connection that produces the events waits. Move-only; dropping it unsubscribes.
template <class T>
class generator {
public:
  /// A generator that yields nothing.
  generator() = default;
  generator(generator&&) noexcept = default;
  generator& operator=(generator&& other) noexcept {
    if (this != &other) {
      reset();
      sub_ = std::move(other.sub_);
    }
    return *this;
  }
  generator(const generator&) = delete;
  generator& operator=(const generator&) = delete;
  /// Unsubscribes, waking a publisher that waits for room in this generator's queue.
  ~generator() { reset(); }

  /// The next event; an empty optional once the source (server or socket) has ended
  /// and every event before the end has been read. A cancelled call also returns an
  /// empty optional, and the generator stays usable. Do not destroy the generator
  /// while a call is pending.
  asio::awaitable<std::optional<T>> next() {
    auto sub = sub_; // the subscription outlives this call even if the generator moves
    std::optional<T> out;
    if (!sub) co_return std::move(out);
    if (!detail::running_here(sub->executor())) {
      // The channel lives on another thread (a socket of another event loop): the call
      // runs there.
      out = co_await next_from_afar(std::move(sub));
      co_return std::move(out);
    }
    for (;;) {
      if (sub->try_take(out) || !sub->active()) co_return std::move(out);
      co_await sub->readable().wait();
      // Cancelled by the caller (a timeout, say): an empty optional, and the
      // generator stays usable.
      auto state = co_await asio::this_coro::cancellation_state;
      if (state.cancelled() != asio::cancellation_type::none) co_return std::move(out);
    }
  }

private:
  template <class>
  friend class detail::hub;
  explicit generator(std::shared_ptr<detail::subscription<T>> sub) : sub_(std::move(sub)) {}

  /// `next()` from another thread than the channel's: the call runs there, and the
  /// caller's cancellation (a deadline) is posted there, not run here. (A coroutine of
  /// its own: `next()`'s frame stays as small as without threads.)
  static asio::awaitable<std::optional<T>> next_from_afar(std::shared_ptr<detail::subscription<T>> sub) {
    std::optional<T> out;
    const auto there = sub->executor();
    auto hop = std::make_shared<hop_state>();
    asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    asio::cancellation_slot mine = state.slot();
    if (mine.is_connected())
      mine.assign([hop, there](asio::cancellation_type type) {
        asio::post(there, [hop, type] {
          if (!hop->finished) hop->signal.emit(type);
        });
      });
    out = co_await asio::co_spawn(there, next_there(std::move(sub), hop),
                                  asio::bind_cancellation_slot(hop->signal.slot(), asio::use_awaitable));
    if (mine.is_connected()) mine.clear();
    co_return out;
  }

  /// A hop's cancellation, used on the channel's executor.
  struct hop_state {
    asio::cancellation_signal signal;
    bool finished = false; // a cancellation posted after the call is over does nothing
  };

  /// `next()` on the channel's own executor, for a caller on another thread.
  static asio::awaitable<std::optional<T>> next_there(std::shared_ptr<detail::subscription<T>> sub,
                                                      std::shared_ptr<hop_state> hop) {
    generator borrowed{std::move(sub)};
    borrowed.borrowed_ = true;
    auto out = co_await borrowed.next();
    hop->finished = true;
    co_return out;
  }

  void reset() noexcept {
    if (sub_ && !borrowed_) {
      if (detail::running_here(sub_->executor())) {
        sub_->drop();
      } else {
        try {
          asio::post(sub_->executor(), [sub = sub_] { sub->drop(); });
        } catch (...) { // out of memory: the publisher finds out when the channel fills
        }
      }
    }
    sub_.reset();
  }

  std::shared_ptr<detail::subscription<T>> sub_;
  bool borrowed_ = false; // next_there's: the caller's generator owns the subscription
};

} // namespace websockets
