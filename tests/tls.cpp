// wss:// end to end: a server with a certificate from a test CA made here, our client
// verifying it (or refusing it), permessage-deflate over TLS, plain peers and silent
// peers at a TLS server, and the server's refusal of what it cannot use.
#include "certificates.hpp"
#include "loopback.hpp"

#include <websockets/error.hpp>

#include <asio/ssl/context.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/stream.hpp>

#include <openssl/ssl.h>

#include <filesystem>
#include <string>
#include <unistd.h>

using namespace loopback;
using websockets::opcode;

namespace {

// Made once per run, removed at exit.
const test_tls::certificate_files& certificates() {
  struct made {
    std::filesystem::path directory =
        std::filesystem::temp_directory_path() / ("websockets-tls-test-" + std::to_string(::getpid()));
    test_tls::certificate_files files = test_tls::make_certificates(directory);
    ~made() {
      std::error_code ignored;
      std::filesystem::remove_all(directory, ignored);
    }
  };
  static const made once;
  return once.files;
}

websockets::server_options secure(websockets::server_options options = {}) {
  options.url = "wss://localhost:0/";
  options.tls = {.certificate_chain_file = certificates().chain, .private_key_file = certificates().key};
  return options;
}

std::string wss_url(const websockets::server& srv, std::string_view host = "localhost") {
  return "wss://" + std::string(host) + ":" + std::to_string(srv.local_endpoint().port()) + "/";
}

websockets::connect_options trusting() {
  websockets::connect_options options;
  options.tls.ca_file = certificates().ca;
  return options;
}

// What connect throws, as an error code; empty when it connects. (Callers name the
// options first: g++ 12 miscompiles temporaries of aggregates inside co_await.)
asio::awaitable<std::error_code> connect_error(executor ex, std::string url, websockets::connect_options options) {
  try {
    auto s = co_await websockets::connect(ex, url, options);
    co_await s->close(websockets::close_code::normal, "");
  } catch (const std::system_error& e) {
    co_return e.code();
  }
  co_return std::error_code{};
}

std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
  return s;
}

asio::awaitable<void> echo_all(websockets::server& srv) {
  auto messages = srv.messages();
  while (auto m = co_await messages.next())
    if (co_await m->peer->send(m->opcode, m->bytes())) break;
}

} // namespace

TEST_CASE("a wss:// server and our client: messages both ways, large ones across records, the close handshake") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, secure()};
    auto closes = f.srv.closes();
    asio::co_spawn(ex, echo_all(f.srv), asio::detached);
    const auto options = trusting();
    auto client = co_await websockets::connect(ex, wss_url(f.srv), options);
    auto replies = client->messages();

    CHECK(!co_await client->send("over TLS"));
    CHECK((co_await next(replies)).text() == "over TLS");
    for (std::size_t size : {0u, 1u, 125u, 16384u, 16385u, 100000u, 3u << 20}) {
      const std::string payload = pattern(size);
      CHECK(!co_await client->send(bytes_of(payload)));
      auto reply = co_await next(replies, 10s);
      CHECK(reply.opcode == opcode::binary);
      CHECK(reply.text() == payload);
    }
    // Many small messages in one turn: one gather write, one TLS write.
    for (int i = 0; i < 200; ++i) (void)co_await client->send(std::to_string(i));
    for (int i = 0; i < 200; ++i) CHECK((co_await next(replies)).text() == std::to_string(i));

    CHECK(!co_await client->close(websockets::close_code::normal, "done"));
    auto closed = co_await next(closes);
    CHECK(closed.code == 1000);
    CHECK(closed.reason == "done");
    co_await f.srv.stop();
  });
}

TEST_CASE("the client verifies the server's certificate and host name unless told not to") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, secure()};
    auto named = trusting();
    // 127.0.0.1 is in the certificate, as an address.
    CHECK(!co_await connect_error(ex, wss_url(f.srv, "127.0.0.1"), named));

    // Not trusted: the test CA is in no system store.
    const websockets::connect_options defaults;
    auto ec = co_await connect_error(ex, wss_url(f.srv), defaults);
    CHECK(ec);
    CHECK(ec.category() == asio::error::get_ssl_category());

    // Trusted, but for another name.
    auto other = trusting();
    other.tls.server_name = "elsewhere.example";
    ec = co_await connect_error(ex, wss_url(f.srv), other);
    CHECK(ec.category() == asio::error::get_ssl_category());

    auto unchecked = websockets::connect_options{};
    unchecked.tls.verify = false;
    CHECK(!co_await connect_error(ex, wss_url(f.srv), unchecked));
    co_await f.srv.stop();
  });
}

