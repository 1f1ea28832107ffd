// The counter-based dropout hash of src/backend/js/dropout.ts (murmur3's 32-bit
// finaliser over a Weyl sequence): element i's decision depends on (seed, i)
// alone, so any split across threads makes the js reference's mask. vec_impl.inc
// keeps its own copy (it is compiled inside per-ISA namespaces); the tests check
// both against js.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace attn {

static inline uint32_t drop_bits(uint32_t seed, uint32_t i) {
  uint32_t h = seed ^ (i * 0x9E3779B9u);
  h = (h ^ (h >> 16)) * 0x85EBCA6Bu;
  h = (h ^ (h >> 13)) * 0xC2B2AE35u;
  return h ^ (h >> 16);
}

// Elements whose hash is below this are dropped (js: dropThreshold).
static inline uint32_t drop_threshold(double p) { return (uint32_t)std::min(4294967295.0, std::floor(p * 4294967296.0)); }

}  // namespace attn
