#include <doctest/doctest.h>

#include "support.hpp"
#include <websockets/http.hpp>

#include <boost/url/url_view.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

using namespace websockets;
using namespace std::string_view_literals;
using status = http_parser::status;

namespace {

constexpr std::string_view sample_request = test_support::rfc_request;

http_head parse(std::string_view text, http_kind kind = http_kind::request) {
  http_parser parser(kind);
  const auto r = parser.feed(text);
  REQUIRE(r.state == status::complete);
  REQUIRE(r.consumed == text.size());
  return parser.take_head();
}

error parse_error(std::string_view text, http_kind kind = http_kind::request) {
  http_parser parser(kind);
  const auto r = parser.feed(text);
  REQUIRE(r.state == status::failed);
  CHECK(parser.state() == status::failed);
  return parser.failure();
}

// A request of exactly `size` bytes (size >= 40), padded in one header value.
std::string request_of_size(std::size_t size) {
  const std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
  const std::string tail = "\r\n\r\n";
  REQUIRE(size >= head.size() + tail.size() + 1);
  return head + std::string(size - head.size() - tail.size(), 'p') + tail;
}

void check_same(const http_head& a, const http_head& b) {
  CHECK(a.raw() == b.raw());
  CHECK(a.kind() == b.kind());
  CHECK(a.method() == b.method());
  CHECK(a.target() == b.target());
  CHECK(a.version_major() == b.version_major());
  CHECK(a.version_minor() == b.version_minor());
  CHECK(a.status() == b.status());
  CHECK(a.reason() == b.reason());
  REQUIRE(a.headers().size() == b.headers().size());
  for (std::size_t i = 0; i < a.headers().size(); ++i) {
    CHECK(a.headers()[i].name == b.headers()[i].name);
    CHECK(a.headers()[i].value == b.headers()[i].value);
  }
}

// Every view of `h` lies inside h.raw(): nothing dangles into another object's bytes.
void check_views_inside(const http_head& h) {
  const auto inside = [&](std::string_view v) {
    return v.empty() || (v.data() >= h.raw().data() && v.data() + v.size() <= h.raw().data() + h.raw().size());
  };
  CHECK(inside(h.method()));
  CHECK(inside(h.target()));
  CHECK(inside(h.reason()));
  for (const auto& f : h.headers()) {
    CHECK(inside(f.name));
    CHECK(inside(f.value));
  }
}

} // namespace

TEST_CASE("iequals and is_token") {
  CHECK(iequals("Upgrade", "uPGRADE"));
  CHECK(iequals("", ""));
  CHECK_FALSE(iequals("upgrade", "upgrades"));
  CHECK_FALSE(iequals("a", "b"));
  // Only ASCII letters fold: '@' and '`' are next to 'A' and 'a'.
  CHECK_FALSE(iequals("@", "`"));
  CHECK(is_token("websocket"));
  CHECK(is_token("!#$%&'*+-.^_`|~09azAZ"));
  CHECK_FALSE(is_token(""));
  CHECK_FALSE(is_token("a b"));
  CHECK_FALSE(is_token("a:b"));
  CHECK_FALSE(is_token("a\"b"));
  CHECK_FALSE(is_token("caf\xC3\xA9"));
}

TEST_CASE("a request head is parsed into method, target, version and headers in order") {
  const auto h = parse(sample_request);
  CHECK(h.kind() == http_kind::request);
  CHECK(h.method() == "GET");
  CHECK(h.target() == "/chat");
  CHECK(h.version_major() == 1);
  CHECK(h.version_minor() == 1);
  CHECK(h.status() == 0);
  CHECK(h.reason().empty());
  CHECK(h.raw() == sample_request);
  REQUIRE(h.headers().size() == 7);
  CHECK(h.headers()[0].name == "Host");
  CHECK(h.headers()[0].value == "server.example.com");
  CHECK(h.headers()[4].name == "Origin");
  CHECK(h.headers()[6].name == "Sec-WebSocket-Version");
  CHECK(h.headers()[6].value == "13");
  check_views_inside(h);
}

TEST_CASE("optional whitespace around values is trimmed, inner whitespace kept") {
  const auto h = parse("GET / HTTP/1.1\r\nHost:h\r\nA: \t x  y \t\r\nB:\r\nC:   \r\n\r\n");
  CHECK(h.header("host") == "h");
  CHECK(h.header("a") == "x  y");
  CHECK(h.has_header("B"));
  CHECK(h.header("B").empty());
  CHECK(h.has_header("C"));
  CHECK(h.header("C").empty());
}

