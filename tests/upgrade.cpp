#include <doctest/doctest.h>

#include "support.hpp"
#include <websockets/upgrade.hpp>

#include <cctype>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace websockets;
using namespace std::string_view_literals;

namespace {

using test_support::rfc_request;

constexpr std::string_view rfc_response =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "Sec-WebSocket-Protocol: chat\r\n"
    "\r\n";

// The smallest valid upgrade request; each rule's test changes one thing in it.
constexpr std::string_view minimal_request =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

http_head parse(std::string_view text, http_kind kind = http_kind::request) {
  http_parser parser(kind);
  const auto r = parser.feed(text);
  REQUIRE(r.state == http_parser::status::complete);
  REQUIRE(r.consumed == text.size());
  return parser.take_head();
}

// `text` with `from` (which must be there) replaced by `to`.
std::string replaced(std::string_view text, std::string_view from, std::string_view to) {
  std::string s(text);
  const auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  s.replace(at, from.size(), to);
  return s;
}

upgrade_check check_text(std::string_view text) { return check_upgrade(parse(text)); }

// Checks that `text` breaks exactly the rule for `expected`, answered with `status`.
void expect_rejected(std::string_view text, error expected, unsigned status) {
  CAPTURE(text);
  const auto check = check_text(text);
  CHECK_FALSE(check);
  CHECK(check.failure == expected);
  CHECK(http_status_for(check.failure) == status);
  // The request is kept for whoever answers it.
  CHECK(check.request.head().raw() == text);
}

// The head of a response, which may have a body behind it.
http_head response_of(std::string_view text) {
  http_parser parser(http_kind::response);
  REQUIRE(parser.feed(text).state == http_parser::status::complete);
  return parser.take_head();
}

// What the headers of a response say, by name.
std::string field(const std::string& message, std::string_view name, http_kind kind = http_kind::response) {
  http_parser p(kind);
  REQUIRE(p.feed(message).state == http_parser::status::complete);
  return p.head().header(name);
}

} // namespace

TEST_CASE("parse_extensions reads names, parameters and quoted values") {
  const auto list = parse_extensions(
      "permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\" ,, "
      "x-foo ;a=b;c, permessage-deflate");
  REQUIRE(list);
  REQUIRE(list->size() == 3);
  const auto& first = (*list)[0];
  CHECK(first.name == "permessage-deflate");
  REQUIRE(first.parameters.size() == 2);
  CHECK(first.parameters[0].name == "client_max_window_bits");
  CHECK(!first.parameters[0].value);
  CHECK(first.parameters[1].name == "server_max_window_bits");
  CHECK(first.parameters[1].value == "10");
  const auto& second = (*list)[1];
  CHECK(second.name == "x-foo");
  REQUIRE(second.parameters.size() == 2);
  CHECK(second.parameters[0].value == "b");
  CHECK(!second.parameters[1].value);
  CHECK((*list)[2].parameters.empty());

  CHECK(parse_extensions("")->empty());
  CHECK(parse_extensions(" , ")->empty());
  CHECK(parse_extensions("a; b=\"x\\y\"")->front().parameters.front().value == "xy");
  for (const auto bad : {"a b", ";a", "a;", "a; =1", "a; b=", "a; b=\"\"", "a; b=\"x y\"", "a; b=\"open",
                         "a; b=c d", "a,, b c", "a=1", "a; b==c"})
    CHECK_MESSAGE(!parse_extensions(bad), bad);
}

TEST_CASE("cookies are read from every Cookie line, unquoted") {
  http_parser parser{http_kind::request};
  std::string request{rfc_request};
  request.insert(request.size() - 2, "Cookie: theme=dark;session=\"abc\"\r\nCookie:  lang = en \r\n");
  REQUIRE(parser.feed(request).state == http_parser::status::complete);
  const auto check = check_upgrade(parser.take_head());
  REQUIRE(check);
  CHECK(check.request.cookie("theme") == "dark");
  CHECK(check.request.cookie("session") == "abc");
  CHECK(check.request.cookie("lang") == "en");
  CHECK(!check.request.cookie("them"));
  CHECK(!check.request.cookie("dark"));
}

