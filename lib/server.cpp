// The server: listening, the opening handshake, the registry, sending to many, stop.
#include "server_core.hpp"

#include <websockets/upgrade.hpp>

#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/write.hpp>

#include <boost/url/parse.hpp>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>

namespace websockets {
namespace detail {
namespace {

using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;

asio::awaitable<void> sleep_for(asio::any_io_executor ex, std::chrono::milliseconds duration) {
  asio::steady_timer timer{ex, duration};
  (void)co_await timer.async_wait(nothrow);
}

asio::awaitable<void> drain(transport& io) {
  std::array<char, 1024> sink{};
  for (;;) {
    auto [ec, size] = co_await io.read_some(asio::buffer(sink));
    (void)size;
    if (ec) co_return;
  }
}

// Reads the request head; the bytes after it (frames sent right behind the request)
// go to `rest`.
asio::awaitable<std::error_code> read_head(transport& io, http_parser& parser, std::string& rest) {
  std::array<char, 4096> buffer{};
  for (;;) {
    auto [ec, size] = co_await io.read_some(asio::buffer(buffer));
    if (ec) co_return ec;
    const auto result = parser.feed(std::string_view{buffer.data(), size});
    if (result.state == http_parser::status::complete)
      rest.assign(buffer.data() + result.consumed, size - result.consumed);
    if (result.state != http_parser::status::need_more) co_return std::error_code{};
  }
}

struct parsed_url {
  std::string host;
  std::string port;
  std::string path;
  bool secure = false;
};

parsed_url parse_url(std::string_view url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) throw std::invalid_argument("server url is not a URI: " + std::string(url));
  const auto& u = *parsed;
  const bool secure = iequals(u.scheme(), "wss");
  if (!secure && !iequals(u.scheme(), "ws"))
    throw std::invalid_argument("server url must start with ws:// or wss://: " + std::string(url));
  if (!u.has_authority() || u.host_address().empty())
    throw std::invalid_argument("server url has no host: " + std::string(url));
  parsed_url out;
  out.host = u.host_address();
  out.port = u.has_port() ? std::string(u.port()) : secure ? "443" : "80";
  out.secure = secure;
  out.path = u.path();
  if (out.path.empty()) out.path = "/";
  return out;
}

} // namespace

bool server_core::origin_allowed(const upgrade_request& request) const {
  const auto& origin = request.origin();
  if (!origin || options_.allowed_origins.empty()) return true;
  return std::ranges::any_of(options_.allowed_origins, [&](const std::string& allowed) { return iequals(allowed, *origin); });
}

namespace {

std::vector<http_header> header_views(const accept_decision& decision) {
  std::vector<http_header> out;
  for (const auto& [name, value] : decision.headers) out.push_back({name, value});
  return out;
}

} // namespace

std::string server_core::acceptance(const upgrade_request& request, accept_decision& decision,
                                    const std::optional<deflate_params>& compression) const {
  const auto offered = request.subprotocols();
  if (decision.subprotocol.empty()) {
    // Ours, in our order of preference, the first the client offers.
    for (const auto& ours : options_.subprotocols)
      if (std::ranges::find(offered, ours) != offered.end()) {
        decision.subprotocol = ours;
        break;
      }
  } else if (std::ranges::find(offered, decision.subprotocol) == offered.end()) {
    throw std::invalid_argument("accept hook chose a subprotocol the client did not offer");
  }
  const auto extra = header_views(decision);
  return accept_response(request.key(),
                         {.subprotocol = decision.subprotocol,
                          .extensions = compression ? compression->response : std::string_view{},
                          .extra_headers = extra});
}

std::string server_core::refusal(const accept_decision& decision) {
  const auto extra = header_views(decision);
  return rejection_response(decision.status, decision.body, extra);
}

std::optional<deflate_params> server_core::agree_compression(const upgrade_request& request) const {
  if (!options_.deflate.enabled) return std::nullopt;
  const auto offers = parse_extensions(request.extensions());
  if (!offers) return std::nullopt; // a malformed offer: go on without extensions
  // The server compresses every message alone with a shared compressor (see
  // compressor()): it says so, which also lets the client drop its window between
  // messages.
  deflate_options ours = options_.deflate;
  ours.no_context_takeover = true;
  return negotiate_deflate(*offers, ours);
}

server_core::server_core(asio::any_io_executor ex, server_options options)
    : server_hubs(options.event_queue),
      ex_(std::move(ex)),
      options_(std::move(options)),
      config_(std::make_shared<const connection_config>(config_from(role::server, options_))),
      changed_(ex_),
      stream_free_(ex_),
      stream_turn_(ex_) {
  scale_with(open_sockets_);
  (void)io_context_of(ex_); // refuses, now rather than at the first connection, executors of no io_context
  auto url = parse_url(options_.url);
  host_ = std::move(url.host);
  port_ = std::move(url.port);
  path_ = std::move(url.path);
  if (url.secure) tls_ = make_server_tls(options_.tls);
  check_redis_option(options_.redis);
  if (options_.threads == 0) throw std::invalid_argument("server threads must be at least 1");
  if (options_.threads > 1 && !target_as<asio::io_context::executor_type>(ex_))
    throw std::invalid_argument("a server with threads > 1 runs on an io_context's executor");
  const std::size_t read_buffer = std::max<std::size_t>(config_->read_buffer, 512);
  for (std::size_t i = 0; i < options_.threads; ++i) {
    auto loop = std::make_unique<server_loop>();
    loop->index = i;
    loop->buffers = std::make_shared<buffer_pool>(read_buffer);
    if (i == 0) {
      loop->ex = ex_;
      loop->hubs = this;
    } else {
      loop->context = std::make_shared<asio::io_context>(1);
      loop->ex = loop->context->get_executor();
      loop->work.emplace(loop->context->get_executor());
      loop->room = std::make_unique<notifier>(ex_);
      loop->stand_ins = std::make_unique<server_hubs>(options_.event_queue);
      auto& in = *loop->stand_ins;
      in.connections_.forward_to(connections_, ex_);
      in.messages_.forward_to(messages_, ex_);
      in.pongs_.forward_to(pongs_, ex_);
      in.closes_.forward_to(closes_, ex_);
      in.errors_.forward_to(errors_, ex_);
      in.streams_.forward_to(streams_, ex_);
      in.events_.forward_to(events_, ex_);
      loop->hubs = &in;
      std::promise<void> finished;
      loop->finished = finished.get_future();
      loop->thread = std::thread([context = loop->context, finished = std::move(finished)]() mutable {
        for (;;) {
          try {
            context->run();
            break;
          } catch (...) { // a handler of the application's threw: the loop goes on
          }
        }
        finished.set_value();
      });
    }
    if (config_->timeout.count() > 0) loop->idle = std::make_unique<idle_watch>(loop->ex, config_->timeout);
    loops_.push_back(std::move(loop));
  }
}

server_core::~server_core() { join_loops(); }

void server_core::join_loops() noexcept {
  for (auto& loop : loops_) loop->work.reset();
  // Once every socket is gone a loop runs out of work; one held up past the bound (an
  // application's coroutine waiting on something else) is stopped.
  const auto deadline = std::chrono::steady_clock::now() + std::min<std::chrono::milliseconds>(options_.close_timeout, 2s);
  for (auto& loop : loops_) {
    if (!loop->thread.joinable()) continue;
    if (loop->finished.wait_until(deadline) != std::future_status::ready) loop->context->stop();
    loop->thread.join();
  }
}

message_compressor& server_loop::compressor(int window_bits, const deflate_options& options) {
  auto& slot = compressors.at(static_cast<std::size_t>(window_bits));
  // Every message compresses alone (no context takeover), so one compressor serves
  // every socket of the loop with this window, and its output can be shared by all of them.
  if (!slot) slot = std::make_unique<message_compressor>(window_bits, options, true);
  return *slot;
}

void server_loop::run_here(std::function<void()> f) {
  if (index == 0 || running_here(ex)) {
    f();
  } else {
    asio::post(ex, std::move(f));
  }
}

server_loop& server_core::loop_of(const asio::any_io_executor& ex) {
  if (const auto* io = target_as<asio::io_context::executor_type>(ex))
    for (auto& loop : loops_)
      if (loop->context && &io->context() == loop->context.get()) return *loop;
  return *loops_.front();
}

bool server_core::reserve() {
  const std::lock_guard lock{registry_mutex_};
  if (stopping_ || registry_.size() + reserved_ >= options_.max_connections) return false;
  ++reserved_;
  return true;
}

void server_core::unreserve() {
  const std::lock_guard lock{registry_mutex_};
  --reserved_;
}

void server_core::notify_changed() {
  if (running_here(ex_)) {
    changed_.notify_all();
  } else {
    asio::post(ex_, [self = shared_from_this()] { self->changed_.notify_all(); });
  }
}

// ---- Listening ----

void server_core::bind() {
  if (!acceptors_.empty()) return;
  if (stopping_) throw std::logic_error("server stopped");
  start_redis();
  std::vector<asio::ip::address> addresses;
  const bool localhost = iequals(host_, "localhost");
  if (localhost) {
    addresses = {asio::ip::make_address("127.0.0.1"), asio::ip::make_address("::1")};
  } else if (std::error_code ec; (void)asio::ip::make_address(host_, ec), !ec) {
    addresses.push_back(asio::ip::make_address(host_));
  } else {
    asio::ip::tcp::resolver resolver{ex_};
    for (const auto& entry : resolver.resolve(host_, port_)) {
      const auto address = entry.endpoint().address();
      if (std::find(addresses.begin(), addresses.end(), address) == addresses.end())
        addresses.push_back(address);
    }
  }
  unsigned long port_number = std::stoul(port_);
  if (port_number > 65535) throw std::invalid_argument("server url port out of range: " + port_);
  auto port = static_cast<std::uint16_t>(port_number);
  std::error_code first_error;
  for (const auto& address : addresses) {
    asio::ip::tcp::acceptor acceptor{ex_};
    const asio::ip::tcp::endpoint endpoint{address, port};
    std::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) {
      acceptor.set_option(asio::socket_base::reuse_address(true), ec);
      if (address.is_v6()) acceptor.set_option(asio::ip::v6_only(true), ec);
      ec.clear();
      acceptor.bind(endpoint, ec);
      if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      // The other addresses of a name are a bonus (a machine without IPv6 still
      // serves localhost on 127.0.0.1); the first one must work.
      if (acceptors_.empty() && !first_error) first_error = ec;
      if (acceptors_.empty() && !localhost) break;
      continue;
    }
    // With port 0 the first bind picks the port; the other addresses use the same.
    if (port == 0) port = acceptor.local_endpoint().port();
    if (acceptors_.empty()) local_endpoint_ = acceptor.local_endpoint();
    acceptors_.push_back(std::move(acceptor));
  }
  if (acceptors_.empty())
    throw std::system_error(first_error ? first_error : std::make_error_code(std::errc::address_not_available),
                            "cannot listen on " + options_.url);
}

