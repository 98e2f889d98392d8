// libFuzzer target: websockets::http_parser, and on a complete request head what the
// server does next: check_upgrade, parse_extensions and negotiate_deflate on its
// Sec-WebSocket-Extensions, and the 101 or rejection response, read back.
//
// Input: 3 settings bytes, then the bytes of a head (and whatever follows it).
//   [0] bit 0: a response head instead of a request; bits 1-2: the byte limit:
//       0 the default (8 KiB), 1 [1] bytes (0 to 255), 2 32 * [1] bytes, 3 1 MiB
//   [1] the limit's value
//   [2] the seed of the random split
//
// The bytes are fed whole, byte by byte and in random pieces; each way must end the
// same (complete with the same head, or failed with the same error, or still waiting),
// never take more than the limit, and give a head whose fields agree with its raw bytes
// (read again here line by line) and survive copies and moves.
#include "fuzz.hpp"

#include <websockets/deflate.hpp>
#include <websockets/http.hpp>
#include <websockets/upgrade.hpp>

#include <optional>
#include <string>
#include <vector>

namespace {

using namespace websockets;

// A head's fields as values, to compare heads from different runs and copies.
struct head_fields {
  std::string raw, method, target, reason;
  unsigned major = 0, minor = 0, status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  bool operator==(const head_fields&) const = default;
};

head_fields fields_of(const http_head& h) {
  head_fields f{std::string(h.raw()), std::string(h.method()), std::string(h.target()), std::string(h.reason()),
                h.version_major(), h.version_minor(), h.status(), {}};
  for (const auto& header : h.headers()) f.headers.emplace_back(header.name, header.value);
  return f;
}

// Every view a head hands out points into its own raw bytes (or is empty), so it lives
// exactly as long as the head.
void check_views(const http_head& h) {
  const std::string_view raw = h.raw();
  const auto inside = [&](std::string_view v) {
    return v.empty() || (v.data() >= raw.data() && v.data() + v.size() <= raw.data() + raw.size());
  };
  FUZZ_CHECK(inside(h.method()) && inside(h.target()) && inside(h.reason()), "a view outside the head");
  for (const auto& header : h.headers())
    FUZZ_CHECK(inside(header.name) && inside(header.value), "a header view outside the head");
}

// The head read again, naively, from its raw bytes: the start line, then one header per
// line split at the first colon, the value without surrounding spaces and tabs.
void check_against_raw(const http_head& h, http_kind kind) {
  const std::string_view raw = h.raw();
  FUZZ_CHECK(raw.size() >= 4 && raw.substr(raw.size() - 4) == "\r\n\r\n", "a head not ending in a blank line");
  std::vector<std::string_view> lines;
  for (std::size_t at = 0; at + 2 < raw.size();) {
    const auto end = raw.find("\r\n", at);
    lines.push_back(raw.substr(at, end - at));
    at = end + 2;
  }
  FUZZ_CHECK(!lines.empty() && lines.size() - 1 == h.headers().size(), "header count differs from the lines");
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto line = lines[i];
    const auto colon = line.find(':');
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    const auto& header = h.headers()[i - 1];
    FUZZ_CHECK(header.name == line.substr(0, colon) && header.value == value,
               "header " + std::to_string(i) + " differs from its line: " + fuzz::show(line));
    FUZZ_CHECK(is_token(header.name));
    FUZZ_CHECK(h.header_count(header.name) == h.header_values(header.name).size());
    FUZZ_CHECK(h.has_header(header.name));
  }
  const auto start = lines[0];
  if (kind == http_kind::request) {
    FUZZ_CHECK(start == std::string(h.method()) + " " + std::string(h.target()) + " HTTP/1." + std::to_string(h.version_minor()),
               "start line differs: " + fuzz::show(start));
    FUZZ_CHECK(is_token(h.method()) && !h.target().empty() && h.status() == 0);
    // The parser admitted the target, so it parses as a URL (value() throws otherwise).
    (void)h.target_url().encoded_path();
    FUZZ_CHECK(h.header_count("Host") <= 1, "two Host lines accepted");
  } else {
    FUZZ_CHECK(h.status() >= 100 && h.status() <= 599);
    FUZZ_CHECK(start.substr(0, 12) == "HTTP/1." + std::to_string(h.version_minor()) + " " + std::to_string(h.status()),
               "status line differs: " + fuzz::show(start));
    FUZZ_CHECK(h.method().empty() && h.target().empty());
  }
  FUZZ_CHECK(h.version_major() == 1 && h.version_minor() <= 9);
}