TEST_CASE("a server certificate for another host is refused by name") {
  run([](executor ex) -> asio::awaitable<void> {
    auto options = secure();
    options.tls.certificate_chain_file = certificates().wrong_name;
    fixture f{ex, options};
    const auto trusted = trusting();
    auto ec = co_await connect_error(ex, wss_url(f.srv), trusted);
    CHECK(ec.category() == asio::error::get_ssl_category());
    co_await f.srv.stop();
  });
}

TEST_CASE("permessage-deflate over TLS") {
  run([](executor ex) -> asio::awaitable<void> {
    auto server_options = secure();
    server_options.deflate = {.enabled = true};
    fixture f{ex, server_options};
    auto opened = f.srv.connections();
    asio::co_spawn(ex, echo_all(f.srv), asio::detached);
    auto options = trusting();
    options.deflate = {.enabled = true};
    auto client = co_await websockets::connect(ex, wss_url(f.srv), options);
    auto replies = client->messages();
    auto peer = co_await next(opened);
    CHECK(peer->request().extensions().find("permessage-deflate") != std::string_view::npos);
    const std::string text(200000, 'z');
    CHECK(!co_await client->send(text));
    CHECK((co_await next(replies)).text() == text);
    co_await f.srv.stop();
  });
}

TEST_CASE("a TLS server answers what is not TLS with an error event, and a silent peer with the handshake timeout") {
  run([](executor ex) -> asio::awaitable<void> {
    auto options = secure();
    options.handshake_timeout = 300ms;
    fixture f{ex, options};
    auto errors = f.srv.errors();

    raw_peer plain{ex};
    co_await plain.connect(f.srv.local_endpoint().port());
    co_await plain.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK((co_await next(errors)).error == websockets::error::tls_handshake_failed);
    CHECK(co_await plain.closed_by_peer());

    raw_peer silent{ex};
    co_await silent.connect(f.srv.local_endpoint().port());
    CHECK((co_await next(errors)).error == websockets::error::handshake_timeout);
    CHECK(co_await silent.closed_by_peer());

    // And it still serves.
    const auto trusted = trusting();
    auto client = co_await websockets::connect(ex, wss_url(f.srv), trusted);
    CHECK(client->is_open());
    co_await f.srv.stop();
  });
}

TEST_CASE("TLS older than 1.2 is refused") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, secure()};
    asio::ssl::context old{asio::ssl::context::tls_client};
    SSL_CTX_set_min_proto_version(old.native_handle(), TLS1_VERSION);
    SSL_CTX_set_max_proto_version(old.native_handle(), TLS1_1_VERSION);
    SSL_CTX_set_security_level(old.native_handle(), 0);
    asio::ssl::stream<asio::ip::tcp::socket> stream{ex, old};
    const asio::ip::tcp::endpoint endpoint{asio::ip::make_address("127.0.0.1"), f.srv.local_endpoint().port()};
    co_await stream.next_layer().async_connect(endpoint, asio::use_awaitable);
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::client, nothrow);
    CHECK(ec);
    co_await f.srv.stop();
  });
}

TEST_CASE("stop closes TLS sockets with 1001") {
  run([](executor ex) -> asio::awaitable<void> {
    fixture f{ex, secure()};
    const auto trusted = trusting();
    auto client = co_await websockets::connect(ex, wss_url(f.srv), trusted);
    auto events = client->events();
    co_await f.srv.stop();
    auto closed = co_await next_of<websockets::close_event>(events);
    CHECK(closed.code == 1001);
  });
}

TEST_CASE("a wss:// server without a usable certificate and key is refused at construction") {
  asio::io_context io;
  CHECK_THROWS_AS(websockets::server(io.get_executor(), {.url = "wss://localhost:0/"}), std::invalid_argument);
  auto missing = secure();
  missing.tls.certificate_chain_file = "/nonexistent/chain.pem";
  CHECK_THROWS_AS(websockets::server(io.get_executor(), missing), std::invalid_argument);
  auto mismatched = secure();
  mismatched.tls.private_key_file = certificates().ca; // a certificate, not a key
  CHECK_THROWS_AS(websockets::server(io.get_executor(), mismatched), std::invalid_argument);
}