TEST_CASE("obs-text in a value is accepted") {
  const auto h = parse("GET / HTTP/1.1\r\nHost: h\r\nX-Name: J\xC3\xBCrgen\r\n\r\n");
  CHECK(h.header("x-name") == "J\xC3\xBCrgen");
}

TEST_CASE("HTTP/1.0 and other 1.x versions are read; the handshake judges them") {
  CHECK(parse("GET / HTTP/1.0\r\n\r\n").version_minor() == 0);
  CHECK(parse("GET / HTTP/1.9\r\nHost: h\r\n\r\n").version_minor() == 9);
}

TEST_CASE("a response head is parsed into version, status and reason") {
  const auto h = parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", http_kind::response);
  CHECK(h.kind() == http_kind::response);
  CHECK(h.status() == 101);
  CHECK(h.reason() == "Switching Protocols");
  CHECK(h.version_major() == 1);
  CHECK(h.version_minor() == 1);
  CHECK(h.method().empty());
  CHECK(h.target().empty());
  CHECK(h.target_url().empty());
  CHECK(h.header("upgrade") == "websocket");

  SUBCASE("an empty reason") {
    const auto e = parse("HTTP/1.1 404 \r\n\r\n", http_kind::response);
    CHECK(e.status() == 404);
    CHECK(e.reason().empty());
  }
  SUBCASE("no reason and no space after the code") {
    const auto e = parse("HTTP/1.0 200\r\n\r\n", http_kind::response);
    CHECK(e.status() == 200);
    CHECK(e.version_minor() == 0);
  }
  SUBCASE("a reason with spaces, tabs and obs-text") {
    CHECK(parse("HTTP/1.1 500 It \tbroke \xE2\x9C\x97\r\n\r\n", http_kind::response).reason() ==
          "It \tbroke \xE2\x9C\x97");
  }
}

TEST_CASE("header lookup ignores case and sees every line") {
  const auto h = parse("GET / HTTP/1.1\r\nHost: h\r\nX-List: a\r\nx-list: b, c\r\nX-LIST: d\r\nOther: z\r\n\r\n");
  CHECK(h.header_count("X-List") == 3);
  CHECK(h.header_count("x-LIST") == 3);
  CHECK(h.header_count("missing") == 0);
  CHECK(h.has_header("OTHER"));
  CHECK_FALSE(h.has_header("missing"));
  CHECK(h.header("missing").empty());
  // RFC 9110 section 5.3: lines combine in order, comma-separated.
  CHECK(h.header("X-List") == "a, b, c, d");
  const auto values = h.header_values("X-list");
  REQUIRE(values.size() == 3);
  CHECK(values[0] == "a");
  CHECK(values[1] == "b, c");
  CHECK(values[2] == "d");
  CHECK(h.header_values("missing").empty());
  // Names keep the case they were sent in.
  CHECK(h.headers()[2].name == "x-list");
}

TEST_CASE("token lists are searched across lines, ignoring case and whitespace") {
  const auto h = parse(
      "GET / HTTP/1.1\r\nHost: h\r\n"
      "Connection: keep-alive, Upgrade\r\n"
      "UPGRADE: WebSocket\r\n"
      "X-A: one\r\n"
      "x-a: two ,\tThree\t, , ,four\r\n"
      "X-B: upgrades, notupgrade, upgrade-x, \"upgrade\"\r\n"
      "X-C:\r\n"
      "\r\n");
  CHECK(h.header_has_token("connection", "upgrade"));
  CHECK(h.header_has_token("Connection", "KEEP-ALIVE"));
  CHECK(h.header_has_token("Upgrade", "websocket"));
  CHECK(h.header_has_token("X-A", "one"));
  CHECK(h.header_has_token("X-A", "two"));
  CHECK(h.header_has_token("X-A", "three"));
  CHECK(h.header_has_token("X-A", "four"));
  CHECK_FALSE(h.header_has_token("X-A", "five"));
  CHECK_FALSE(h.header_has_token("X-B", "upgrade"));
  CHECK_FALSE(h.header_has_token("X-C", "upgrade"));
  CHECK_FALSE(h.header_has_token("Missing", "upgrade"));
  CHECK_FALSE(h.header_has_token("Connection", "close"));
}