// Heads must survive copy and move construction and assignment with equal fields and
// views into their own bytes.
void check_copies(const http_head& h) {
  const head_fields original = fields_of(h);
  http_head copy(h);
  FUZZ_CHECK(fields_of(copy) == original, "a copy differs");
  check_views(copy);
  http_head moved(std::move(copy));
  FUZZ_CHECK(fields_of(moved) == original, "a moved head differs");
  // Documented: a moved-from head is empty.
  FUZZ_CHECK(copy.raw().empty() && copy.headers().empty(), "a moved-from head is not empty");
  check_views(moved);
  http_head assigned;
  assigned = moved;
  FUZZ_CHECK(fields_of(assigned) == original, "a copy-assigned head differs");
  check_views(assigned);
  http_head move_assigned;
  move_assigned = std::move(assigned);
  FUZZ_CHECK(fields_of(move_assigned) == original, "a move-assigned head differs");
  check_views(move_assigned);
}

// Reads `text` as one head of `kind` at once: it must be complete and take all of it
// up to the blank line.
http_head read_back(std::string_view text, http_kind kind) {
  http_parser parser(kind);
  const auto result = parser.feed(text);
  FUZZ_CHECK(result.state == http_parser::status::complete, "our own message does not parse: " + fuzz::show(text));
  FUZZ_CHECK(text.substr(0, result.consumed).ends_with("\r\n\r\n"));
  return parser.take_head();
}

// What a server does with a complete request: the handshake checks, the extension
// offer, and the response, which must be valid HTTP saying what was agreed.
void check_upgrade_path(const http_head& request) {
  const auto check = check_upgrade(request);
  if (!check) {
    const auto rejection = rejection_response(check.failure);
    FUZZ_CHECK(read_back(rejection, http_kind::response).status() == http_status_for(check.failure));
    return;
  }
  const auto& r = check.request;
  FUZZ_CHECK(r.key().size() == 24, "an accepted key that is not 16 bytes of base64");
  for (const auto& p : r.subprotocols()) FUZZ_CHECK(is_token(p));
  (void)r.cookie("session");
  (void)r.cookie("");

  std::string extensions;
  if (const auto offers = parse_extensions(r.extensions())) {
    for (const bool small : {false, true}) {
      const deflate_options ours{.enabled = true, .window_bits = small ? 9 : 15, .peer_window_bits = small ? 9 : 12,
                                 .peer_no_context_takeover = small};
      const auto agreed = negotiate_deflate(*offers, ours);
      if (!agreed) continue;
      // The response is a valid extension list naming one permessage-deflate.
      const auto parsed = parse_extensions(agreed->response);
      FUZZ_CHECK(parsed && parsed->size() == 1 && iequals((*parsed)[0].name, "permessage-deflate"),
                 "negotiate_deflate's response does not parse: " + agreed->response);
      FUZZ_CHECK(agreed->server_max_window_bits >= 9 && agreed->server_max_window_bits <= 15);
      // 8 only when the client offered 8 for itself (RFC 7692 allows it; our inflater
      // reads it with 9).
      FUZZ_CHECK(agreed->client_max_window_bits >= 8 && agreed->client_max_window_bits <= 15);
      extensions = agreed->response;
    }
  }
  const std::string subprotocol = r.subprotocols().empty() ? std::string() : r.subprotocols().front();
  const auto response = accept_response(r.key(), {.subprotocol = subprotocol, .extensions = extensions});
  const auto head = read_back(response, http_kind::response);
  FUZZ_CHECK(head.status() == 101 && head.header("Sec-WebSocket-Accept") == accept_key(r.key()));
  FUZZ_CHECK(head.header("Sec-WebSocket-Extensions") == extensions);
}

