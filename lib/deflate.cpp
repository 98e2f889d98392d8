#include <websockets/deflate.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <stdexcept>

namespace websockets {
namespace {

constexpr std::string_view extension_name = "permessage-deflate";

// Every message's compressed data ends with an empty stored block, which RFC 7692
// section 7.2.1 has the sender drop and the receiver put back.
constexpr std::array<unsigned char, 4> empty_block_tail{0x00, 0x00, 0xFF, 0xFF};

// zlib cannot compress raw deflate with a 256-byte window (it rejects windowBits 8).
constexpr int min_compress_bits = 9;
constexpr int max_window_bits = 15;

// A window size as RFC 7692 writes it: 8 to 15 in decimal, without leading zeros.
std::optional<int> window_bits_of(const std::string& value) {
  if (value.empty() || value.size() > 2 || value[0] == '0') return std::nullopt;
  int bits = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    bits = bits * 10 + (c - '0');
  }
  if (bits < 8 || bits > max_window_bits) return std::nullopt;
  return bits;
}

// The parameters one offer or response names, each at most once and well-formed.
struct named_params {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::optional<int> server_max_window_bits;
  bool client_max_window_bits = false;           // named, with or without a value
  std::optional<int> client_max_window_bits_value;
};

std::optional<named_params> read_params(const extension& e) {
  named_params p;
  std::array<bool, 4> seen{};
  for (const auto& param : e.parameters) {
    const auto once = [&](std::size_t i) { return !std::exchange(seen[i], true); };
    if (iequals(param.name, "server_no_context_takeover")) {
      if (!once(0) || param.value) return std::nullopt;
      p.server_no_context_takeover = true;
    } else if (iequals(param.name, "client_no_context_takeover")) {
      if (!once(1) || param.value) return std::nullopt;
      p.client_no_context_takeover = true;
    } else if (iequals(param.name, "server_max_window_bits")) {
      if (!once(2) || !param.value) return std::nullopt;
      p.server_max_window_bits = window_bits_of(*param.value);
      if (!p.server_max_window_bits) return std::nullopt;
    } else if (iequals(param.name, "client_max_window_bits")) {
      if (!once(3)) return std::nullopt;
      p.client_max_window_bits = true;
      if (param.value) {
        p.client_max_window_bits_value = window_bits_of(*param.value);
        if (!p.client_max_window_bits_value) return std::nullopt;
      }
    } else {
      return std::nullopt; // RFC 7692 section 7: an unknown parameter declines the offer
    }
  }
  return p;
}

int clamp_bits(int bits) noexcept { return std::clamp(bits, min_compress_bits, max_window_bits); }

void add_param(std::string& out, std::string_view name) {
  out += "; ";
  out += name;
}

void add_param(std::string& out, std::string_view name, int bits) {
  add_param(out, name);
  out += '=';
  out += std::to_string(bits);
}

// zlib allocations through a counter, so that a connection's cost can be measured.
struct counted_zlib {
  std::size_t bytes = 0;

  static void* alloc(void* opaque, unsigned items, unsigned size) {
    const std::size_t n = std::size_t{items} * size;
    auto* block = static_cast<std::size_t*>(::operator new(n + sizeof(std::max_align_t), std::nothrow));
    if (block == nullptr) return nullptr;
    *block = n;
    static_cast<counted_zlib*>(opaque)->bytes += n;
    return reinterpret_cast<std::byte*>(block) + sizeof(std::max_align_t);
  }

  static void free(void* opaque, void* address) {
    auto* block = reinterpret_cast<std::size_t*>(static_cast<std::byte*>(address) - sizeof(std::max_align_t));
    static_cast<counted_zlib*>(opaque)->bytes -= *block;
    ::operator delete(block);
  }

  void attach(z_stream& z) {
    z.zalloc = &counted_zlib::alloc;
    z.zfree = &counted_zlib::free;
    z.opaque = this;
  }
};

} // namespace

