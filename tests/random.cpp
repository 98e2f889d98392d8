// Randomness: keys are drawn fresh, never repeated from the pool.
#include <websockets/random.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <set>

TEST_CASE("mask keys are not repeated across many pool refills") {
  std::set<std::uint32_t> keys;
  for (int i = 0; i < 10000; ++i) {
    const auto key = websockets::random_mask_key();
    std::uint32_t value;
    std::memcpy(&value, key.data(), 4);
    keys.insert(value);
  }
  // 10,000 draws from 2^32 values: a collision has probability about 1%; more than
  // two means the pool hands out stale or constant bytes.
  CHECK(keys.size() >= 9998);
}

TEST_CASE("fill_random fills every byte of large and small buffers") {
  std::array<std::byte, 4096> a{}, b{};
  websockets::fill_random(a);
  websockets::fill_random(b);
  CHECK(a != b);
  // Every byte value should appear in 8 KiB of random bytes but a zero-filled tail
  // would show up as a long run of zeros.
  std::size_t longest_zero_run = 0, run = 0;
  for (auto byte : a) {
    run = byte == std::byte{0} ? run + 1 : 0;
    longest_zero_run = std::max(longest_zero_run, run);
  }
  CHECK(longest_zero_run < 8);
  std::array<std::byte, 1> one{};
  websockets::fill_random(std::span<std::byte>{one.data(), 0});  // an empty span is fine
}