struct run_result {
  http_parser::status state;
  websockets::error failure{};
  std::size_t consumed = 0;
  head_fields head;
};

run_result run(std::string_view input, http_kind kind, std::size_t max_head, fuzz::split_kind how, std::uint8_t seed) {
  http_parser parser(kind, max_head);
  fuzz::splitter split(seed);
  std::size_t at = 0;
  const std::size_t max_calls = 4 * input.size() + 16; // empty pieces are allowed, not forever
  for (std::size_t calls = 0; parser.state() == http_parser::status::need_more && at < input.size(); ++calls) {
    FUZZ_CHECK(calls < max_calls);
    const std::size_t n = fuzz::next_piece(how, split, input.size() - at);
    // An exact copy: ASan sees a read past the piece.
    const auto piece = fuzz::exact_copy(fuzz::bytes(input.substr(at, n)));
    const auto result = parser.feed(piece);
    FUZZ_CHECK(result.consumed <= n && result.state == parser.state());
    if (result.state == http_parser::status::need_more)
      FUZZ_CHECK(result.consumed == n, "need_more before the piece is used up");
    at += result.consumed;
    // Never takes more than the limit, whatever it does with it.
    FUZZ_CHECK(at <= max_head, "took " + std::to_string(at) + " bytes with a limit of " + std::to_string(max_head));
  }
  run_result out{parser.state(), parser.failure(), at, {}};
  if (out.state != http_parser::status::need_more) {
    // Done: later feeds take nothing and change nothing.
    const auto again = parser.feed(input.substr(at));
    FUZZ_CHECK(again.consumed == 0 && again.state == out.state && parser.failure() == out.failure);
  }
  if (out.state == http_parser::status::complete) {
    const http_head& h = parser.head();
    FUZZ_CHECK(h.raw() == input.substr(0, at), "the head is not the bytes it took");
    FUZZ_CHECK(h.kind() == kind);
    out.head = fields_of(h);
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t settings_size = 3;
  const fuzz::settings s(data, size, settings_size);
  const std::string_view input = fuzz::chars(fuzz::rest(data, size, settings_size));
  const http_kind kind = s.bit(0, 0) ? http_kind::response : http_kind::request;
  std::size_t max_head = default_max_http_head;
  switch ((s.byte(0) >> 1) & 3) {
  case 1: max_head = s.byte(1); break;
  case 2: max_head = 32U * s.byte(1); break;
  case 3: max_head = 1U << 20; break;
  default: break;
  }

  const run_result whole = run(input, kind, max_head, fuzz::split_kind::whole, s.byte(2));
  for (const auto how : {fuzz::split_kind::byte_by_byte, fuzz::split_kind::random}) {
    const run_result other = run(input, kind, max_head, how, s.byte(2));
    // How many bytes a failure took depends on the split (a bad byte fails at once,
    // when it arrives); the outcome does not.
    FUZZ_CHECK(other.state == whole.state && other.failure == whole.failure,
               std::string(fuzz::name(how)) + " ends differently: state " + std::to_string(int(other.state)) +
                   " error " + std::to_string(int(other.failure)) + ", whole: state " + std::to_string(int(whole.state)) +
                   " error " + std::to_string(int(whole.failure)));
    if (whole.state == http_parser::status::complete)
      FUZZ_CHECK(other.consumed == whole.consumed && other.head == whole.head, std::string(fuzz::name(how)) + " reads another head");
  }
  if (whole.state != http_parser::status::complete) return 0;

  // The head once more, taken out of its parser, for the checks on its contents.
  http_parser parser(kind, max_head);
  (void)parser.feed(input);
  const http_head head = parser.take_head();
  FUZZ_CHECK(head.raw().size() <= max_head);
  check_views(head);
  check_against_raw(head, kind);
  check_copies(head);
  if (kind == http_kind::request) check_upgrade_path(head);
  return 0;
}
