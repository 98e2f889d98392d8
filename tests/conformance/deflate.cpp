#include "deflate.hpp"

#include <fmt/core.h>

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

namespace conformance {
namespace {

constexpr std::string_view extension_name = "permessage-deflate";
constexpr std::string_view sync_tail{"\x00\x00\xff\xff", 4};
constexpr std::size_t strict_room = 512;

bool is_tchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

struct parameter {
  std::string name;
  std::optional<std::string> value{}; // unquoted
};

struct element {
  std::string name;
  std::vector<parameter> params{};
};

/// RFC 6455 section 9.1: extension-list = 1#extension; extension = extension-token
/// *( ";" extension-param ); extension-param = token [ "=" (token | quoted-string) ],
/// with optional white space around the separators.
class list_parser {
public:
  explicit list_parser(std::string_view text) : text_(text) {}

  std::vector<element> parse() {
    std::vector<element> out;
    for (;;) {
      skip_space();
      element e{.name = token("an extension name")};
      skip_space();
      while (take(';')) {
        skip_space();
        parameter p{.name = token("a parameter name")};
        skip_space();
        if (take('=')) {
          skip_space();
          p.value = peek() == '"' ? quoted() : token("a parameter value");
          skip_space();
        }
        e.params.push_back(std::move(p));
      }
      out.push_back(std::move(e));
      if (at_ == text_.size()) return out;
      if (!take(',')) fail("',' or ';'");
    }
  }

private:
  char peek() const { return at_ < text_.size() ? text_[at_] : '\0'; }
  bool take(char c) {
    if (peek() != c || at_ == text_.size()) return false;
    ++at_;
    return true;
  }
  void skip_space() {
    while (peek() == ' ' || peek() == '\t') ++at_;
  }
  [[noreturn]] void fail(std::string_view what) const {
    throw std::runtime_error(fmt::format("Sec-WebSocket-Extensions '{}': {} expected at offset {}", text_, what, at_));
  }
  std::string token(std::string_view what) {
    const std::size_t start = at_;
    while (at_ < text_.size() && is_tchar(text_[at_])) ++at_;
    if (at_ == start) fail(what);
    return std::string{text_.substr(start, at_ - start)};
  }
  std::string quoted() {
    ++at_; // the opening quote
    std::string out;
    while (at_ < text_.size() && text_[at_] != '"') {
      if (text_[at_] == '\\' && at_ + 1 < text_.size()) ++at_;
      out += text_[at_++];
    }
    if (!take('"')) fail("a closing quote");
    return out;
  }

