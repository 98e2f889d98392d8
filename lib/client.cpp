// The client: resolve, connect, the opening handshake, then a socket like the server's.
#include "connection.hpp"

#include <websockets/client.hpp>
#include <websockets/http.hpp>

#include <asio/connect.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <array>
#include <stdexcept>
#include <string>
#include <system_error>

// g++ 12 inlines Asio's coroutine frame allocation (aligned_alloc, or operator
// new) into connect_to and then wrongly sees a mismatched delete: a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace websockets {
namespace {

using namespace asio::experimental::awaitable_operators;

asio::awaitable<void> sleep_for(asio::any_io_executor ex, std::chrono::milliseconds duration) {
  asio::steady_timer timer{ex, duration};
  (void)co_await timer.async_wait(detail::nothrow);
}

// Everything up to the response head; bytes after it (frames the server sent right
// behind its 101) go to `rest`.
asio::awaitable<std::error_code> open(detail::transport& io, const client_handshake& handshake,
                                      const client_tls& tls, http_parser& parser, std::string& rest) {
  auto& tcp = io.tcp();
  asio::ip::tcp::resolver resolver{tcp.get_executor()};
  auto [resolve_error, endpoints] = co_await resolver.async_resolve(
      std::string(handshake.host()), std::to_string(handshake.port()), detail::nothrow);
  if (resolve_error) co_return resolve_error;
  auto [connect_error, endpoint] = co_await asio::async_connect(tcp, endpoints, detail::nothrow);
  (void)endpoint;
  if (connect_error) co_return connect_error;
  std::error_code ignored;
  tcp.set_option(asio::ip::tcp::no_delay(true), ignored);
  if (const auto tls_error = co_await io.connect_tls(handshake.host(), tls)) co_return tls_error;
  if (const auto write_error = co_await io.write(handshake.request())) co_return write_error;
  std::array<char, 4096> buffer{};
  for (;;) {
    auto [ec, size] = co_await io.read_some(asio::buffer(buffer));
    if (ec) co_return ec;
    const auto result = parser.feed(std::string_view{buffer.data(), size});
    if (result.state == http_parser::status::failed) co_return make_error_code(parser.failure());
    if (result.state == http_parser::status::complete) {
      rest.assign(buffer.data() + result.consumed, size - result.consumed);
      co_return std::error_code{};
    }
  }
}

// The permessage-deflate parameters the server accepted; none when it did not. Throws
// when it accepted with parameters that break our offer.
std::optional<deflate_params> accepted_compression(const response_check& check, const deflate_options& ours) {
  if (!ours.enabled) return std::nullopt;
  const auto accepted = parse_extensions(check.extensions);
  if (!accepted) return std::nullopt; // checked by the handshake already
  for (const auto& e : *accepted) {
    if (!iequals(e.name, "permessage-deflate")) continue;
    auto agreed = accept_deflate(e, ours);
    if (!agreed) throw std::system_error(make_error_code(error::bad_extension_response), "WebSocket handshake");
    return agreed;
  }
  return std::nullopt;
}

detail::transport transport_for(const asio::any_io_executor& executor, bool secure, const client_tls& tls) {
  auto& context = detail::io_context_of(executor);
  if (secure) return detail::transport{detail::tcp_socket{context}, detail::make_client_tls(tls)};
  return detail::transport{detail::tcp_socket{context}};
}

asio::awaitable<std::shared_ptr<socket>> connect_to(asio::any_io_executor executor, std::string url,
                                                    connect_options options) {
  if (options.deflate.enabled) {
    // Our offer goes after any extensions the caller offers itself.
    auto& offer = options.handshake.extensions;
    offer = offer.empty() ? deflate_offer(options.deflate) : offer + ", " + deflate_offer(options.deflate);
  }
  const client_handshake handshake{url, options.handshake};
  detail::transport io = transport_for(executor, handshake.secure(), options.tls);
  http_parser parser{http_kind::response, options.max_head_size};
  std::string rest;
  auto result =
      co_await (open(io, handshake, options.tls, parser, rest) || sleep_for(executor, options.handshake_timeout));
  if (result.index() == 1)
    throw std::system_error(make_error_code(error::handshake_timeout), "WebSocket handshake");
  if (const auto ec = std::get<0>(result)) throw std::system_error(ec, "WebSocket handshake");
  const response_check check = handshake.check(parser.head());
  if (!check) throw std::system_error(make_error_code(check.failure), "WebSocket handshake");

  auto config = std::make_shared<const detail::connection_config>(detail::config_from(role::client, options));
  auto sock = detail::socket_access::create(std::move(io), executor, std::move(config),
                                            accepted_compression(check, options.deflate), {}, nullptr);
  detail::socket_access::get(*sock).set_accepted(check.subprotocol, {});
  // Reading starts on the next turn, so that the caller can subscribe first.
  asio::post(executor, [sock, rest = std::move(rest)] {
    detail::socket_access::get(*sock).start(std::as_bytes(std::span{rest.data(), rest.size()}), nullptr);
  });
  co_return sock;
}

} // namespace

asio::awaitable<std::shared_ptr<socket>> connect(asio::any_io_executor executor, std::string_view url,
                                                 const connect_options& options) {
  // Not a coroutine: the url and options are copied now, since the caller's may not
  // outlive the call.
  return connect_to(std::move(executor), std::string(url), options);
}

asio::awaitable<std::shared_ptr<socket>> connect(asio::any_io_executor executor, std::string_view url) {
  // An overload rather than a default argument: g++ 12 miscompiles the aggregate
  // temporary a default `{}` would create inside the caller's co_await expression.
  return connect_to(std::move(executor), std::string(url), connect_options{});
}

} // namespace websockets
