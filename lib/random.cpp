#include <websockets/random.hpp>

#include <openssl/rand.h>

#include <array>
#include <climits>
#include <cstring>
#include <system_error>

namespace websockets {

void fill_random(std::span<std::byte> out) {
  while (!out.empty()) {
    // RAND_bytes takes an int count.
    const auto chunk = out.size() < static_cast<std::size_t>(INT_MAX) ? out.size() : static_cast<std::size_t>(INT_MAX);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(chunk)) != 1)
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                              "websockets: the random generator failed");
    out = out.subspan(chunk);
  }
}

mask_key random_mask_key() {
  // 64 keys per refill: one generator call every 64 client frames.
  thread_local std::array<std::byte, 256> pool;
  thread_local std::size_t used = pool.size();
  if (used == pool.size()) {
    fill_random(pool);
    used = 0;
  }
  mask_key key;
  std::memcpy(key.data(), pool.data() + used, key.size());
  // Never hand the same bytes out twice.
  std::memset(pool.data() + used, 0, key.size());
  used += key.size();
  return key;
}

} // namespace websockets