TEST_CASE("accept_key gives the RFC 6455 example") {
  CHECK(accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // Also for a key that is not valid (the server never gets this far with one), and
  // the empty key: SHA-1 of the GUID alone.
  CHECK(accept_key("").size() == 28);
  CHECK(accept_key("x") != accept_key("y"));
}

TEST_CASE("the RFC 6455 sample request is accepted and answered byte for byte") {
  const auto check = check_text(rfc_request);
  REQUIRE(check);
  CHECK(check.failure == error{});
  const auto& req = check.request;
  CHECK(req.key() == "dGhlIHNhbXBsZSBub25jZQ==");
  REQUIRE(req.subprotocols().size() == 2);
  CHECK(req.subprotocols()[0] == "chat");
  CHECK(req.subprotocols()[1] == "superchat");
  CHECK(req.extensions().empty());
  REQUIRE(req.origin().has_value());
  CHECK(*req.origin() == "http://example.com");
  CHECK(req.head().target() == "/chat");
  CHECK(req.head().target_url().path() == "/chat");
  CHECK(req.head().header("Host") == "server.example.com");

  const auto response = accept_response(req.key(), {.subprotocol = req.subprotocols()[0]});
  CHECK(response == rfc_response);
}

TEST_CASE("the minimal request is accepted; absent options are empty") {
  const auto check = check_text(minimal_request);
  REQUIRE(check);
  CHECK(check.request.subprotocols().empty());
  CHECK(check.request.extensions().empty());
  CHECK_FALSE(check.request.origin().has_value());
  CHECK(accept_response(check.request.key()) ==
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "\r\n");
}

TEST_CASE("the upgrade request outlives the parser and the text") {
  upgrade_check check;
  {
    std::string text(rfc_request);
    http_parser p(http_kind::request);
    REQUIRE(p.feed(text).state == http_parser::status::complete);
    check = check_upgrade(p.take_head());
    text.assign(text.size(), 'x');
  }
  const auto moved = std::move(check);
  REQUIRE(moved);
  CHECK(moved.request.key() == "dGhlIHNhbXBsZSBub25jZQ==");
  CHECK(moved.request.head().target() == "/chat");
  CHECK(moved.request.subprotocols()[1] == "superchat");
}

// ---- One test per rule, in the order they are checked ----

TEST_CASE("rule: the method is GET") {
  expect_rejected(replaced(minimal_request, "GET ", "POST "), error::bad_method, 400);
  expect_rejected(replaced(minimal_request, "GET ", "HEAD "), error::bad_method, 400);
  // Methods are case-sensitive (RFC 9110 section 9.1).
  expect_rejected(replaced(minimal_request, "GET ", "get "), error::bad_method, 400);
}

TEST_CASE("rule: the version is HTTP/1.1 or later") {
  expect_rejected(replaced(minimal_request, "HTTP/1.1", "HTTP/1.0"), error::bad_http_version, 400);
  CHECK(check_text(replaced(minimal_request, "HTTP/1.1", "HTTP/1.2")));
}

TEST_CASE("rule: Host is present") {
  expect_rejected(replaced(minimal_request, "Host: server.example.com\r\n", ""), error::missing_host, 400);
  expect_rejected(replaced(minimal_request, "Host: server.example.com\r\n", "Host:\r\n"), error::missing_host, 400);
  CHECK(check_text(replaced(minimal_request, "Host: server.example.com", "hOST: h:8080")));
}

TEST_CASE("rule: Upgrade lists websocket (else a plain HTTP request, 426)") {
  expect_rejected(replaced(minimal_request, "Upgrade: websocket\r\n", ""), error::not_upgrade, 426);
  expect_rejected(replaced(minimal_request, "Upgrade: websocket", "Upgrade: h2c"), error::not_upgrade, 426);
  expect_rejected(replaced(minimal_request, "Upgrade: websocket", "Upgrade: websockets"), error::not_upgrade, 426);
  expect_rejected(replaced(minimal_request, "Upgrade: websocket", "Upgrade:"), error::not_upgrade, 426);
  // A plain request keeps what an HTTP handler needs.
  const auto plain = check_text("GET /index.html?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(plain.failure == error::not_upgrade);
  CHECK(plain.request.head().target_url().path() == "/index.html");
  CHECK(plain.request.key().empty());
}

TEST_CASE("rule: Connection lists upgrade") {
  expect_rejected(replaced(minimal_request, "Connection: Upgrade\r\n", ""), error::missing_connection_upgrade, 400);
  expect_rejected(replaced(minimal_request, "Connection: Upgrade", "Connection: keep-alive"),
                  error::missing_connection_upgrade, 400);
  expect_rejected(replaced(minimal_request, "Connection: Upgrade", "Connection: upgraded"),
                  error::missing_connection_upgrade, 400);
}

TEST_CASE("rule: Sec-WebSocket-Version is exactly 13 (426)") {
  expect_rejected(replaced(minimal_request, "Sec-WebSocket-Version: 13\r\n", ""), error::bad_version, 426);
  expect_rejected(replaced(minimal_request, "Version: 13", "Version: 8"), error::bad_version, 426);
  expect_rejected(replaced(minimal_request, "Version: 13", "Version: 13, 8"), error::bad_version, 426);
  expect_rejected(replaced(minimal_request, "Version: 13", "Version: 013"), error::bad_version, 426);
  expect_rejected(replaced(minimal_request, "Version: 13\r\n", "Version: 13\r\nSec-WebSocket-Version: 13\r\n"),
                  error::bad_version, 426);
  // Trimmed whitespace is not part of the value.
  CHECK(check_text(replaced(minimal_request, "Version: 13", "Version: \t13 ")));
  // The 426 answer names the version this server speaks.
  const auto answer = rejection_response(error::bad_version);
  CHECK(answer.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
  CHECK(field(answer, "Sec-WebSocket-Version") == "13");
}

TEST_CASE("rule: Sec-WebSocket-Key appears once, base64 of 16 bytes") {
  const auto with_key = [](std::string_view key) {
    return replaced(minimal_request, "dGhlIHNhbXBsZSBub25jZQ==", key);
  };
  SUBCASE("missing") {
    expect_rejected(replaced(minimal_request, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                    error::bad_key, 400);
  }
  SUBCASE("empty") { expect_rejected(with_key(""), error::bad_key, 400); }
  SUBCASE("15 bytes") { expect_rejected(with_key("AAECAwQFBgcICQoLDA0O"), error::bad_key, 400); }
  SUBCASE("17 bytes") { expect_rejected(with_key("AAECAwQFBgcICQoLDA0ODxA="), error::bad_key, 400); }
  SUBCASE("16 bytes is right") { CHECK(check_text(with_key("AAECAwQFBgcICQoLDA0ODw=="))); }
  SUBCASE("not base64") {
    expect_rejected(with_key("dGhlIHNhbXBsZSBub25jZQ!="), error::bad_key, 400);
    expect_rejected(with_key("dGhlIHNhbXBsZSBub25jZQ-_"), error::bad_key, 400); // base64url
    expect_rejected(with_key("dGhlIHNhbXBs ZSBub25jZQ=="), error::bad_key, 400);
    expect_rejected(with_key("the sample nonce"), error::bad_key, 400);
  }
  SUBCASE("without its padding") { expect_rejected(with_key("dGhlIHNhbXBsZSBub25jZQ"), error::bad_key, 400); }
  SUBCASE("padding in the middle") { expect_rejected(with_key("dGhl=HNhbXBsZSBub25jZQ="), error::bad_key, 400); }
  SUBCASE("non-zero bits under the padding") {
    expect_rejected(with_key("dGhlIHNhbXBsZSBub25jZR=="), error::bad_key, 400);
  }
  SUBCASE("twice, even the same") {
    expect_rejected(replaced(minimal_request, "Sec-WebSocket-Version",
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version"),
                    error::bad_key, 400);
    expect_rejected(replaced(minimal_request, "Sec-WebSocket-Version",
                             "sec-websocket-key: AAECAwQFBgcICQoLDA0ODw==\r\nSec-WebSocket-Version"),
                    error::bad_key, 400);
  }
}

TEST_CASE("rule: Sec-WebSocket-Protocol is a list of tokens") {
  expect_rejected(replaced(minimal_request, "\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat, \"super chat\"\r\n\r\n"),
                  error::malformed_request, 400);
  const auto ok = check_text(replaced(minimal_request, "\r\n\r\n",
                                      "\r\nSec-WebSocket-Protocol: a,, b\r\nsec-websocket-protocol: c\r\n\r\n"));
  REQUIRE(ok);
  CHECK(ok.request.subprotocols().size() == 3);
  CHECK(ok.request.subprotocols()[2] == "c");
}

TEST_CASE("rules are checked in order: the first broken one is reported") {
  std::string text(minimal_request);
  text = replaced(text, "dGhlIHNhbXBsZSBub25jZQ==", "short");
  CHECK(check_text(text).failure == error::bad_key);
  text = replaced(text, "Version: 13", "Version: 8");
  CHECK(check_text(text).failure == error::bad_version);
  text = replaced(text, "Connection: Upgrade", "Connection: close");
  CHECK(check_text(text).failure == error::missing_connection_upgrade);
  text = replaced(text, "Upgrade: websocket", "Upgrade: h2c");
  CHECK(check_text(text).failure == error::not_upgrade);
  text = replaced(text, "Host: server.example.com\r\n", "");
  CHECK(check_text(text).failure == error::missing_host);
  text = replaced(text, "HTTP/1.1", "HTTP/1.0");
  CHECK(check_text(text).failure == error::bad_http_version);
  text = replaced(text, "GET", "PUT");
  CHECK(check_text(text).failure == error::bad_method);
}

TEST_CASE("header names and tokens are matched in any case, across lines") {
  SUBCASE("UPGRADE: WebSocket") {
    CHECK(check_text(replaced(minimal_request, "Upgrade: websocket", "UPGRADE: WebSocket")));
  }
  SUBCASE("connection: keep-alive, Upgrade") {
    CHECK(check_text(replaced(minimal_request, "Connection: Upgrade", "connection: keep-alive, Upgrade")));
  }
  SUBCASE("repeated Connection lines") {
    CHECK(check_text(replaced(minimal_request, "Connection: Upgrade",
                              "Connection: keep-alive\r\nCONNECTION: UPGRADE")));
  }
  SUBCASE("Upgrade among other protocols") {
    CHECK(check_text(replaced(minimal_request, "Upgrade: websocket", "Upgrade: h2c, WEBSOCKET")));
  }
  SUBCASE("every name lower-case") {
    const auto check = check_text(
        "GET /chat HTTP/1.1\r\nhost: h\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
        "origin: https://o\r\nsec-websocket-extensions: permessage-deflate\r\n\r\n");
    REQUIRE(check);
    CHECK(*check.request.origin() == "https://o");
    CHECK(check.request.extensions() == "permessage-deflate");
  }
}

TEST_CASE("the extension offer is kept as text, all lines joined") {
  const auto check = check_text(replaced(
      minimal_request, "\r\n\r\n",
      "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
      "Sec-WebSocket-Extensions: x-foo\r\n\r\n"));
  REQUIRE(check);
  CHECK(check.request.extensions() == "permessage-deflate; client_max_window_bits, x-foo");
}

TEST_CASE("a response head is not an upgrade request") {
  const auto check = check_upgrade(response_of(rfc_response));
  CHECK(check.failure == error::malformed_request);
}

// ---- Building responses ----

TEST_CASE("the 101 response carries extensions and extra headers after the required fields") {
  const std::vector<http_header> extra = {{"Set-Cookie", "id=1; HttpOnly"}, {"X-Server", "test"}};
  const auto response = accept_response("dGhlIHNhbXBsZSBub25jZQ==",
                                        {.subprotocol = "chat",
                                         .extensions = "permessage-deflate; server_no_context_takeover",
                                         .extra_headers = extra});
  CHECK(response ==
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: chat\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
        "Set-Cookie: id=1; HttpOnly\r\n"
        "X-Server: test\r\n"
        "\r\n");
}

TEST_CASE("builders refuse fields that would split the response") {
  const auto key = "dGhlIHNhbXBsZSBub25jZQ=="sv;
  const std::vector<http_header> injected = {{"X-A", "a\r\nSet-Cookie: evil"}};
  const std::vector<http_header> bad_name = {{"X A", "a"}};
  const std::vector<http_header> reserved = {{"sec-websocket-accept", "x"}};
  CHECK_THROWS_AS((void)accept_response(key, {.extra_headers = injected}), std::invalid_argument);
  CHECK_THROWS_AS((void)accept_response(key, {.extra_headers = bad_name}), std::invalid_argument);
  CHECK_THROWS_AS((void)accept_response(key, {.extra_headers = reserved}), std::invalid_argument);
  CHECK_THROWS_AS((void)accept_response(key, {.subprotocol = "chat\r\nX: y"}), std::invalid_argument);
  CHECK_THROWS_AS((void)accept_response(key, {.subprotocol = "chat, superchat"}), std::invalid_argument);
  CHECK_THROWS_AS((void)accept_response(key, {.extensions = "x\ny"}), std::invalid_argument);
  CHECK_THROWS_AS((void)rejection_response(403, "no", injected), std::invalid_argument);
  const std::vector<http_header> length = {{"content-length", "0"}};
  CHECK_THROWS_AS((void)rejection_response(403, "no", length), std::invalid_argument);
}

TEST_CASE("rejections: status line, text body, Content-Length, Connection: close") {
  struct expectation {
    error failure;
    unsigned status;
    std::string_view status_line;
  };
  const expectation all[] = {
      {error::malformed_request, 400, "HTTP/1.1 400 Bad Request\r\n"},
      {error::bad_key, 400, "HTTP/1.1 400 Bad Request\r\n"},
      {error::forbidden, 403, "HTTP/1.1 403 Forbidden\r\n"},
      {error::not_found, 404, "HTTP/1.1 404 Not Found\r\n"},
      {error::not_upgrade, 426, "HTTP/1.1 426 Upgrade Required\r\n"},
      {error::bad_version, 426, "HTTP/1.1 426 Upgrade Required\r\n"},
      {error::head_too_large, 431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
      {error::too_many_connections, 503, "HTTP/1.1 503 Service Unavailable\r\n"},
  };
  for (const auto& e : all) {
    CAPTURE(e.status);
    const auto text = rejection_response(e.failure);
    CHECK(text.starts_with(e.status_line));
    http_parser p(http_kind::response);
    const auto r = p.feed(text);
    REQUIRE(r.state == http_parser::status::complete);
    const auto& head = p.head();
    CHECK(head.status() == e.status);
    CHECK(head.header_has_token("Connection", "close"));
    CHECK(head.header("Content-Type") == "text/plain; charset=utf-8");
    const auto body = std::string_view(text).substr(r.consumed);
    CHECK(head.header("Content-Length") == std::to_string(body.size()));
    CHECK(body == make_error_code(e.failure).message() + "\n");
    if (e.status == 426) {
      CHECK(head.header("Upgrade") == "websocket");
      CHECK(head.header("Sec-WebSocket-Version") == "13");
      // Upgrade is hop-by-hop (RFC 9110 section 7.8).
      CHECK(head.header_has_token("Connection", "upgrade"));
    } else {
      CHECK_FALSE(head.has_header("Upgrade"));
      CHECK_FALSE(head.has_header("Sec-WebSocket-Version"));
      CHECK(head.header("Connection") == "close");
    }
  }
}

TEST_CASE("a rejection with a status, a body of the caller's and extra headers") {
  const std::vector<http_header> extra = {{"Location", "/elsewhere"}};
  CHECK(rejection_response(302, "moved\n", extra) ==
        "HTTP/1.1 302 Found\r\n"
        "Connection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 6\r\n"
        "Location: /elsewhere\r\n"
        "\r\n"
        "moved\n");
  // No body: the reason phrase stands in.
  CHECK(rejection_response(404).ends_with("Content-Length: 10\r\n\r\nNot Found\n"));
  CHECK(rejection_response(418).starts_with("HTTP/1.1 418 Client Error\r\n"));
  CHECK_THROWS_AS((void)rejection_response(200), std::invalid_argument);
  CHECK_THROWS_AS((void)rejection_response(101), std::invalid_argument);
  CHECK_THROWS_AS((void)rejection_response(600), std::invalid_argument);
}

// ---- Client side ----

TEST_CASE("the client request passes the server's check") {
  const client_handshake client("ws://server.example.com/chat");
  CHECK(client.host() == "server.example.com");
  CHECK(client.port() == 80);
  CHECK_FALSE(client.secure());
  CHECK(client.target() == "/chat");
  CHECK(client.request() ==
        "GET /chat HTTP/1.1\r\n"
        "Host: server.example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: " + std::string(client.key()) + "\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n");
  const auto check = check_text(client.request());
  REQUIRE(check);
  CHECK(check.request.key() == client.key());
}

TEST_CASE("every client key is 16 fresh random bytes in base64") {
  std::set<std::string> keys;
  for (int i = 0; i < 64; ++i) {
    const client_handshake client("ws://h/");
    CHECK(client.key().size() == 24);
    CHECK(client.key().ends_with("=="));
    // The server's check decodes it to 16 bytes.
    REQUIRE(check_text(client.request()));
    keys.emplace(client.key());
  }
  CHECK(keys.size() == 64);
}

TEST_CASE("the client request: host, port, path and query from the URI") {
  SUBCASE("a non-default port appears in Host") {
    const client_handshake c("ws://example.com:8080/a/b?x=1&y=%26");
    CHECK(c.port() == 8080);
    CHECK(c.target() == "/a/b?x=1&y=%26");
    CHECK(field(std::string(c.request()), "Host", http_kind::request) == "example.com:8080");
    const auto head = parse(c.request());
    CHECK(head.target() == "/a/b?x=1&y=%26");
    CHECK(head.target_url().path() == "/a/b");
    CHECK((*head.target_url().params().find("y")).value == "&");
  }
  SUBCASE("the default port does not") {
    const client_handshake c("ws://example.com:80/");
    CHECK(c.port() == 80);
    CHECK(field(std::string(c.request()), "Host", http_kind::request) == "example.com");
  }
  SUBCASE("wss defaults to 443") {
    const client_handshake c("wss://example.com/secure");
    CHECK(c.secure());
    CHECK(c.port() == 443);
    CHECK(field(std::string(c.request()), "Host", http_kind::request) == "example.com");
    const client_handshake other("wss://example.com:80/");
    CHECK(other.port() == 80);
    CHECK(field(std::string(other.request()), "Host", http_kind::request) == "example.com:80");
  }
  SUBCASE("http and https stand for ws and wss") {
    CHECK_FALSE(client_handshake("http://h/").secure());
    CHECK(client_handshake("HTTPS://h/").secure());
  }
  SUBCASE("an empty path is /") {
    CHECK(client_handshake("ws://h").target() == "/");
    CHECK(client_handshake("ws://h?q=1").target() == "/?q=1");
    CHECK(client_handshake("ws://h/?").target() == "/?");
  }
  SUBCASE("an IPv6 literal keeps its brackets only in Host") {
    CHECK(client_handshake("ws://h:65535/").port() == 65535);
    const client_handshake c("ws://[::1]:9000/x");
    CHECK(c.host() == "::1");
    CHECK(c.port() == 9000);
    CHECK(field(std::string(c.request()), "Host", http_kind::request) == "[::1]:9000");
  }
  SUBCASE("user information is not sent") {
    const client_handshake c("ws://user:secret@h/");
    CHECK(c.request().find("secret") == std::string_view::npos);
    CHECK(c.host() == "h");
  }
}

TEST_CASE("the client refuses URIs that are not WebSocket URIs") {
  for (const auto uri : {"ftp://h/"sv, "ws://h/#frag"sv, "not a uri"sv, "ws:///path"sv, "ws:/path"sv,
                         "/chat"sv, "ws://h:99999/"sv, "ws://h:65536/"sv, "ws://h:0/"sv, ""sv}) {
    CAPTURE(uri);
    CHECK_THROWS_AS(client_handshake{uri}, std::invalid_argument);
  }
}

TEST_CASE("the client request carries origin, subprotocols, extensions and extra headers") {
  const client_handshake c("ws://h/chat", {.origin = "http://example.com",
                                            .subprotocols = {"chat", "superchat"},
                                            .extensions = "permessage-deflate; client_max_window_bits",
                                            .extra_headers = {{"Authorization", "Bearer t"}}});
  const auto check = check_text(c.request());
  REQUIRE(check);
  CHECK(*check.request.origin() == "http://example.com");
  REQUIRE(check.request.subprotocols().size() == 2);
  CHECK(check.request.subprotocols()[1] == "superchat");
  CHECK(check.request.extensions() == "permessage-deflate; client_max_window_bits");
  CHECK(check.request.head().header("authorization") == "Bearer t");
  CHECK(c.request().ends_with("Sec-WebSocket-Protocol: chat, superchat\r\n"
                              "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                              "Authorization: Bearer t\r\n\r\n"));
}

TEST_CASE("the client refuses options that would not make valid HTTP") {
  CHECK_THROWS_AS(client_handshake("ws://h/", {.subprotocols = {"a b"}}), std::invalid_argument);
  CHECK_THROWS_AS(client_handshake("ws://h/", {.subprotocols = {"chat", "chat"}}), std::invalid_argument);
  CHECK_THROWS_AS(client_handshake("ws://h/", {.subprotocols = {""}}), std::invalid_argument);
  CHECK_THROWS_AS(client_handshake("ws://h/", {.origin = "http://x\r\nX: y"}), std::invalid_argument);
  CHECK_THROWS_AS(client_handshake("ws://h/", {.extensions = "bad name"}), std::invalid_argument);
  CHECK_THROWS_AS(client_handshake("ws://h/", {.extensions = "x; a=\"unterminated"}), std::invalid_argument);
  CHECK_THROWS_AS(client_handshake("ws://h/", {.extra_headers = {{"Sec-WebSocket-Key", "x"}}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(client_handshake("ws://h/", {.extra_headers = {{"X", "a\nb"}}}), std::invalid_argument);
}

TEST_CASE("round trip: client request, server check and 101, client check") {
  const client_handshake client("wss://example.com:8443/chat?room=1",
                                {.origin = "https://example.com",
                                 .subprotocols = {"v2.chat", "v1.chat"},
                                 .extensions = "permessage-deflate; client_max_window_bits, x-other"});
  // The server reads the request in pieces, as it would from a socket.
  http_parser server_parser(http_kind::request);
  const auto request = client.request();
  REQUIRE(server_parser.feed(request.substr(0, 10)).state == http_parser::status::need_more);
  REQUIRE(server_parser.feed(request.substr(10)).state == http_parser::status::complete);
  const auto check = check_upgrade(server_parser.take_head());
  REQUIRE(check);
  CHECK(check.request.head().target_url().path() == "/chat");
  CHECK(check.request.head().header("Host") == "example.com:8443");
  const auto response =
      accept_response(check.request.key(), {.subprotocol = check.request.subprotocols()[1],
                                            .extensions = "permessage-deflate"});

  // The client reads the response, frames right behind it.
  const std::string wire = response + "\x81\x02hi";
  http_parser client_parser(http_kind::response);
  const auto r = client_parser.feed(wire);
  REQUIRE(r.state == http_parser::status::complete);
  CHECK(std::string_view(wire).substr(r.consumed) == "\x81\x02hi");
  const auto result = client.check(client_parser.head());
  REQUIRE(result);
  CHECK(result.subprotocol == "v1.chat");
  CHECK(result.extensions == "permessage-deflate");

  SUBCASE("nothing chosen") {
    const auto plain = client.check(response_of(accept_response(client.key())));
    REQUIRE(plain);
    CHECK(plain.subprotocol.empty());
    CHECK(plain.extensions.empty());
  }
}

TEST_CASE("client check: each way a response can fail") {
  const client_handshake client("ws://h/", {.subprotocols = {"chat", "superchat"},
                                             .extensions = "permessage-deflate; client_max_window_bits"});
  const std::string good = accept_response(client.key(), {.subprotocol = "chat", .extensions = "permessage-deflate"});
  REQUIRE(client.check(response_of(good)));
  const auto expect = [&](std::string_view text, error e) {
    CAPTURE(text);
    const auto result = client.check(response_of(text));
    CHECK_FALSE(result);
    CHECK(result.failure == e);
  };

  SUBCASE("bad_status") {
    expect(replaced(good, "101 Switching Protocols", "200 OK"), error::bad_status);
    expect(replaced(good, "101 Switching Protocols", "100 Continue"), error::bad_status);
    expect(rejection_response(error::bad_version), error::bad_status);
    expect(rejection_response(error::forbidden), error::bad_status);
    expect("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n", error::bad_status);
  }
  SUBCASE("bad_upgrade_response") {
    expect(replaced(good, "Upgrade: websocket\r\n", ""), error::bad_upgrade_response);
    expect(replaced(good, "Upgrade: websocket", "Upgrade: h2c"), error::bad_upgrade_response);
    expect(replaced(good, "Connection: Upgrade\r\n", ""), error::bad_upgrade_response);
    expect(replaced(good, "Connection: Upgrade", "Connection: keep-alive"), error::bad_upgrade_response);
  }
  SUBCASE("bad_accept") {
    const auto accept = accept_key(client.key());
    expect(replaced(good, "Sec-WebSocket-Accept: " + accept + "\r\n", ""), error::bad_accept);
    expect(replaced(good, accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), error::bad_accept);
    expect(replaced(good, accept, ""), error::bad_accept);
    std::string lower = accept;
    for (auto& c : lower)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower != accept)
      expect(replaced(good, accept, lower), error::bad_accept);
    // Echoing the key, as a server that skips the hash would.
    expect(replaced(good, accept, client.key()), error::bad_accept);
    expect(replaced(good, "\r\n\r\n", "\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"), error::bad_accept);
  }
  SUBCASE("unrequested_extension") {
    expect(replaced(good, "permessage-deflate", "x-webkit-deflate-frame"), error::unrequested_extension);
    expect(replaced(good, "permessage-deflate", "permessage-deflate, x-other"), error::unrequested_extension);
    expect(replaced(good, "permessage-deflate", "bad name"), error::unrequested_extension);
    const client_handshake no_offer("ws://h/");
    CHECK(no_offer.check(response_of(accept_response(no_offer.key(), {.extensions = "permessage-deflate"}))).failure ==
          error::unrequested_extension);
    // Parameters (quoted ones too) do not confuse the names; a quoted value must still
    // be a token once unquoted (RFC 6455 section 9.1).
    CHECK(client.check(response_of(replaced(good, "permessage-deflate",
                                            "permessage-deflate; x=\"a\\b\"; server_max_window_bits=10"))));
    expect(replaced(good, "permessage-deflate", "permessage-deflate; x=\"a, b\""), error::unrequested_extension);
  }
  SUBCASE("unrequested_subprotocol") {
    expect(replaced(good, "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: other"),
           error::unrequested_subprotocol);
    expect(replaced(good, "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: chat, superchat"),
           error::unrequested_subprotocol);
    expect(replaced(good, "Sec-WebSocket-Protocol: chat",
                    "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat"),
           error::unrequested_subprotocol);
    expect(replaced(good, "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: Chat"),
           error::unrequested_subprotocol);
    expect(replaced(good, "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol:"),
           error::unrequested_subprotocol);
    const client_handshake no_offer("ws://h/");
    CHECK(no_offer.check(response_of(accept_response(no_offer.key(), {.subprotocol = "chat"}))).failure ==
          error::unrequested_subprotocol);
  }
  SUBCASE("a request head is not a response") {
    CHECK(client.check(parse(minimal_request)).failure == error::malformed_response);
  }
}

TEST_CASE("client check: names and tokens in any case") {
  const client_handshake client("ws://h/");
  const auto text = "HTTP/1.1 101 Whatever\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive\r\nconnection: UPGRADE\r\n"
                    "sec-websocket-accept: " + accept_key(client.key()) + "\r\n\r\n";
  CHECK(client.check(response_of(text)));
}
