// Memory read bandwidth probe: see stream_read.cc.
#pragma once
#include <cstdint>

namespace attn {
// Reads all n bytes once (on the pool's threads); returns their XOR fold.
uint64_t stream_read(const uint8_t* p, long n);
}  // namespace attn
