// The client over loopback: against our server, and against a raw server that answers
// what a real server would not (garbage, silence, masked frames, frames right behind
// the 101).
#include "loopback.hpp"

#include <websockets/error.hpp>
#include <websockets/upgrade.hpp>

using namespace loopback;
using websockets::close_code;
using websockets::opcode;

namespace {

// A server that speaks raw bytes: accepts one connection and answers as told.
class raw_server {
public:
  explicit raw_server(executor ex) : acceptor_(ex, {asio::ip::make_address("127.0.0.1"), 0}), peer_(ex) {}

  [[nodiscard]] std::string url() const {
    return "ws://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/";
  }

  /// Accepts and reads the request head; returns the key the client sent.
  asio::awaitable<std::string> accept() {
    peer_.tcp() = co_await acceptor_.async_accept(asio::use_awaitable);
    const std::string head = co_await peer_.read_head();
    const std::string name = "Sec-WebSocket-Key: ";
    const auto at = head.find(name);
    REQUIRE(at != std::string::npos);
    co_return head.substr(at + name.size(), head.find("\r\n", at) - at - name.size());
  }

  raw_peer& peer() { return peer_; }

private:
  asio::ip::tcp::acceptor acceptor_;
  raw_peer peer_;
};

// An unmasked (server) frame.
std::string server_frame(opcode op, std::string_view payload, bool masked = false) {
  websockets::frame_head head{.fin = true, .opcode = op, .masked = masked,
                              .key = {std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}},
                              .payload_size = payload.size()};
  std::array<std::byte, websockets::max_head_size> bytes{};
  const auto n = websockets::encode_head(head, bytes);
  std::string body(payload);
  if (masked) websockets::apply_mask(std::as_writable_bytes(std::span{body.data(), body.size()}), head.key);
  return std::string(reinterpret_cast<const char*>(bytes.data()), n) + body;
}

// Options by pointer: a defaulted aggregate argument trips g++ 12 inside co_await.
asio::awaitable<std::error_code> connect_error(executor ex, std::string url,
                                               const websockets::connect_options* options = nullptr) {
  const websockets::connect_options defaults{};
  try {
    (void)co_await websockets::connect(ex, url, options ? *options : defaults);
  } catch (const std::system_error& e) {
    co_return e.code();
  }
  co_return std::error_code{};
}

} // namespace

TEST_CASE("a client talks to our server: echo, request and endpoints") {
  run([](executor ex) -> asio::awaitable<void> {
    websockets::server srv{ex, local()};
    asio::co_spawn(ex, srv.listen(), asio::detached);
    auto echo = [](websockets::server& s) -> asio::awaitable<void> {
      auto messages = s.messages();
      while (auto m = co_await messages.next()) (void)co_await m->peer->send(m->opcode, m->bytes());
    };
    asio::co_spawn(ex, echo(srv), asio::detached);
    auto client = co_await websockets::connect(ex, url_of(srv, "/?name=me"));
    auto inbox = client->messages();
    CHECK(client->request().key().empty()); // a client's socket has no upgrade request
    CHECK(client->remote_endpoint().port() == srv.local_endpoint().port());
    CHECK(client->id() != 0);
    (void)co_await client->send("echo me");
    auto m = co_await next(inbox);
    CHECK(m.opcode == opcode::text);
    CHECK(m.text() == "echo me");
    const std::string big(300000, 'z'); // several reads, 64-bit length
    (void)co_await client->send(std::as_bytes(std::span{big.data(), big.size()}));
    auto back = co_await next(inbox);
    CHECK(back.opcode == opcode::binary);
    CHECK(back.payload == big);
    co_await srv.stop();
  });
}