asio::awaitable<void> server_core::accept_all() {
  auto self = shared_from_this();
  struct joined {
    explicit joined(const asio::any_io_executor& ex) : done(ex) {}
    std::size_t running = 0;
    notifier done;
  };
  auto state = std::make_shared<joined>(ex_);
  for (auto& acceptor : acceptors_) {
    ++state->running;
    asio::co_spawn(ex_, accept_loop(acceptor), [state](const std::exception_ptr&) {
      if (--state->running == 0) state->done.notify_all();
    });
  }
  while (state->running != 0) co_await state->done.wait();
}

asio::awaitable<void> server_core::accept_loop(asio::ip::tcp::acceptor& acceptor) {
  auto self = shared_from_this();
  while (!stopping_ && acceptor.is_open()) {
    // Sockets go to the loops in turn, each accepted straight onto its loop's io_context.
    server_loop& loop = *loops_[next_loop_ % loops_.size()];
    std::error_code ec;
    asio::io_context& context = io_context_of(loop.ex);
    tcp_socket tcp{context};
    std::tie(ec, tcp) = co_await acceptor.async_accept(context, nothrow);
    if (stopping_) break;
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) break;
      co_await report_error(ec);
      // Out of descriptors and the like: back off instead of spinning.
      co_await sleep_for(ex_, 100ms);
      continue;
    }
    ++next_loop_;
    asio::co_spawn(loop.ex, handle(std::move(tcp), {}, loop, loop.ex), asio::detached);
  }
}

