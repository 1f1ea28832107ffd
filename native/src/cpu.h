// Which SIMD instruction set the kernels use, chosen once at run time from the
// CPU's features (a binary built here must also run on older or ARM CPUs).
#pragma once

namespace attn {

enum class Isa { Portable = 0, Avx2 = 1, Avx512 = 2 };

Isa detected_isa();           // the best the CPU supports
Isa current_isa();            // what kernels use now
bool set_isa(Isa isa);        // false if the CPU cannot run it (tests force Portable)
const char* isa_name(Isa isa);

}  // namespace attn