TEST_CASE("handshake failures throw std::system_error with a websockets error") {
  run([](executor ex) -> asio::awaitable<void> {
    websockets::server srv{ex, local({.url = "ws://127.0.0.1:0/ws"})};
    asio::co_spawn(ex, srv.listen(), asio::detached);
    auto ec = co_await connect_error(ex, url_of(srv, "/elsewhere"));
    CHECK(ec == websockets::error::bad_status);
    CHECK(std::string(ec.category().name()) == "websockets");

    raw_server garbage{ex};
    auto answering = [](raw_server& s) -> asio::awaitable<void> {
      (void)co_await s.accept();
      co_await s.peer().write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n");
    };
    asio::co_spawn(ex, answering(garbage), asio::detached);
    ec = co_await connect_error(ex, garbage.url());
    CHECK(ec == websockets::error::bad_accept);

    raw_server silent{ex};
    asio::co_spawn(ex, [](raw_server& s) -> asio::awaitable<void> { (void)co_await s.accept(); }(silent),
                   asio::detached);
    const websockets::connect_options quick{.handshake_timeout = std::chrono::milliseconds{200}};
    ec = co_await connect_error(ex, silent.url(), &quick);
    CHECK(ec == std::errc::timed_out);

    // Nobody listens on the port of a closed acceptor.
    std::uint16_t closed_port = 0;
    {
      asio::ip::tcp::acceptor a{ex, {asio::ip::make_address("127.0.0.1"), 0}};
      closed_port = a.local_endpoint().port();
    }
    ec = co_await connect_error(ex, "ws://127.0.0.1:" + std::to_string(closed_port) + "/");
    CHECK(ec);
    CHECK(std::string(ec.category().name()) != "websockets");

    co_await srv.stop();
  });
}

TEST_CASE("frames right behind the 101 are read, and the subscriber gets them") {
  run([](executor ex) -> asio::awaitable<void> {
    raw_server s{ex};
    auto serving = [](raw_server& srv) -> asio::awaitable<void> {
      const std::string key = co_await srv.accept();
      co_await srv.peer().write(websockets::accept_response(key) + server_frame(opcode::text, "welcome"));
    };
    asio::co_spawn(ex, serving(s), asio::detached);
    auto client = co_await websockets::connect(ex, s.url());
    auto inbox = client->messages(); // before the next co_await: nothing is missed
    CHECK((co_await next(inbox)).text() == "welcome");
  });
}

TEST_CASE("a masked frame from a server is a protocol error: the client closes with 1002") {
  run([](executor ex) -> asio::awaitable<void> {
    raw_server s{ex};
    asio::co_spawn(ex, [](raw_server& srv) -> asio::awaitable<void> {
      const std::string k = co_await srv.accept();
      co_await srv.peer().write(websockets::accept_response(k));
    }(s), asio::detached);
    auto client = co_await websockets::connect(ex, s.url());
    auto events = client->events();
    co_await s.peer().write(server_frame(opcode::text, "hidden", true));
    auto error = co_await next_of<websockets::error_event>(events);
    CHECK(error.error == websockets::error::masked_frame);
    CHECK((co_await next_of<websockets::close_event>(events)).code == 1002);
    auto frame = co_await s.peer().read_frame();
    REQUIRE(frame);
    CHECK(frame->opcode == opcode::close);
    CHECK(close_code_of(frame->payload) == 1002);
  });
}

TEST_CASE("a server that never answers the close: close() times out and reports 1006") {
  run([](executor ex) -> asio::awaitable<void> {
    raw_server s{ex};
    asio::co_spawn(ex, [](raw_server& srv) -> asio::awaitable<void> {
      const std::string k = co_await srv.accept();
      co_await srv.peer().write(websockets::accept_response(k));
    }(s), asio::detached);
    const websockets::connect_options quick{.close_timeout = std::chrono::milliseconds{200}};
    auto client = co_await websockets::connect(ex, s.url(), quick);
    auto events = client->events();
    auto ec = co_await client->close(close_code::going_away, "leaving");
    CHECK(ec == std::errc::timed_out);
    CHECK((co_await next_of<websockets::close_event>(events)).code == 1006);
    auto frame = co_await s.peer().read_frame();
    REQUIRE(frame);
    CHECK(frame->opcode == opcode::close);
    CHECK(close_code_of(frame->payload) == 1001);
    CHECK(frame->payload.substr(2) == "leaving");
  });
}

TEST_CASE("a client's idle timeout pings a silent server, then gives up") {
  run([](executor ex) -> asio::awaitable<void> {
    raw_server s{ex};
    asio::co_spawn(ex, [](raw_server& srv) -> asio::awaitable<void> {
      const std::string k = co_await srv.accept();
      co_await srv.peer().write(websockets::accept_response(k));
    }(s), asio::detached);
    const websockets::connect_options idle{.close_timeout = std::chrono::milliseconds{200},
                                           .timeout = std::chrono::milliseconds{150}};
    auto client = co_await websockets::connect(ex, s.url(), idle);
    auto events = client->events();
    auto ping = co_await s.peer().read_frame();
    REQUIRE(ping);
    CHECK(ping->opcode == opcode::ping);
    auto error = co_await next_of<websockets::error_event>(events);
    CHECK(error.error == std::errc::timed_out);
    CHECK((co_await next_of<websockets::close_event>(events)).code == 1006);
  });
}
