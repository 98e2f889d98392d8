// libFuzzer target: Sec-WebSocket-Extensions and the permessage-deflate agreement
// (parse_extensions, negotiate_deflate, deflate_offer, accept_deflate).
//
// Input: 2 settings bytes, then a Sec-WebSocket-Extensions value from a client.
//   [0] the server's deflate_options, [1] a client's; each: bits 0-2 window_bits
//       (9 + bits % 7), bit 3 no_context_takeover, bit 4 peer_no_context_takeover,
//       bits 5-7 peer_window_bits (8 + bits)
//
// Checks:
// - a list that parses, written out again, parses to the same thing;
// - whatever the offer, a response negotiate_deflate makes is a valid list that a
//   client accepting any window (accept_deflate) takes, with matching parameters;
// - a client's own offer (deflate_offer) is always agreed to by a server, and the
//   client accepts the answer; then each side compresses with a window no larger than
//   the other inflates with, and drops its window wherever the other expects it to.
#include "fuzz.hpp"

#include <websockets/deflate.hpp>
#include <websockets/http.hpp>
#include <websockets/upgrade.hpp>

#include <optional>
#include <string>
#include <vector>

namespace {

using namespace websockets;

deflate_options options_of(std::uint8_t b) {
  return {.enabled = true,
          .window_bits = 9 + (b & 7) % 7,
          .no_context_takeover = (b & 0x08) != 0,
          .peer_window_bits = 8 + (b >> 5),
          .peer_no_context_takeover = (b & 0x10) != 0};
}

// An extension list written out: `name; param; param=value, ...`. Values are tokens
// (parse_extensions unquotes them and insists), so no quoting is needed.
std::string write(const std::vector<extension>& list) {
  std::string out;
  for (const auto& e : list) {
    if (!out.empty()) out += ", ";
    out += e.name;
    for (const auto& p : e.parameters) {
      out += "; " + p.name;
      if (p.value) out += "=" + *p.value;
    }
  }
  return out;
}

bool same(const std::vector<extension>& a, const std::vector<extension>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].parameters.size() != b[i].parameters.size()) return false;
    for (std::size_t j = 0; j < a[i].parameters.size(); ++j)
      if (a[i].parameters[j].name != b[i].parameters[j].name || a[i].parameters[j].value != b[i].parameters[j].value)
        return false;
  }
  return true;
}

std::string describe(const deflate_params& p) {
  return "server bits " + std::to_string(p.server_max_window_bits) + (p.server_no_context_takeover ? " reset" : "") +
         ", client bits " + std::to_string(p.client_max_window_bits) + (p.client_no_context_takeover ? " reset" : "") +
         " (" + p.response + ")";
}

// What the two ends agreed, each from its side, must let each inflate what the other
// sends: socket.cpp compresses with one's own max_window_bits and no_context_takeover
// and inflates with the peer's.
void check_compatible(const deflate_params& server, const deflate_params& client) {
  const std::string both = "\nserver: " + describe(server) + "\nclient: " + describe(client);
  // zlib compresses raw deflate with 9 to 15 bits (inflaters clamp 8 up to 9).
  for (const int bits : {server.server_max_window_bits, client.client_max_window_bits})
    FUZZ_CHECK(bits >= 9 && bits <= 15, "a window zlib cannot compress with" + both);
  FUZZ_CHECK(server.server_max_window_bits <= client.server_max_window_bits,
             "the server compresses with a larger window than the client inflates with" + both);
  FUZZ_CHECK(client.client_max_window_bits <= server.client_max_window_bits,
             "the client compresses with a larger window than the server inflates with" + both);
  FUZZ_CHECK(!client.server_no_context_takeover || server.server_no_context_takeover,
             "the client drops its window but the server keeps compressing with one" + both);
  FUZZ_CHECK(!server.client_no_context_takeover || client.client_no_context_takeover,
             "the server drops its window but the client keeps compressing with one" + both);
}

// The response must parse as one permessage-deflate; what `client` makes of it.
std::optional<deflate_params> accepted_by(const deflate_params& agreed, const deflate_options& client) {
  const auto response = parse_extensions(agreed.response);
  FUZZ_CHECK(response && response->size() == 1 && iequals((*response)[0].name, "permessage-deflate"),
             "negotiate_deflate's response does not parse: " + agreed.response);
  return accept_deflate((*response)[0], client);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t settings_size = 2;
  const fuzz::settings s(data, size, settings_size);
  const std::string_view text = fuzz::chars(fuzz::rest(data, size, settings_size));
  const deflate_options server = options_of(s.byte(0));
  const deflate_options client = options_of(s.byte(1));

  // Any offer: parse, write, parse again; then what a server makes of it.
  if (const auto offers = parse_extensions(text)) {
    for (const auto& e : *offers) {
      FUZZ_CHECK(is_token(e.name));
      for (const auto& p : e.parameters) FUZZ_CHECK(is_token(p.name) && (!p.value || is_token(*p.value)));
    }
    const auto again = parse_extensions(write(*offers));
    FUZZ_CHECK(again && same(*again, *offers), "a parsed list reads differently written out: " + write(*offers));
    if (const auto agreed = negotiate_deflate(*offers, server)) {
      // A client that takes any window accepts whatever a server answers, except a
      // client window of 8, which only an offer naming 8 gets (RFC 7692 allows it) and
      // which accept_deflate refuses since zlib cannot compress with it.
      const deflate_options lenient{.enabled = true, .window_bits = 15, .peer_window_bits = 15};
      FUZZ_CHECK(accepted_by(*agreed, lenient).has_value() || agreed->client_max_window_bits == 8,
                 "a lenient client refuses " + agreed->response);
      FUZZ_CHECK(agreed->client_max_window_bits >= 8 && agreed->client_max_window_bits <= 15);
      FUZZ_CHECK(agreed->server_no_context_takeover || !server.no_context_takeover);
      FUZZ_CHECK(agreed->server_max_window_bits <= server.window_bits, "a server compresses past its own window");
    }
  }

  // A client's own offer: a server always agrees, and the client accepts the answer.
  const std::string offer = deflate_offer(client);
  const auto offers = parse_extensions(offer);
  FUZZ_CHECK(offers && offers->size() == 1, "deflate_offer makes an unreadable offer: " + offer);
  const auto agreed = negotiate_deflate(*offers, server);
  FUZZ_CHECK(agreed.has_value(), "a server declines a client's own offer: " + offer);
  const auto accepted = accepted_by(*agreed, client);
  FUZZ_CHECK(accepted.has_value(), "a client refuses the response to its own offer: " + agreed->response);
  check_compatible(*agreed, *accepted);

  // The same with the fuzzer's offers first, as a browser might list several: the
  // server takes the first acceptable one, and whatever it answers, a client that
  // accepts it can talk with it.
  if (const auto mixed = parse_extensions(std::string(text) + ", " + offer)) {
    const auto chosen = negotiate_deflate(*mixed, server);
    FUZZ_CHECK(chosen.has_value(), "a server declines a list ending with a valid offer");
    if (const auto client_side = accepted_by(*chosen, client)) check_compatible(*chosen, *client_side);
  }
  return 0;
}