std::optional<deflate_params> negotiate_deflate(std::span<const extension> offers, const deflate_options& ours) {
  if (!ours.enabled) return std::nullopt;
  for (const auto& offer : offers) {
    if (!iequals(offer.name, extension_name)) continue;
    const auto asked = read_params(offer);
    if (!asked) continue;

    deflate_params agreed;
    agreed.response = extension_name;
    agreed.server_max_window_bits = clamp_bits(ours.window_bits);
    if (asked->server_max_window_bits) {
      // A window below zlib's smallest cannot be honoured: decline this offer.
      if (*asked->server_max_window_bits < min_compress_bits) continue;
      agreed.server_max_window_bits = std::min(agreed.server_max_window_bits, *asked->server_max_window_bits);
      add_param(agreed.response, "server_max_window_bits", agreed.server_max_window_bits);
    }
    if (asked->client_max_window_bits) {
      // The client lets us choose its window, up to what it named.
      const int limit = asked->client_max_window_bits_value.value_or(max_window_bits);
      agreed.client_max_window_bits = std::min(clamp_bits(ours.peer_window_bits), limit);
      if (agreed.client_max_window_bits < max_window_bits || asked->client_max_window_bits_value)
        add_param(agreed.response, "client_max_window_bits", agreed.client_max_window_bits);
    }
    agreed.server_no_context_takeover = asked->server_no_context_takeover || ours.no_context_takeover;
    if (agreed.server_no_context_takeover) add_param(agreed.response, "server_no_context_takeover");
    agreed.client_no_context_takeover = asked->client_no_context_takeover || ours.peer_no_context_takeover;
    if (agreed.client_no_context_takeover) add_param(agreed.response, "client_no_context_takeover");
    return agreed;
  }
  return std::nullopt;
}

std::string deflate_offer(const deflate_options& ours) {
  std::string offer{extension_name};
  // Always let the server choose our window: servers short of memory want to.
  const int own = clamp_bits(ours.window_bits);
  if (own < max_window_bits)
    add_param(offer, "client_max_window_bits", own);
  else
    add_param(offer, "client_max_window_bits");
  if (clamp_bits(ours.peer_window_bits) < max_window_bits)
    add_param(offer, "server_max_window_bits", clamp_bits(ours.peer_window_bits));
  if (ours.no_context_takeover) add_param(offer, "client_no_context_takeover");
  if (ours.peer_no_context_takeover) add_param(offer, "server_no_context_takeover");
  return offer;
}

std::optional<deflate_params> accept_deflate(const extension& response, const deflate_options& ours) {
  if (!iequals(response.name, extension_name)) return std::nullopt;
  const auto granted = read_params(response);
  if (!granted) return std::nullopt;
  // RFC 7692 section 7.1.2.2: in a response, client_max_window_bits carries a value.
  if (granted->client_max_window_bits && !granted->client_max_window_bits_value) return std::nullopt;

  deflate_params agreed;
  agreed.response = extension_name;
  agreed.client_max_window_bits = clamp_bits(ours.window_bits);
  if (granted->client_max_window_bits_value) {
    if (*granted->client_max_window_bits_value < min_compress_bits) return std::nullopt;
    agreed.client_max_window_bits = std::min(agreed.client_max_window_bits, *granted->client_max_window_bits_value);
  }
  const int asked_server_bits = clamp_bits(ours.peer_window_bits);
  agreed.server_max_window_bits = granted->server_max_window_bits.value_or(max_window_bits);
  if (agreed.server_max_window_bits > asked_server_bits) return std::nullopt; // a limit we asked for
  if (ours.peer_no_context_takeover && !granted->server_no_context_takeover) return std::nullopt;
  agreed.server_no_context_takeover = granted->server_no_context_takeover;
  agreed.client_no_context_takeover = granted->client_no_context_takeover || ours.no_context_takeover;
  return agreed;
}

// ---- deflater ----

struct deflater::state {
  counted_zlib counter;
  z_stream z{};
  bool no_context_takeover = false;
};