asio::awaitable<void> server_core::report_error(std::error_code ec, server_hubs* hubs) {
  if (!hubs) hubs = this;
  // Named values: g++ 12 miscompiles aggregate temporaries inside a co_await expression.
  if (hubs->errors_.wanted()) {
    error_event failed{nullptr, ec};
    co_await hubs->errors_.publish(std::move(failed));
  }
  if (hubs->events_.wanted()) {
    event failed{error_event{nullptr, ec}};
    co_await hubs->events_.publish(std::move(failed));
  }
}

asio::awaitable<void> server_core::answer(transport& io, std::string response) {
  const auto ex = io.tcp().get_executor();
  (void)co_await (io.write(response) || sleep_for(ex, options_.handshake_timeout));
  std::error_code ignored;
  io.tcp().shutdown(asio::socket_base::shutdown_send, ignored);
  // Closing with unread request bytes would reset the connection and could destroy
  // the answer before the client reads it: wait (briefly) for the client to close.
  (void)co_await (drain(io) || sleep_for(ex, std::min<std::chrono::milliseconds>(options_.handshake_timeout, 2s)));
  io.close();
}

asio::awaitable<void> server_core::handle(tcp_socket tcp, std::string already_read, server_loop& loop,
                                         asio::any_io_executor ex) {
  auto self = shared_from_this();
  const bool home = loop.index == 0; // on the server's executor: no hop for its hooks
  server_hubs* hubs = loop.hubs;
  std::error_code ignored;
  tcp.set_option(asio::ip::tcp::no_delay(true), ignored);
  transport io = tls_ ? transport{std::move(tcp), tls_} : transport{std::move(tcp)};

  // Known to stop() while the handshake runs, so that it can be cut short.
  struct tracked {
    server_loop& loop;
    tcp_socket* tcp;
    void forget() {
      if (tcp) loop.handshaking.erase(tcp);
      tcp = nullptr;
    }
    ~tracked() { forget(); }
  } tracking{loop, &io.tcp()};
  loop.handshaking.insert(&io.tcp());

  http_parser parser{http_kind::request, options_.max_head_size};
  std::string rest;
  // The TLS handshake counts against the handshake timeout, as the request head does.
  const auto deadline = std::chrono::steady_clock::now() + options_.handshake_timeout;
  const auto time_left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  };
  if (io.secure()) {
    auto shaken = co_await (io.accept_tls() || sleep_for(ex, time_left()));
    if (shaken.index() == 1 || std::get<0>(shaken)) {
      io.close();
      if (shaken.index() == 1) {
        co_await report_error(make_error_code(error::handshake_timeout), hubs);
      } else if (std::get<0>(shaken).category() == asio::error::get_ssl_category()) {
        // Not a TLS client, or one that trusts nothing we present.
        co_await report_error(make_error_code(error::tls_handshake_failed), hubs);
      }
      co_return;
    }
  }
  const auto fed = parser.feed(std::string_view{already_read});
  if (fed.state == http_parser::status::complete) {
    rest = already_read.substr(fed.consumed);
  } else if (fed.state == http_parser::status::need_more) {
    auto read = co_await (read_head(io, parser, rest) || sleep_for(ex, time_left()));
    if (read.index() == 1) {
      io.close();
      co_await report_error(make_error_code(error::handshake_timeout), hubs);
      co_return;
    }
    if (std::get<0>(read)) {
      io.close(); // the client went away
      co_return;
    }
  }
  if (parser.state() == http_parser::status::failed) {
    co_await answer(io, rejection_response(parser.failure()));
    co_await report_error(make_error_code(parser.failure()), hubs);
    co_return;
  }

  auto check = check_upgrade(parser.take_head());
  if (check.failure == error::not_upgrade) {
    // A plain HTTP request: the application's, or 426.
    std::string response;
    if (http_) {
      try {
        // The application's handler runs on the server's executor.
        if (home) {
          response = co_await http_(check.request.head());
        } else {
          response = co_await asio::co_spawn(ex_, http_(check.request.head()), hop_token());
        }
      } catch (const std::exception&) {
        response = rejection_response(500);
      }
    } else {
      response = rejection_response(error::not_upgrade);
    }
    co_await answer(io, std::move(response));
    co_return;
  }
  std::string path = check.request.head().target_url().path();
  if (path.empty()) path = "/";
  error failure = path != path_ ? error::not_found : check.failure;
  if (failure == error{} && !origin_allowed(check.request)) failure = error::forbidden;
  if (failure != error{}) {
    co_await answer(io, rejection_response(failure));
    co_await report_error(make_error_code(failure), hubs);
    co_return;
  }
  if (!reserve()) {
    // Refused quietly: being full is not the client's error.
    co_await answer(io, rejection_response(error::too_many_connections));
    co_return;
  }
  struct reservation {
    server_core& core;
    ~reservation() { core.unreserve(); }
  } held{*this};
  accept_decision decision;
  if (accept_) {
    try {
      // The application's hook runs on the server's executor.
      if (home) {
        auto decided = co_await accept_(check.request);
        decision = std::move(decided);
      } else {
        auto decided = co_await asio::co_spawn(ex_, accept_(check.request), hop_token());
        decision = std::move(decided);
      }
    } catch (const std::exception&) {
      decision = {.status = 500};
    }
    if (stopping_ || !io.tcp().is_open()) co_return;
  }
  auto compression = agree_compression(check.request);
  std::string response;
  try {
    response = decision.status != 0 ? refusal(decision) : acceptance(check.request, decision, compression);
  } catch (const std::invalid_argument&) {
    decision = {.status = 500}; // a hook's subprotocol not offered, or a header that is not HTTP
    response = rejection_response(500);
  }
  if (decision.status != 0) {
    co_await answer(io, std::move(response));
    co_await report_error(make_error_code(error::forbidden), hubs);
    co_return;
  }
  auto written = co_await (io.write(response) || sleep_for(ex, options_.handshake_timeout));
  if (written.index() == 1 || std::get<0>(written) || stopping_) {
    io.close();
    co_return;
  }
  tracking.forget();
  auto sock =
      socket_access::create(std::move(io), ex, config_, compression, check.request.head().raw(), self, &loop);
  socket_access::get(*sock).set_accepted(std::move(decision.subprotocol), std::move(decision.user_data));
  add(sock);
  // The reader waits until the consumers of `open` have had their chance to subscribe
  // to the socket: its first messages are not lost to a race.
  auto point = std::make_shared<handoff>(ex);
  point->add(); // while publishing
  auto& conn = socket_access::get(*sock);
  conn.start(std::as_bytes(std::span{rest.data(), rest.size()}), point);
  if (hubs->connections_.wanted()) co_await hubs->connections_.publish(sock, point);
  if (hubs->events_.wanted()) {
    event opened{open_event{sock}};
    co_await hubs->events_.publish(std::move(opened), point);
  }
  point->done();
}

