// Private: the byte stream under one connection, plain TCP or TLS over TCP. Every read
// and write of a connection (its handshake included) goes through here, which is also
// where tests inject faults: the Nth operation of a scenario fails.
#pragma once

#include <websockets/generator.hpp>
#include <websockets/tls.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/write.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

namespace websockets::detail {

/// Tests' fault injection: the `fail_at`-th read or write (counting from 1) of the
/// transports of the thread that installed the plan fails with `connection_reset`, as
/// when the peer resets the connection at that point.
struct fault_plan {
  std::size_t fail_at = 0; // 0: nothing fails
  std::size_t operations = 0;
  bool failed = false;
};

/// The plan in force on this thread; null when none.
fault_plan*& thread_fault_plan() noexcept;

/// A server's TLS context: TLS 1.2 and later, the certificate chain and key of `tls`.
/// Throws `std::invalid_argument` naming OpenSSL's reason when they cannot be used.
std::shared_ptr<asio::ssl::context> make_server_tls(const server_tls& tls);

/// A client's TLS context: TLS 1.2 and later, the system's trust anchors and `tls.ca_file`.
std::shared_ptr<asio::ssl::context> make_client_tls(const client_tls& tls);

/// A connection's TCP socket, typed on its io_context's executor rather than on
/// `any_io_executor`: the socket is then 40 bytes instead of 88, and each operation in
/// flight (an idle connection's readiness wait) 104 instead of 208, since it carries no
/// copies of a type-erased executor. Completion handlers that must run elsewhere (on a
/// strand) say so with their associated executor.
using tcp_socket = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;

/// The io_context under `ex` (an io_context's executor, or a strand of one). Throws
/// `std::invalid_argument` for any other executor: connections need an io_context.
asio::io_context& io_context_of(const asio::any_io_executor& ex);

/// The connection of `tcp` (any executor) as a `tcp_socket` on `context`; closed
/// when `tcp` is.
tcp_socket adopt(asio::ip::tcp::socket tcp, asio::io_context& context);

class transport {
public:
  using tls_stream = asio::ssl::stream<tcp_socket>;

  /// Plain TCP.
  explicit transport(tcp_socket tcp) : tcp_(std::move(tcp)) {}
  /// TLS over `tcp` (its handshake still to be done), with settings from `context`.
  transport(tcp_socket tcp, std::shared_ptr<asio::ssl::context> context)
      : tcp_(tcp.get_executor()), tls_(std::make_unique<tls_layer>(std::move(tcp), std::move(context))) {}

  [[nodiscard]] bool secure() const noexcept { return tls_ != nullptr; }
  /// The TCP socket, under TLS or not.
  [[nodiscard]] tcp_socket& tcp() noexcept { return tls_ ? tls_->stream.next_layer() : tcp_; }
  [[nodiscard]] const tcp_socket& tcp() const noexcept { return tls_ ? tls_->stream.next_layer() : tcp_; }

  /// The TLS handshake as a server. Nothing to do for plain TCP.
  asio::awaitable<std::error_code> accept_tls();
  /// The TLS handshake as a client of `host` (SNI; and the certificate must name it
  /// when `tls.verify`). Nothing to do for plain TCP.
  asio::awaitable<std::error_code> connect_tls(std::string_view host, const client_tls& tls);

  /// Reads what is there, at least one byte.
  asio::awaitable<std::tuple<std::error_code, std::size_t>> read_some(asio::mutable_buffer buffer);
  /// Writes all of `bytes`.
  asio::awaitable<std::error_code> write(std::string_view bytes);

  /// Plain TCP only: waits until bytes can be read, holding no buffer, then calls
  /// `handler(error_code)`. (The socket's own operation, not a coroutine: an idle
  /// connection keeps no frame for it.) Ask `wait_fails()` first.
  template <class Handler>
  void wait_readable(Handler&& handler) {
    tcp_.async_wait(tcp_socket::wait_read, std::forward<Handler>(handler));
  }
  /// True when the fault plan fails this wait: the caller takes it as a reset connection.
  [[nodiscard]] static bool wait_fails() noexcept { return inject_fault(); }
  /// Plain TCP only: reads what is there without waiting (`would_block` when nothing).
  std::size_t read_now(asio::mutable_buffer buffer, std::error_code& ec);

  /// Writes all of `buffers` (which must outlive the write), then calls
  /// `handler(error_code, size_t)`.
  template <class Handler>
  void async_write(std::span<const asio::const_buffer> buffers, Handler&& handler) {
    if (inject_fault()) {
      asio::post(tcp().get_executor(),
                 [h = std::forward<Handler>(handler)]() mutable { h(make_error_code(asio::error::connection_reset), 0); });
    } else if (tls_) {
      asio::async_write(tls_->stream, buffers, std::forward<Handler>(handler));
    } else {
      asio::async_write(tcp_, buffers, std::forward<Handler>(handler));
    }
  }

  /// Cancels what is in flight.
  void cancel() noexcept;
  /// Closes TCP (without TLS's close_notify: the WebSocket close handshake has ended
  /// the conversation already).
  void close() noexcept;

private:
  /// True when the fault plan says this operation fails.
  static bool inject_fault() noexcept;

  // TLS's state, made only for TLS: a plain connection carries one pointer of it.
  struct tls_layer {
    tls_layer(tcp_socket tcp, std::shared_ptr<asio::ssl::context> settings)
        : context(std::move(settings)), stream(std::move(tcp), *context) {}
    std::shared_ptr<asio::ssl::context> context; // outlives the stream
    tls_stream stream;
  };

  tcp_socket tcp_; // plain TCP; unused under TLS
  std::unique_ptr<tls_layer> tls_;
};

} // namespace websockets::detail