  std::string_view text_;
  std::size_t at_ = 0;
};

/// RFC 7692 section 7.1.2: a decimal integer from 8 to 15 without leading zeros.
std::optional<int> window_bits(const std::optional<std::string>& value) {
  if (!value || value->empty() || value->size() > 2 || (*value)[0] == '0') return std::nullopt;
  if (!std::all_of(value->begin(), value->end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  const int n = std::stoi(*value);
  if (n < 8 || n > 15) return std::nullopt;
  return n;
}

} // namespace

deflate_offer read_offer(std::string_view offer) {
  const auto bad = [&](std::string_view why) { return std::invalid_argument(fmt::format("offer '{}': {}", offer, why)); };
  std::vector<element> elements;
  try {
    elements = list_parser{offer}.parse();
  } catch (const std::runtime_error& e) {
    throw bad(e.what());
  }
  if (elements.size() != 1 || elements[0].name != extension_name) throw bad("one permessage-deflate offer expected");
  deflate_offer out;
  for (const parameter& p : elements[0].params) {
    if (p.name == "server_no_context_takeover") {
      out.server_no_context_takeover = true;
    } else if (p.name == "client_no_context_takeover") {
      out.client_no_context_takeover = true;
    } else if (p.name == "server_max_window_bits") {
      out.server_max_window_bits = window_bits(p.value);
      if (!out.server_max_window_bits) throw bad("server_max_window_bits needs 8 to 15");
    } else if (p.name == "client_max_window_bits") {
      out.client_max_window_bits = true;
      if (p.value && !(out.client_max_window_bits_value = window_bits(p.value))) throw bad("client_max_window_bits 8 to 15");
    } else {
      throw bad(fmt::format("unknown parameter {}", p.name));
    }
  }
  return out;
}

std::optional<deflate_agreement> check_answer(const std::optional<std::string>& answer, const deflate_offer& offer) {
  if (!answer) return std::nullopt;
  const std::vector<element> elements = list_parser{*answer}.parse();
  const auto bad = [&](std::string_view why) {
    return std::runtime_error(fmt::format("Sec-WebSocket-Extensions '{}': {}", *answer, why));
  };
  if (elements.size() != 1) throw bad("one extension expected, the one offered");
  if (!iequals(elements[0].name, extension_name)) throw bad("an extension nobody offered");
  deflate_agreement agreed;
  agreed.client_no_context_takeover = offer.client_no_context_takeover; // we said we would reset
  if (offer.client_max_window_bits_value) agreed.client_max_window_bits = *offer.client_max_window_bits_value;
  std::vector<std::string> seen;
  for (const parameter& p : elements[0].params) {
    const std::string name = [&] {
      std::string n = p.name;
      std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      return n;
    }();
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) throw bad(fmt::format("{} repeated", name));
    seen.push_back(name);
    if (name == "server_no_context_takeover" || name == "client_no_context_takeover") {
      if (p.value) throw bad(fmt::format("{} with a value", name));
      (name == "server_no_context_takeover" ? agreed.server_no_context_takeover : agreed.client_no_context_takeover) = true;
    } else if (name == "server_max_window_bits") {
      const auto bits = window_bits(p.value);
      if (!bits) throw bad("server_max_window_bits without a value from 8 to 15");
      if (offer.server_max_window_bits && *bits > *offer.server_max_window_bits)
        throw bad(fmt::format("server_max_window_bits above the {} offered", *offer.server_max_window_bits));
      agreed.server_max_window_bits = *bits;
    } else if (name == "client_max_window_bits") {
      if (!offer.client_max_window_bits) throw bad("client_max_window_bits, which the offer did not have");
      const auto bits = window_bits(p.value);
      if (!bits) throw bad("client_max_window_bits without a value from 8 to 15");
      if (offer.client_max_window_bits_value && *bits > *offer.client_max_window_bits_value)
        throw bad(fmt::format("client_max_window_bits above the {} offered", *offer.client_max_window_bits_value));
      agreed.client_max_window_bits = *bits;
    } else {
      throw bad(fmt::format("unknown parameter {}", p.name));
    }
  }
  // RFC 7692 section 7.1.1.1: the server accepts server_no_context_takeover by naming it.
  if (offer.server_no_context_takeover && !agreed.server_no_context_takeover)
    throw bad("server_no_context_takeover offered and not in the answer");
  return agreed;
}

// ---- Compression ----

struct message_deflater::state {
  z_stream z{};
  bool no_context_takeover = false;
  bool mid_message = false; // the last piece was a part
};

message_deflater::message_deflater(int window_bits, bool no_context_takeover, int level) : state_(std::make_unique<state>()) {
  state_->no_context_takeover = no_context_takeover;
  // Negative window bits: raw deflate. zlib cannot compress with a window of 8.
  if (deflateInit2(&state_->z, level, Z_DEFLATED, -std::clamp(window_bits, 9, 15), 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::bad_alloc();
}

message_deflater::~message_deflater() { deflateEnd(&state_->z); }

std::string message_deflater::compress(std::string_view data, ending how) {
  z_stream& z = state_->z;
  if (state_->no_context_takeover && !state_->mid_message) deflateReset(&z);
  state_->mid_message = how == ending::part;
  // Nothing new to flush: zlib has no output for it. A lone 00 (an empty stored block
  // once the receiver appends 00 00 FF FF) is the empty message of RFC 7692 7.2.3.6.
  if (data.empty() && how == ending::message) return std::string(1, '\0');
  const int flush = how == ending::final_block ? Z_FINISH : Z_SYNC_FLUSH;
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  int rc = Z_OK;
  do {
    const std::size_t had = out.size();
    out.resize(had + 64 * 1024 + data.size() / 2);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + had);
    z.avail_out = static_cast<uInt>(out.size() - had);
    rc = deflate(&z, flush);
    if (rc == Z_STREAM_ERROR) throw std::runtime_error("deflate failed");
    out.resize(out.size() - z.avail_out);
  } while (flush == Z_FINISH ? rc != Z_STREAM_END : (z.avail_out == 0 || z.avail_in != 0));
  if (how == ending::final_block) {
    deflateReset(&z); // a new stream for the next message
    return out;
  }
  if (!std::string_view{out}.ends_with(sync_tail)) throw std::runtime_error("deflate output without its sync flush tail");
  if (how == ending::message) out.resize(out.size() - sync_tail.size());
  return out;
}

// ---- Decompression ----

struct message_inflater::state {
  z_stream z{};
  bool no_context_takeover = false;
  bool strict = false; // a window under 15 bits to enforce
};

message_inflater::message_inflater(int window_bits, bool no_context_takeover) : state_(std::make_unique<state>()) {
  state_->no_context_takeover = no_context_takeover;
  state_->strict = window_bits < 15;
  if (inflateInit2(&state_->z, -std::clamp(window_bits, 8, 15)) != Z_OK) throw std::bad_alloc();
}

message_inflater::~message_inflater() { inflateEnd(&state_->z); }

std::optional<std::string> message_inflater::inflate(std::string_view payload, std::string& error) {
  z_stream& z = state_->z;
  const std::string in = std::string{payload} + std::string{sync_tail};
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::string out;
  int rc = Z_OK;
  int data_type = 0; // of the last call that got anywhere: a call that cannot changes it
  do {
    const std::size_t had = out.size();
    // zlib checks a distance against the window it keeps plus what this call has written
    // so far, not against the window size: with room for only `strict_room` bytes per
    // call, a reference more than the window plus that far back is an error.
    out.resize(had + (state_->strict ? strict_room : 64 * 1024 + 4 * in.size()));
    z.next_out = reinterpret_cast<Bytef*>(out.data() + had);
    z.avail_out = static_cast<uInt>(out.size() - had);
    rc = ::inflate(&z, Z_SYNC_FLUSH);
    out.resize(out.size() - z.avail_out);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      error = fmt::format("not valid deflate data ({})", z.msg ? z.msg : "zlib error");
      inflateReset(&z);
      return std::nullopt;
    }
    if (rc == Z_BUF_ERROR && z.avail_out != 0) break; // no progress possible with room left
    data_type = z.data_type;
  } while (rc != Z_STREAM_END && (z.avail_in != 0 || z.avail_out == 0));
  if (rc == Z_STREAM_END) {
    // The server ended the stream (BFINAL): nothing may follow but our own tail.
    if (z.avail_in != 0 && z.avail_in != sync_tail.size()) {
      error = fmt::format("{} bytes after the final deflate block", z.avail_in - (z.avail_in >= 4 ? 4 : 0));
      inflateReset(&z);
      return std::nullopt;
    }
    inflateReset(&z);
    return out;
  }
  // With our 00 00 FF FF the message must end right after a whole block: zlib waits for
  // the next block's header (data_type + 128).
  if (z.avail_in != 0 || (data_type & 128) == 0) {
    error = "the compressed message does not end on a deflate block boundary";
    inflateReset(&z);
    return std::nullopt;
  }
  if (state_->no_context_takeover) inflateReset(&z);
  return out;
}

} // namespace conformance