// ---- The registry ----

void server_core::add(const std::shared_ptr<socket>& s) {
  {
    const std::lock_guard lock{registry_mutex_};
    registry_.emplace(s->id(), s);
    open_sockets_->store(registry_.size(), std::memory_order_relaxed);
  }
  notify_changed();
}

void server_core::remove(std::uint64_t id) {
  {
    const std::lock_guard lock{registry_mutex_};
    if (registry_.erase(id) != 0) ++pending_reports_;
    open_sockets_->store(registry_.size(), std::memory_order_relaxed);
  }
  notify_changed();
}

void server_core::closed_reported() noexcept {
  {
    const std::lock_guard lock{registry_mutex_};
    if (pending_reports_ != 0) --pending_reports_;
  }
  try {
    notify_changed();
  } catch (...) { // out of memory for the post: stop() finds out at its deadline
  }
}

// ---- Sending to many ----

message_compressor& server_core::compressor(int window_bits) {
  return loops_.front()->compressor(window_bits, options_.deflate);
}

const shared_bytes& server_core::message_frames::for_peer(connection& peer) {
  const int bits = peer.compression_bits(payload.size());
  shared_bytes& frame = bits == 0 ? plain : compressed.at(static_cast<std::size_t>(bits));
  if (!frame.data) {
    frame = bits == 0 ? encode_frame(role::server, op, true, payload)
                      : encode_frame(role::server, op, true, core.compressor(bits).compress(payload), true);
  }
  return frame;
}

