// Randomness for the protocol: masking keys and client handshake keys must be
// unpredictable (RFC 6455 sections 5.3 and 4.1), so they come from the operating
// system's cryptographic generator, never from a seeded PRNG.
#pragma once

#include <websockets/frame.hpp>

#include <cstddef>
#include <span>

namespace websockets {

/// Fills `out` with cryptographically strong random bytes (OpenSSL's RAND_bytes).
/// Throws `std::system_error` if the generator cannot be seeded, which on a working
/// system does not happen.
void fill_random(std::span<std::byte> out);

/// A fresh masking key. Keys are drawn from a per-thread pool refilled in batches, so a
/// frame costs no system call.
[[nodiscard]] mask_key random_mask_key();

} // namespace websockets