TEST_CASE("repeated Connection lines are all searched") {
  const auto h = parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nconnection: Upgrade\r\n\r\n");
  CHECK(h.header_has_token("Connection", "upgrade"));
  CHECK(h.header_has_token("Connection", "keep-alive"));
}

TEST_CASE("the target is exposed through Boost.URL: path and percent-encoded query") {
  const auto h = parse("GET /chat/room%201/?name=J%C3%BCrgen&x=a%26b&flag HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(h.target() == "/chat/room%201/?name=J%C3%BCrgen&x=a%26b&flag");
  const auto url = h.target_url();
  CHECK(url.encoded_path() == "/chat/room%201/");
  CHECK(url.path() == "/chat/room 1/");
  CHECK(url.has_query());
  CHECK(url.encoded_query() == "name=J%C3%BCrgen&x=a%26b&flag");
  const auto params = url.params();
  CHECK(params.size() == 3);
  REQUIRE(params.find("name") != params.end());
  CHECK((*params.find("name")).value == "J\xC3\xBCrgen");
  REQUIRE(params.find("x") != params.end());
  CHECK((*params.find("x")).value == "a&b");
  CHECK(params.contains("flag"));
  CHECK_FALSE((*params.find("flag")).has_value);
  const auto segments = url.segments();
  REQUIRE(segments.size() == 3);
  CHECK(*segments.begin() == "chat");
  CHECK(*std::next(segments.begin()) == "room 1");

  SUBCASE("a plain path has no query") {
    const auto head = parse("GET /a/b HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(head.target_url().path() == "/a/b");
    CHECK_FALSE(head.target_url().has_query());
  }
  SUBCASE("absolute-form, as sent to a proxy") {
    const auto a = parse("GET http://example.com:8080/chat?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
    CHECK(a.target() == "http://example.com:8080/chat?x=1");
    CHECK(a.target_url().path() == "/chat");
    CHECK(a.target_url().query() == "x=1");
    CHECK(a.target_url().host() == "example.com");
  }
}

TEST_CASE("the head limit: exactly at the limit passes, one byte more fails at once") {
  constexpr std::size_t limit = 100;
  const auto exact = request_of_size(limit);
  REQUIRE(exact.size() == limit);

  http_parser at_limit(http_kind::request, limit);
  auto r = at_limit.feed(exact);
  CHECK(r.state == status::complete);
  CHECK(r.consumed == limit);

  const auto over = request_of_size(limit + 1);
  SUBCASE("all at once") {
    http_parser p(http_kind::request, limit);
    r = p.feed(over);
    CHECK(r.state == status::failed);
    CHECK(p.failure() == error::head_too_large);
    CHECK(r.consumed == limit);
  }
  SUBCASE("without the rest: the first `limit` bytes are enough to know") {
    http_parser p(http_kind::request, limit);
    r = p.feed(std::string_view(over).substr(0, limit));
    CHECK(r.state == status::failed);
    CHECK(p.failure() == error::head_too_large);
  }
  SUBCASE("a byte at a time") {
    http_parser p(http_kind::request, limit);
    for (std::size_t i = 0; i < limit - 1; ++i)
      REQUIRE(p.feed(std::string_view(over).substr(i, 1)).state == status::need_more);
    r = p.feed(std::string_view(over).substr(limit - 1, 1));
    CHECK(r.state == status::failed);
    CHECK(p.failure() == error::head_too_large);
  }
  SUBCASE("bytes that never end a line") {
    http_parser p(http_kind::request, limit);
    r = p.feed(std::string(limit * 3, 'G'));
    CHECK(r.state == status::failed);
    CHECK(p.failure() == error::head_too_large);
    CHECK(r.consumed == limit);
  }
  SUBCASE("a limit of zero takes nothing") {
    http_parser p(http_kind::request, 0);
    r = p.feed("G");
    CHECK(r.state == status::failed);
    CHECK(p.failure() == error::head_too_large);
  }
}

TEST_CASE("the default head limit is 8 KiB") {
  CHECK(default_max_http_head == 8192);
  http_parser ok(http_kind::request);
  CHECK(ok.feed(request_of_size(8192)).state == status::complete);
  http_parser too_big(http_kind::request);
  CHECK(too_big.feed(request_of_size(8193)).state == status::failed);
  CHECK(too_big.failure() == error::head_too_large);
  // For responses too.
  http_parser response(http_kind::response);
  CHECK(response.feed("HTTP/1.1 101 OK\r\nX: " + std::string(9000, 'x')).state == status::failed);
  CHECK(response.failure() == error::head_too_large);
}

TEST_CASE("a request fed in two pieces split at every byte parses the same") {
  const auto whole = parse(sample_request);
  for (std::size_t split = 0; split <= sample_request.size(); ++split) {
    CAPTURE(split);
    http_parser p(http_kind::request);
    const auto first = p.feed(sample_request.substr(0, split));
    REQUIRE(first.consumed == split);
    if (split < sample_request.size()) {
      REQUIRE(first.state == status::need_more);
      const auto second = p.feed(sample_request.substr(split));
      REQUIRE(second.state == status::complete);
      REQUIRE(second.consumed == sample_request.size() - split);
    } else {
      REQUIRE(first.state == status::complete);
    }
    check_same(p.head(), whole);
  }
}

TEST_CASE("a request fed a byte at a time parses the same") {
  const auto whole = parse(sample_request);
  http_parser p(http_kind::request);
  for (std::size_t i = 0; i < sample_request.size(); ++i) {
    const auto r = p.feed(sample_request.substr(i, 1));
    REQUIRE(r.consumed == 1);
    REQUIRE(r.state == (i + 1 == sample_request.size() ? status::complete : status::need_more));
  }
  check_same(p.head(), whole);
}

TEST_CASE("a response fed in three pieces split everywhere parses the same") {
  constexpr auto text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"sv;
  const auto whole = parse(text, http_kind::response);
  for (std::size_t a = 0; a <= text.size(); ++a)
    for (std::size_t b = a; b <= text.size(); ++b) {
      http_parser p(http_kind::response);
      std::size_t used = p.feed(text.substr(0, a)).consumed;
      used += p.feed(text.substr(a, b - a)).consumed;
      used += p.feed(text.substr(b)).consumed;
      REQUIRE(used == text.size());
      REQUIRE(p.state() == status::complete);
      check_same(p.head(), whole);
    }
}

TEST_CASE("bytes after the head are left for the caller") {
  const std::string frames = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  const std::string input = std::string(sample_request) + frames;
  http_parser p(http_kind::request);
  const auto r = p.feed(input);
  CHECK(r.state == status::complete);
  CHECK(r.consumed == sample_request.size());
  CHECK(std::string_view(input).substr(r.consumed) == frames);
  CHECK(p.head().raw() == sample_request);
  // A complete parser takes nothing more.
  const auto again = p.feed(frames);
  CHECK(again.state == status::complete);
  CHECK(again.consumed == 0);

  SUBCASE("also when the head ends inside a later piece") {
    http_parser q(http_kind::request);
    const auto cut = sample_request.size() - 3;
    CHECK(q.feed(std::string_view(input).substr(0, cut)).consumed == cut);
    const auto last = q.feed(std::string_view(input).substr(cut));
    CHECK(last.state == status::complete);
    CHECK(last.consumed == 3);
  }
}

TEST_CASE("the byte overload reads the same bytes") {
  http_parser p(http_kind::request);
  const auto bytes = std::as_bytes(std::span(sample_request.data(), sample_request.size()));
  const auto r = p.feed(bytes);
  CHECK(r.state == status::complete);
  CHECK(r.consumed == sample_request.size());
  CHECK(p.head().target() == "/chat");
}

TEST_CASE("malformed requests are refused as malformed_request") {
  const std::vector<std::string_view> bad = {
      // Line endings.
      "GET / HTTP/1.1\nHost: h\r\n\r\n",         // bare LF after the request line
      "GET / HTTP/1.1\r\nHost: h\n\r\n",         // bare LF after a header
      "GET / HTTP/1.1\r\nHost: h\r\n\n",         // bare LF as the blank line
      "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", // bare CR
      "GET / HTTP/1.1\r\r\n\r\n",                // CR CR LF
      // Header names.
      "GET / HTTP/1.1\r\nHost : h\r\n\r\n",      // space before the colon
      "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",     // tab before the colon
      "GET / HTTP/1.1\r\nHost h\r\n\r\n",        // no colon
      "GET / HTTP/1.1\r\n: h\r\n\r\n",           // empty name
      "GET / HTTP/1.1\r\nX@Y: h\r\n\r\n",        // name not a token
      "GET / HTTP/1.1\r\nX(Y): h\r\n\r\n",       // name not a token
      // Obsolete line folding, and whitespace before the first header.
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n",
      "GET / HTTP/1.1\r\n Host: h\r\n\r\n",
      // Control characters.
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"sv,
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7F\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\x1B[0m\r\n\r\n",
      "GET / HTTP/1.1\r\nX\x01: a\r\n\r\n",
      // Request line.
      "GET /\r\nHost: h\r\n\r\n",                // missing version
      "GET / \r\nHost: h\r\n\r\n",               // empty version
      "GET\r\n\r\n",                             // method only
      "GET / HTTP/2.0\r\nHost: h\r\n\r\n",       // not HTTP/1.x
      "GET / HTTP/1.10\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.x\r\nHost: h\r\n\r\n",
      "GET / http/1.1\r\nHost: h\r\n\r\n",       // the version is case-sensitive
      "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",      // trailing space
      "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",      // two spaces
      "GET /  HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",      // tab as separator
      " GET / HTTP/1.1\r\nHost: h\r\n\r\n",      // empty method
      "G(T / HTTP/1.1\r\nHost: h\r\n\r\n",       // method not a token
      "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n",     // relative target
      "GET * HTTP/1.1\r\nHost: h\r\n\r\n",       // asterisk-form
      "CONNECT example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n", // authority-form
      "GET mailto:a@b HTTP/1.1\r\nHost: h\r\n\r\n", // absolute, but no host
      "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",    // space in the target
      "GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", // fragment
      "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n",   // bad percent-encoding
      "GET /caf\xC3\xA9 HTTP/1.1\r\nHost: h\r\n\r\n", // raw non-ASCII in the target
      "GET /a\"b HTTP/1.1\r\nHost: h\r\n\r\n",
      // Structure.
      "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",   // blank line first
      "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", // two Host lines
      "HTTP/1.1 200 OK\r\n\r\n",                 // a response
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"sv, // a TLS ClientHello
      "garbage\r\n\r\n",
      "\r\n\r\n",
  };
  for (const auto text : bad) {
    CAPTURE(text);
    CHECK(parse_error(text) == error::malformed_request);
  }
}

TEST_CASE("malformed input fails as soon as its line shows, without the rest") {
  http_parser p(http_kind::request);
  // The bare LF is judged when it arrives: no blank line needed.
  auto r = p.feed("GET / HTTP/1.1\n");
  CHECK(r.state == status::failed);
  CHECK(p.failure() == error::malformed_request);
  CHECK(p.feed("Host: h\r\n\r\n").consumed == 0);

  http_parser q(http_kind::request);
  r = q.feed("GET / HTTP/1.1\r\nHost : h\r\n");
  CHECK(r.state == status::failed);

  http_parser nul(http_kind::request);
  r = nul.feed("GET /\0"sv);
  CHECK(r.state == status::failed);
  CHECK(r.consumed == 6);

  http_parser cr(http_kind::request);
  CHECK(cr.feed("GET / HTTP/1.1\r").state == status::need_more);
  CHECK(cr.feed("X").state == status::failed);
}

TEST_CASE("malformed responses are refused as malformed_response") {
  const std::vector<std::string_view> bad = {
      "HTTP/1.1 99 Too Low\r\n\r\n",
      "HTTP/1.1 600 Too High\r\n\r\n",
      "HTTP/1.1 1010 x\r\n\r\n",
      "HTTP/1.1 10\r\n\r\n",
      "HTTP/1.1 abc OK\r\n\r\n",
      "HTTP/1.1  101 x\r\n\r\n",
      "HTTP/1.1 101\tx\r\n\r\n",
      "HTTP/2 101 x\r\n\r\n",
      "HTTP/1.1\r\n\r\n",
      "ICY 200 OK\r\n\r\n",
      "http/1.1 101 x\r\n\r\n",
      "HTTP/1.1 101 x\nUpgrade: websocket\r\n\r\n",
      "HTTP/1.1 101 x\r\nUpgrade : websocket\r\n\r\n",
      "HTTP/1.1 101 x\r\nUpgrade: websocket\r\n folded\r\n\r\n",
      "HTTP/1.1 101 x\x01\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
  };
  for (const auto text : bad) {
    CAPTURE(text);
    CHECK(parse_error(text, http_kind::response) == error::malformed_response);
  }
}

TEST_CASE("arbitrary bytes never crash the parser") {
  std::mt19937 rng(6455);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 2000; ++round) {
    // Half noise, half a real request with a few bytes changed.
    std::string input(sample_request);
    if (round % 2 == 0) {
      input.resize(static_cast<std::size_t>(byte(rng)) * 4);
      for (auto& c : input)
        c = static_cast<char>(byte(rng));
    } else {
      for (int i = 0; i < 3; ++i)
        input[static_cast<std::size_t>(rng() % input.size())] = static_cast<char>(byte(rng));
    }
    for (const auto kind : {http_kind::request, http_kind::response}) {
      http_parser p(kind, 512);
      std::size_t used = 0;
      for (std::size_t at = 0; at < input.size() && p.state() == status::need_more; at += 7)
        used += p.feed(std::string_view(input).substr(at, 7)).consumed;
      REQUIRE(used <= input.size());
      if (p.state() == status::complete) {
        check_views_inside(p.head());
        (void)p.head().target_url();
      } else if (p.state() == status::failed) {
        const auto f = p.failure();
        CHECK((f == error::head_too_large ||
               f == (kind == http_kind::request ? error::malformed_request : error::malformed_response)));
      }
    }
  }
}

TEST_CASE("a parsed head outlives its parser, and copies and moves carry their own bytes") {
  // Short heads fit a small-string buffer, where a move copies the bytes.
  for (const auto text : {"GET / HTTP/1.1\r\n\r\n"sv, "GET /a HTTP/1.1\r\nH: v\r\n\r\n"sv, sample_request}) {
    CAPTURE(text);
    http_head moved;
    {
      http_parser p(http_kind::request);
      REQUIRE(p.feed(text).state == status::complete);
      moved = p.take_head();
    }
    CHECK(moved.raw() == text);
    check_views_inside(moved);

    const http_head copy(moved);
    check_same(copy, moved);
    check_views_inside(copy);

    http_head assigned;
    assigned = copy;
    check_same(assigned, moved);
    check_views_inside(assigned);

    http_head move_constructed(std::move(moved));
    check_same(move_constructed, copy);
    check_views_inside(move_constructed);
    CHECK(moved.raw().empty());
    CHECK(moved.headers().empty());
    CHECK(moved.method().empty());

    auto heap = std::make_unique<http_head>(move_constructed);
    http_head from_heap(std::move(*heap));
    heap.reset();
    check_same(from_heap, copy);
    check_views_inside(from_heap);
    CHECK(from_heap.target_url().path() == copy.target_url().path());

    assigned = std::move(from_heap);
    check_same(assigned, copy);
    check_views_inside(assigned);
    assigned = static_cast<const http_head&>(assigned); // self-assignment
    check_same(assigned, copy);
  }
}

TEST_CASE("a parser is done once complete or failed, and reset starts over") {
  http_parser p(http_kind::request);
  CHECK(p.state() == status::need_more);
  CHECK(p.feed("").state == status::need_more);
  REQUIRE(p.feed("GET /one HTTP/1.1\r\n\r\n").state == status::complete);
  CHECK(p.head().target() == "/one");
  CHECK(p.feed("GET /two HTTP/1.1\r\n\r\n").consumed == 0);

  p.reset();
  CHECK(p.state() == status::need_more);
  REQUIRE(p.feed("GET /two HTTP/1.1\r\n\r\n").state == status::complete);
  CHECK(p.head().target() == "/two");
  CHECK(p.head().headers().empty());

  p.reset();
  CHECK(p.feed("GET /\n").state == status::failed);
  const auto again = p.feed("GET / HTTP/1.1\r\n\r\n");
  CHECK(again.state == status::failed);
  CHECK(again.consumed == 0);
  p.reset();
  CHECK(p.failure() == error{});
  CHECK(p.feed("GET /three HTTP/1.1\r\n\r\n").state == status::complete);

  SUBCASE("reset keeps the kind, even after the head was taken") {
    http_parser r(http_kind::response);
    REQUIRE(r.feed("HTTP/1.1 101 x\r\n\r\n").state == status::complete);
    (void)r.take_head();
    r.reset();
    CHECK(r.feed("GET / HTTP/1.1\r\n\r\n").state == status::failed);
    CHECK(r.failure() == error::malformed_response);
  }
}