namespace {

/// The peers of one loop past the first and the frames for them.
using loop_batch = std::vector<std::pair<std::shared_ptr<socket>, shared_bytes>>;

/// `deliver`'s part on another loop: the same, on the peers' own thread.
asio::awaitable<void> deliver_on_loop(loop_batch batch, const void* stream) {
  std::vector<std::size_t> waiting;
  for (std::size_t i = 0; i < batch.size(); ++i)
    if (!socket_access::get(*batch[i].first).try_enqueue(batch[i].second, stream)) waiting.push_back(i);
  for (const std::size_t i : waiting)
    (void)co_await socket_access::get(*batch[i].first).enqueue(std::move(batch[i].second), stream);
}

} // namespace

template <class FrameFor>
asio::awaitable<void> server_core::deliver(FrameFor frame_for, std::vector<std::shared_ptr<socket>>* targets,
                                           const void* stream, const socket* except) {
  // Every peer with room gets the frame now; then the others, one by one. A slow or
  // busy peer delays only its own copy. The peers of other loops get the same bytes
  // (encoded here, once) from a coroutine on their loop, one per loop, posted in order:
  // deliveries to one loop start in the order of their calls, and keep it (a peer's
  // waiting line). They are not waited for, up to `max_in_flight` per loop and an
  // eighth of a socket's queue limit in bytes: a sender pipelines its small messages to
  // other threads instead of a round trip each, and still paces big ones to the peers'
  // queues (which a flood of posted deliveries would overflow at once).
  std::vector<std::shared_ptr<socket>> waiting;
  std::vector<loop_batch> batches;
  auto offer = [&](const std::shared_ptr<socket>& s) {
    auto& conn = socket_access::get(*s);
    if (const std::size_t index = conn.loop_index(); index != 0) {
      if (batches.empty()) batches.resize(loops_.size());
      batches[index].emplace_back(s, frame_for(conn));
    } else if (!conn.try_enqueue(frame_for(conn), stream)) {
      waiting.push_back(s);
    }
  };
  if (targets) {
    for (const auto& s : *targets) offer(s);
  } else {
    const std::lock_guard lock{registry_mutex_};
    for (const auto& entry : registry_)
      if (entry.second.get() != except) offer(entry.second);
  }
  for (std::size_t index = 1; index < batches.size(); ++index) {
    if (batches[index].empty()) continue;
    server_loop* loop = loops_[index].get();
    std::size_t bytes = 0;
    for (const auto& target : batches[index]) bytes = std::max(bytes, target.second.size);
    ++loop->in_flight;
    loop->in_flight_bytes += bytes;
    asio::co_spawn(loop->ex, deliver_on_loop(std::move(batches[index]), stream),
                   asio::bind_executor(ex_, [self = shared_from_this(), loop, bytes](const std::exception_ptr&) {
                     --loop->in_flight;
                     loop->in_flight_bytes -= bytes;
                     loop->room->notify_all();
                   }));
  }
  for (const auto& s : waiting) {
    auto& conn = socket_access::get(*s);
    (void)co_await conn.enqueue(frame_for(conn), stream);
  }
  for (std::size_t index = 1; index < batches.size(); ++index) {
    server_loop& loop = *loops_[index];
    while (loop.in_flight > server_loop::max_in_flight ||
           (loop.in_flight != 0 && loop.in_flight_bytes > options_.max_queued_bytes / 8))
      co_await loop.room->wait();
  }
}

asio::awaitable<void> server_core::broadcast(frame_head head, std::span<const std::byte> payload,
                                             const socket* except) {
  auto self = shared_from_this();
  if (head.opcode == opcode::ping) {
    if (payload.size() > max_control_payload)
      throw std::invalid_argument("broadcast: a ping carries at most 125 bytes");
    const control_frame frame{opcode::ping, payload};
    for (const auto& s : sockets_now())
      if (s.get() != except) on_loop_of(s, [frame](connection& conn) { conn.enqueue_control(frame); });
    co_return;
  }
  if ((head.opcode != opcode::text && head.opcode != opcode::binary) || !head.fin || head.rsv1 ||
      head.rsv2 || head.rsv3)
    throw std::invalid_argument(
        "broadcast: a whole text or binary message (fin set, no RSV bits); streams go through co_write");
  publish_message(head.opcode, payload);
  co_await deliver_message(head.opcode, payload, except);
}