deflater::deflater(int window_bits, int mem_level, int level, bool no_context_takeover)
    : state_(std::make_unique<state>()) {
  state_->no_context_takeover = no_context_takeover;
  state_->counter.attach(state_->z);
  // Negative window bits: raw deflate, without zlib's header and checksum.
  if (deflateInit2(&state_->z, std::clamp(level, 1, 9), Z_DEFLATED, -clamp_bits(window_bits),
                   std::clamp(mem_level, 1, 9), Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::bad_alloc();
}

deflater::~deflater() { deflateEnd(&state_->z); }

void deflater::compress(std::span<const std::byte> in, bool fin, std::vector<std::byte>& out) {
  z_stream& z = state_->z;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  const std::size_t begin = out.size();
  // Sync flush after every piece: what was given goes out now, ending on a byte
  // boundary with an empty stored block.
  for (;;) {
    const std::size_t room = std::max<std::size_t>(deflateBound(&z, z.avail_in) + 16, 64);
    const std::size_t used = out.size();
    out.resize(used + room);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    z.avail_out = static_cast<uInt>(room);
    deflate(&z, Z_SYNC_FLUSH);
    out.resize(out.size() - z.avail_out);
    if (z.avail_out != 0 && z.avail_in == 0) break; // everything in, and flushed
  }
  if (fin) {
    const std::size_t produced = out.size() - begin;
    if (produced >= empty_block_tail.size() &&
        std::memcmp(out.data() + out.size() - empty_block_tail.size(), empty_block_tail.data(),
                    empty_block_tail.size()) == 0)
      out.resize(out.size() - empty_block_tail.size());
    else if (produced == 0)
      // zlib declines a flush right after another with no input in between (an empty
      // message after one that kept the context, or an empty last piece), so there is
      // no empty block to end on. RFC 7692 section 7.2.1 says to append one and drop
      // its last 4 bytes: at a byte boundary (where the last flush left the stream)
      // that leaves its header byte, 0x00. Without it the receiver's appended
      // 00 00 FF FF would start a stored block, not finish one.
      out.push_back(std::byte{0});
    if (state_->no_context_takeover) deflateReset(&z);
  }
}

std::size_t deflater::memory() const noexcept { return state_->counter.bytes; }

// ---- inflater ----

struct inflater::state {
  counted_zlib counter;
  z_stream z{};
  bool no_context_takeover = false;
  bool ended = false;      // the peer ended the deflate stream (BFINAL) in this message
  bool failed = false;
  bool has_data = false;   // the current message has had compressed bytes
  bool at_boundary = true; // zlib's last step ended between two blocks
  std::uint64_t limit = 0;
  std::uint64_t produced = 0; // bytes of the current message
};

inflater::inflater(int window_bits, bool no_context_takeover, std::uint64_t max_message_size)
    : state_(std::make_unique<state>()) {
  state_->no_context_takeover = no_context_takeover;
  state_->limit = max_message_size;
  state_->counter.attach(state_->z);
  // A window at least as large as the peer's decodes its data; zlib needs 9 or more.
  if (inflateInit2(&state_->z, -clamp_bits(window_bits)) != Z_OK) throw std::bad_alloc();
}

inflater::~inflater() { inflateEnd(&state_->z); }

std::error_code inflater::inflate(std::span<const std::byte> in, bool fin, std::string& out) {
  state& s = *state_;
  if (s.failed) return error::bad_deflate_data;
  const auto fail = [&](error e) {
    s.failed = true;
    return make_error_code(e);
  };
  // Inflates `bytes` in steps of bounded output, so a bomb stops at the limit.
  const auto feed = [&](const unsigned char* bytes, std::size_t size) -> std::error_code {
    z_stream& z = s.z;
    z.next_in = const_cast<Bytef*>(bytes);
    z.avail_in = static_cast<uInt>(size);
    constexpr std::size_t step = 16 * 1024;
    for (;;) {
      // After a final block (BFINAL) the message's deflate stream is over; what follows
      // is ignored, as the padding byte of RFC 7692's example in section 7.2.3.4.
      if (s.ended) return {};
      const std::uint64_t left = s.limit - s.produced;
      // One byte past the limit tells a message that is too big from one that fits.
      const std::size_t room = left >= step ? step : static_cast<std::size_t>(left) + 1;
      const std::size_t used = out.size();
      out.resize(used + room);
      z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
      z.avail_out = static_cast<uInt>(room);
      const int rc = ::inflate(&z, Z_SYNC_FLUSH);
      // data_type + 128: between blocks. Only a step that got somewhere tells (a step
      // with nothing to do turns zlib's "between blocks" into "reading a block head").
      if (rc == Z_OK || rc == Z_STREAM_END) s.at_boundary = (z.data_type & 128) != 0;
      const std::size_t got = room - z.avail_out;
      out.resize(used + got);
      s.produced += got;
      if (s.produced > s.limit) return fail(error::message_too_big);
      if (rc == Z_STREAM_END) {
        s.ended = true;
        continue;
      }
      // Z_BUF_ERROR: nothing more to do until more input comes.
      if (rc == Z_BUF_ERROR && z.avail_in == 0) return {};
      if (rc != Z_OK) return fail(error::bad_deflate_data);
      // A full output step may leave output inside zlib: go round until it is out.
      if (z.avail_in == 0 && z.avail_out != 0) return {};
    }
  };
  if (!in.empty()) s.has_data = true;
  if (const auto ec = feed(reinterpret_cast<const unsigned char*>(in.data()), in.size())) return ec;
  if (!fin) return {};
  // The message ends: put back the empty block the sender dropped (not after a final
  // block, which ended the stream). With it, the message must end between two blocks
  // (RFC 7692 7.2.1): one cut inside a block would leave the next message to be read as
  // its rest. A message with no compressed bytes at all is empty, and leaves the stream
  // as it was (the 00 00 FF FF alone would be such a cut block).
  if (!s.ended && s.has_data) {
    if (const auto ec = feed(empty_block_tail.data(), empty_block_tail.size())) return ec;
    if (!s.ended && !s.at_boundary) return fail(error::bad_deflate_data);
  }
  // After a final block, zlib needs a reset to take the next message.
  if (s.no_context_takeover || s.ended) inflateReset(&s.z);
  s.ended = false;
  s.has_data = false;
  s.produced = 0;
  return {};
}

std::size_t inflater::memory() const noexcept { return state_->counter.bytes; }

} // namespace websockets
