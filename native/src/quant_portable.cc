// Block-quantized products for any CPU (plain loops the compiler vectorizes).
#include <algorithm>
#include <cstring>
#include <vector>

#include "quant.h"
namespace attn { namespace portable {
#define QUANT_SIMD 0
#include "quant_impl.inc"
void quant_rows(const QuantLinear& g, const QuantActs& a, int n0, int n1) { rows_impl(g, a, n0, n1); }
}}  // namespace attn::portable