asio::awaitable<void> server_core::deliver_message(opcode op, std::span<const std::byte> payload,
                                                   const socket* except) {
  auto self = shared_from_this();
  // Encoded once per form some peer needs: plain, and compressed for each window size.
  message_frames frames{*this, op, payload};
  const auto frame_for = [&frames](connection& peer) -> const shared_bytes& { return frames.for_peer(peer); };
  co_await deliver(frame_for, nullptr, nullptr, except);
}

asio::awaitable<void> server_core::open_shared_stream(outgoing_stream& st, opcode op, const socket* exclude) {
  st.shared_as = publish_stream_start(op);
  co_await open_stream(st, op, exclude);
}

asio::awaitable<void> server_core::open_stream(outgoing_stream& st, opcode op, const socket* exclude) {
  while (stream_busy_) co_await stream_free_.wait();
  st.opcode = op;
  st.started = false;
  st.sending = false;
  st.plain = false;
  for (const auto& s : sockets_now()) {
    auto& conn = socket_access::get(*s);
    // A socket of another loop is asked on its own thread, when claimed: a closed one
    // takes nothing.
    if (s.get() == exclude || (conn.loop_index() == 0 && !conn.is_open())) continue;
    st.targets.push_back(s);
    // The whole stream is one message: compressed for every peer that agreed
    // permessage-deflate (its size is unknown, so the small-message threshold does not
    // apply), with a deflater per window size among them.
    const int bits = conn.deflate_bits();
    if (bits == 0) {
      st.plain = true;
    } else if (auto& d = st.deflaters.at(static_cast<std::size_t>(bits)); !d) {
      try {
        d = std::make_unique<deflater>(bits, options_.deflate.mem_level, options_.deflate.level, true);
      } catch (...) {
        st.targets.clear();
        st.deflaters = {};
        throw;
      }
    }
  }
  // Claimed once nothing can fail any more (on another loop, before anything this
  // stream sends there).
  for (const auto& s : st.targets) {
    const void* stream = &st;
    on_loop_of(s, [stream](connection& conn) { conn.claim_stream(stream); });
  }
  stream_busy_ = true;
  st.open = true;
}

stream_frames server_core::encode_stream(outgoing_stream& st, std::span<const std::byte> chunk, bool fin) {
  const bool first = !st.started;
  const opcode op = first ? st.opcode : opcode::continuation;
  stream_frames frames{};
  if (st.plain) frames[0] = encode_frame(role::server, op, fin, chunk);
  for (std::size_t bits = 1; bits < st.deflaters.size(); ++bits) {
    if (!st.deflaters[bits]) continue;
    // Every call's output ends on a byte boundary (a sync flush), so it goes out now;
    // RSV1 marks the message's first frame only (RFC 7692 section 6.1).
    st.compressed.clear();
    st.deflaters[bits]->compress(chunk, fin, st.compressed);
    frames[bits] = encode_frame(role::server, op, fin, st.compressed, first);
  }
  st.started = true;
  return frames;
}

asio::awaitable<void> server_core::stream_chunk(outgoing_stream& st, std::span<const std::byte> chunk,
                                                bool fin) {
  // One fragment at a time: a compressed stream's bytes must reach each peer in the
  // order they were compressed.
  while (st.open && st.sending) co_await stream_turn_.wait();
  if (!st.open) co_return;
  struct sending_turn {
    server_core& core;
    outgoing_stream& st;
    ~sending_turn() {
      st.sending = false;
      core.stream_turn_.notify_all();
    }
  };
  st.sending = true;
  const sending_turn held{*this, st};
  if (st.shared_as != 0) {
    if (!chunk.empty()) publish_fragment(st.shared_as, chunk);
    if (fin) publish_stream_end(std::exchange(st.shared_as, 0));
  }
  const stream_frames frames = encode_stream(st, chunk, fin);
  // Named first: g++ 12 destroys a temporary in a co_await expression twice.
  const auto frame_for = [&frames](connection& peer) -> const shared_bytes& {
    return frames[static_cast<std::size_t>(peer.deflate_bits())];
  };
  co_await deliver(frame_for, &st.targets, &st, nullptr);
}

void server_core::close_stream(outgoing_stream& st) noexcept {
  if (!st.open) return;
  for (const auto& s : st.targets) {
    const void* stream = &st;
    try {
      on_loop_of(s, [stream](connection& conn) { conn.release_stream(stream); });
    } catch (...) { // out of memory for the post: the socket stays held until it closes
    }
  }
  st.targets.clear();
  st.deflaters = {};
  std::vector<std::byte>{}.swap(st.compressed);
  st.open = false;
  stream_busy_ = false;
  stream_free_.notify_all();
  stream_turn_.notify_all();
}

