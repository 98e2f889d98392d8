// The byte stream under a connection: plain TCP, or TLS through Asio's OpenSSL stream.
#include "transport.hpp"

#include <asio/ip/address.hpp>
#include <asio/strand.hpp>
#include <asio/ssl/host_name_verification.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace websockets::detail {
namespace {

thread_local fault_plan* installed_plan = nullptr;

// TLS 1.2 and later, no compression (CRIME), no renegotiation.
std::shared_ptr<asio::ssl::context> modern_context(asio::ssl::context::method method) {
  auto context = std::make_shared<asio::ssl::context>(method);
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::no_compression);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_options(context->native_handle(), SSL_OP_NO_RENEGOTIATION);
  // OpenSSL's record buffers go back while a connection has nothing in flight.
  SSL_CTX_set_mode(context->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  return context;
}

[[noreturn]] void refuse(const std::string& what, const std::string& file, const std::system_error& e) {
  throw std::invalid_argument(what + " " + file + ": " + e.what());
}

} // namespace

fault_plan*& thread_fault_plan() noexcept { return installed_plan; }

std::shared_ptr<asio::ssl::context> make_server_tls(const server_tls& tls) {
  if (tls.certificate_chain_file.empty() || tls.private_key_file.empty())
    throw std::invalid_argument("a wss:// server needs tls.certificate_chain_file and tls.private_key_file");
  auto context = modern_context(asio::ssl::context::tls_server);
  try {
    context->use_certificate_chain_file(tls.certificate_chain_file);
  } catch (const std::system_error& e) {
    refuse("cannot use the certificate chain", tls.certificate_chain_file, e);
  }
  try {
    context->use_private_key_file(tls.private_key_file, asio::ssl::context::pem);
  } catch (const std::system_error& e) {
    refuse("cannot use the private key", tls.private_key_file, e);
  }
  if (SSL_CTX_check_private_key(context->native_handle()) != 1)
    throw std::invalid_argument("the private key " + tls.private_key_file + " does not match the certificate " +
                                tls.certificate_chain_file);
  return context;
}

std::shared_ptr<asio::ssl::context> make_client_tls(const client_tls& tls) {
  // Loading the system's trust anchors costs tens of milliseconds (a 200 KB bundle),
  // so connections share one context per choice of anchors: a burst of connects costs
  // one load. A CA file is reloaded when it changes on disk.
  std::string key = tls.verify ? "verify:" : "none:";
  if (tls.verify && !tls.ca_file.empty()) {
    std::error_code unknown;
    const auto changed = std::filesystem::last_write_time(tls.ca_file, unknown);
    key += std::to_string(changed.time_since_epoch().count()) + ":" + tls.ca_file;
  }
  static std::mutex guard;
  static std::map<std::string, std::shared_ptr<asio::ssl::context>> contexts;
  {
    const std::lock_guard lock{guard};
    if (const auto it = contexts.find(key); it != contexts.end()) return it->second;
  }
  auto context = modern_context(asio::ssl::context::tls_client);
  if (tls.verify) {
    context->set_default_verify_paths();
    if (!tls.ca_file.empty()) {
      try {
        context->load_verify_file(tls.ca_file);
      } catch (const std::system_error& e) {
        refuse("cannot use the trust anchors", tls.ca_file, e);
      }
    }
  }
  const std::lock_guard lock{guard};
  return contexts.try_emplace(std::move(key), std::move(context)).first->second;
}

bool transport::inject_fault() noexcept {
  auto* plan = installed_plan;
  if (plan == nullptr || plan->fail_at == 0 || plan->failed) return false;
  if (++plan->operations != plan->fail_at) return false;
  plan->failed = true;
  return true;
}

asio::awaitable<std::error_code> transport::accept_tls() {
  if (!tls_) co_return std::error_code{};
  if (inject_fault()) co_return make_error_code(asio::error::connection_reset);
  auto [ec] = co_await tls_->stream.async_handshake(asio::ssl::stream_base::server, nothrow);
  co_return ec;
}

asio::awaitable<std::error_code> transport::connect_tls(std::string_view host, const client_tls& tls) {
  if (!tls_) co_return std::error_code{};
  const std::string name{tls.server_name.empty() ? host : std::string_view{tls.server_name}};
  std::error_code not_address;
  (void)asio::ip::make_address(name, not_address);
  // SNI carries host names only (RFC 6066), never an address.
  if (not_address) SSL_set_tlsext_host_name(tls_->stream.native_handle(), name.c_str());
  if (tls.verify) {
    tls_->stream.set_verify_mode(asio::ssl::verify_peer);
    tls_->stream.set_verify_callback(asio::ssl::host_name_verification(name));
  } else {
    tls_->stream.set_verify_mode(asio::ssl::verify_none);
  }
  if (inject_fault()) co_return make_error_code(asio::error::connection_reset);
  auto [ec] = co_await tls_->stream.async_handshake(asio::ssl::stream_base::client, nothrow);
  co_return ec;
}

asio::awaitable<std::tuple<std::error_code, std::size_t>> transport::read_some(asio::mutable_buffer buffer) {
  if (inject_fault()) co_return std::tuple{make_error_code(asio::error::connection_reset), std::size_t{0}};
  if (tls_) co_return co_await tls_->stream.async_read_some(buffer, nothrow);
  co_return co_await tcp_.async_read_some(buffer, nothrow);
}

asio::awaitable<std::error_code> transport::write(std::string_view bytes) {
  if (inject_fault()) co_return make_error_code(asio::error::connection_reset);
  const auto buffer = asio::buffer(bytes);
  if (tls_) {
    auto [ec, size] = co_await asio::async_write(tls_->stream, buffer, nothrow);
    (void)size;
    co_return ec;
  }
  auto [ec, size] = co_await asio::async_write(tcp_, buffer, nothrow);
  (void)size;
  co_return ec;
}

namespace {

template <class Executor>
asio::io_context* context_under(const asio::any_io_executor& ex) {
  if (const auto* plain = target_as<Executor>(ex)) return &plain->context();
  if (const auto* strand = target_as<asio::strand<Executor>>(ex)) return &strand->get_inner_executor().context();
  return nullptr;
}

} // namespace

asio::io_context& io_context_of(const asio::any_io_executor& ex) {
  using untracked = asio::io_context::executor_type;
  using tracked = std::decay_t<decltype(asio::require(std::declval<untracked>(), asio::execution::outstanding_work.tracked))>;
  if (auto* context = context_under<untracked>(ex)) return *context;
  if (auto* context = context_under<tracked>(ex)) return *context;
  throw std::invalid_argument("websockets: connections run on an io_context's executor or a strand of one");
}

tcp_socket adopt(asio::ip::tcp::socket tcp, asio::io_context& context) {
  tcp_socket adopted{context};
  if (!tcp.is_open()) return adopted;
  std::error_code ec;
  const auto protocol = tcp.local_endpoint(ec).protocol();
  if (ec) return adopted; // not connected: left closed
  const auto handle = tcp.release(ec);
  if (ec) return adopted;
  adopted.assign(protocol, handle, ec);
  if (ec) ::close(handle); // released from `tcp` and not taken: nobody else would close it
  return adopted;
}

std::size_t transport::read_now(asio::mutable_buffer buffer, std::error_code& ec) {
  return tcp_.read_some(buffer, ec);
}

void transport::cancel() noexcept {
  std::error_code ignored;
  tcp().cancel(ignored);
}

void transport::close() noexcept {
  std::error_code ignored;
  tcp().shutdown(tcp_socket::shutdown_both, ignored);
  tcp().close(ignored);
}

} // namespace websockets::detail
