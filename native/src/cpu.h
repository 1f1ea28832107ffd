// Which SIMD instruction set the kernels use, chosen once at run time from the
// CPU's features (a binary built here must also run on older or ARM CPUs).
#pragma once

namespace attn {

enum class Isa { Portable = 0, Avx2 = 1, Avx512 = 2 };

Isa detected_isa();           // the best the CPU supports
Isa current_isa();            // what kernels use now
bool set_isa(Isa isa);        // false if the CPU cannot run it (tests force Portable)
const char* isa_name(Isa isa);

// AVX-512 BF16 (vdpbf16ps) for mixed-precision GEMMs, on top of AVX-512. Off
// when the CPU lacks it or ATTN_ISA names any level (portable, avx2, avx512:
// "no higher than that"); ATTN_ISA=avx512bf16 or no ATTN_ISA leaves it on.
bool cpu_has_bf16();
bool bf16_dot();              // bf16 products use vdpbf16ps now
bool set_bf16_dot(bool on);   // false if the CPU cannot

}  // namespace attn