void server_core::abandon_stream(outgoing_stream& st) noexcept {
  if (!st.open) return;
  // Ended early, here and at the other instances alike.
  if (st.shared_as != 0) publish_stream_end(std::exchange(st.shared_as, 0));
  try {
    // A final frame in every form: the compressed ones end their deflate streams.
    const stream_frames frames = encode_stream(st, {}, true);
    for (const auto& s : st.targets) {
      const shared_bytes& frame = frames[static_cast<std::size_t>(socket_access::get(*s).deflate_bits())];
      on_loop_of(s, [frame](connection& conn) { conn.enqueue_now(frame); });
    }
  } catch (...) {
    // Out of memory: the peers get the close instead.
  }
  close_stream(st);
}

asio::awaitable<void> server_core::co_write(std::span<const std::byte> chunk, opcode op) {
  auto self = shared_from_this();
  auto st = write_stream_;
  if (!st) {
    if (chunk.empty()) co_return; // no stream to end
    st = std::make_shared<outgoing_stream>();
    write_stream_ = st;
    co_await open_shared_stream(*st, op, nullptr);
  }
  if (!chunk.empty()) {
    co_await stream_chunk(*st, chunk, false);
    co_return;
  }
  co_await stream_chunk(*st, {}, true);
  close_stream(*st);
  if (write_stream_ == st) write_stream_.reset();
}

// ---- Stopping ----

asio::awaitable<void> server_core::stop() {
  auto self = shared_from_this();
  if (stopped_) co_return;
  stopping_ = true;
  if (write_stream_) {
    abandon_stream(*write_stream_);
    write_stream_.reset();
  }
  std::error_code ignored;
  for (auto& acceptor : acceptors_) acceptor.close(ignored);
  cancel_handshakes();
  for (const auto& s : sockets_now())
    on_loop_of(s, [](connection& conn) { conn.begin_close(close_code::going_away, "server stopping"); });

  // Each socket bounds its own close handshake by the close timeout; this deadline is
  // a safety net, after which the stragglers are dropped.
  auto wait_all = [this, self](std::chrono::milliseconds limit) -> asio::awaitable<void> {
    auto expired = std::make_shared<bool>(false);
    asio::steady_timer deadline{ex_, limit};
    deadline.async_wait([expired, self](std::error_code ec) {
      if (ec) return;
      *expired = true;
      self->changed_.notify_all();
    });
    while (!all_reported() && !*expired) co_await changed_.wait();
    deadline.cancel();
  };
  co_await wait_all(options_.close_timeout + 250ms);
  if (const auto left = sockets_now(); !left.empty()) {
    for (const auto& s : left) on_loop_of(s, [](connection& conn) { conn.abort(); });
    co_await wait_all(1s);
  }
  // Last: the sockets' relays cut by their closes have told the other instances.
  stop_redis();
  stopped_ = true;
  end_generators();
}

void server_core::end_generators() noexcept {
  connections_.end();
  messages_.end();
  pongs_.end();
  closes_.end();
  errors_.end();
  streams_.end();
  events_.end();
}

void server_core::shutdown_now() noexcept {
  stopping_ = true;
  stopped_ = true;
  stop_redis();
  std::error_code ignored;
  for (auto& acceptor : acceptors_) acceptor.close(ignored);
  try {
    cancel_handshakes();
    for (const auto& s : sockets_now()) on_loop_of(s, [](connection& conn) { conn.abort(); });
  } catch (...) { // out of memory for a post: join_loops() stops what is left
  }
  {
    const std::lock_guard lock{registry_mutex_};
    registry_.clear();
  }
  end_generators();
}

std::vector<std::shared_ptr<socket>> server_core::sockets_now() const {
  const std::lock_guard lock{registry_mutex_};
  std::vector<std::shared_ptr<socket>> out;
  out.reserve(registry_.size());
  for (const auto& entry : registry_) out.push_back(entry.second);
  return out;
}

bool server_core::all_reported() const {
  const std::lock_guard lock{registry_mutex_};
  return registry_.empty() && pending_reports_ == 0;
}

void server_core::cancel_handshakes() {
  for (auto& loop : loops_)
    loop->run_here([l = loop.get()] {
      std::error_code ignored;
      for (auto* tcp : l->handshaking) tcp->cancel(ignored);
    });
}

void server_core::on_loop_of(const std::shared_ptr<socket>& s, std::function<void(connection&)> f) {
  auto& conn = socket_access::get(*s);
  if (conn.loop_index() == 0) {
    f(conn);
  } else {
    asio::post(loops_[conn.loop_index()]->ex, [s, f = std::move(f)] { f(socket_access::get(*s)); });
  }
}

asio::awaitable<void> wait_pipe(std::shared_ptr<socket> from, std::shared_ptr<pipe_state> state) {
  while (!state->finished) {
    if (state->follows) {
      state = state->follows; // attached to a pipe already there: that one's end
      continue;
    }
    co_await state->done.wait();
  }
  (void)from;
}

