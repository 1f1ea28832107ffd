// Memory read bandwidth probe: see stream_read.cc.
#pragma once
#include <cstdint>

namespace attn {
// Reads all n bytes once (on the pool's threads); returns their XOR fold. With `timing`
// (4 doubles per pool thread): for slice t, the thread that read it, its start and end in ns
// after the call began, and that thread's CPU ns for it.
uint64_t stream_read(const uint8_t* p, long n, double* timing = nullptr);
}  // namespace attn