asio::awaitable<void> server_core::let_consumers_take(std::chrono::milliseconds limit) {
  auto self = shared_from_this();
  auto point = std::make_shared<handoff>(ex_);
  point->add(); // while registering
  messages_.hand_off_all(point);
  streams_.hand_off_all(point);
  events_.hand_off_all(point);
  point->done();
  if (!point->pending()) co_return;
  asio::steady_timer deadline{ex_, limit};
  deadline.async_wait([point](std::error_code ec) {
    if (!ec) point->release();
  });
  while (point->pending()) co_await point->wait();
  deadline.cancel();
}

} // namespace detail

// ---- websockets::server ----

server::server(asio::any_io_executor executor, server_options options)
    : core_(std::make_shared<detail::server_core>(std::move(executor), std::move(options))) {}

server::~server() {
  if (core_) {
    core_->shutdown_now();
    core_->join_loops();
  }
}

asio::awaitable<void> server::listen() {
  core_->bind();
  return core_->accept_all();
}

asio::ip::tcp::endpoint server::local_endpoint() const { return core_->local_endpoint_; }

asio::awaitable<void> server::accept(asio::ip::tcp::socket tcp, std::string_view already_read) {
  if (core_->tls_ && !already_read.empty())
    throw std::invalid_argument("a wss:// server does the TLS handshake itself: hand it a connection before reading");
  if (!core_->stopping_) core_->start_redis();
  auto ex = tcp.get_executor();
  auto& loop = core_->loop_of(ex);
  auto adopted = detail::adopt(std::move(tcp), detail::io_context_of(ex));
  if (loop.index == 0) return core_->handle(std::move(adopted), std::string(already_read), loop, std::move(ex));
  // A connection of one of the server's own loops: its handshake runs there.
  return asio::co_spawn(loop.ex, core_->handle(std::move(adopted), std::string(already_read), loop, std::move(ex)),
                        detail::hop_token());
}

void server::on_http(http_handler handler) { core_->http_ = std::move(handler); }

void server::on_upgrade(accept_hook hook) { core_->accept_ = std::move(hook); }

generator<std::shared_ptr<socket>> server::connections() { return core_->connections_.subscribe(core_->ex_); }
generator<message> server::messages() { return core_->messages_.subscribe(core_->ex_); }
generator<pong_event> server::pongs() { return core_->pongs_.subscribe(core_->ex_); }
generator<close_event> server::closes() { return core_->closes_.subscribe(core_->ex_); }
generator<error_event> server::errors() { return core_->errors_.subscribe(core_->ex_); }
generator<stream_event> server::streams() { return core_->streams_.subscribe(core_->ex_); }
generator<event> server::events() { return core_->events_.subscribe(core_->ex_); }

asio::awaitable<void> server::broadcast(frame_head head, std::span<const std::byte> payload,
                                        const socket* except) {
  return core_->broadcast(head, payload, except);
}

asio::awaitable<void> server::broadcast(frame_head head, std::string_view payload, const socket* except) {
  return core_->broadcast(head, std::as_bytes(std::span{payload.data(), payload.size()}), except);
}

asio::awaitable<void> server::co_write(std::span<const std::byte> chunk, websockets::opcode opcode) {
  return core_->co_write(chunk, opcode);
}

asio::awaitable<void> server::stop() { return core_->stop(); }

std::size_t server::connection_count() const noexcept {
  const std::lock_guard lock{core_->registry_mutex_};
  return core_->registry_.size();
}

std::vector<std::shared_ptr<socket>> server::sockets() const { return core_->sockets_now(); }

std::vector<asio::any_io_executor> server::executors() const {
  std::vector<asio::any_io_executor> out;
  for (const auto& loop : core_->loops_) out.push_back(loop->ex);
  return out;
}

const server_options& server::options() const noexcept { return core_->options_; }

bool server::redis_connected() const noexcept { return core_->redis_connected(); }

asio::awaitable<void> pipe(std::shared_ptr<socket> from, server& to, pipe_options options) {
  // Not a coroutine: the pipe attaches now, before the caller's next suspension (from
  // another thread, it is posted now to the socket's loop, ahead of what the caller
  // lets happen there next).
  if (detail::running_here(from->executor())) {
    auto state = detail::socket_access::get(*from).attach_pipe(detail::server_access::shared(to),
                                                              options.include_sender);
    return detail::wait_pipe(std::move(from), std::move(state));
  }
  auto state = std::make_shared<detail::pipe_state>(from->executor());
  asio::post(from->executor(), [from, to = detail::server_access::shared(to), state, options] {
    (void)detail::socket_access::get(*from).attach_pipe(to, options.include_sender, state);
  });
  const auto ex = from->executor();
  return asio::co_spawn(ex, detail::wait_pipe(std::move(from), std::move(state)), detail::hop_token());
}

} // namespace websockets
