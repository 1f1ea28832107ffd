/**
 * Block-quantized weight matrices in ggml's layouts (llama.cpp's
 * ggml-quants.c), so that GGUF tensors can be kept and multiplied as the
 * file stores them. A matrix is `rows` × `cols` (a Linear's [N, K]), row-major;
 * each row is a run of blocks, each block a few scales followed by small
 * integers:
 *
 *   q8_0  32 values in 34 bytes: f16 d, then 32 int8 q;            w = q·d
 *   q4_0  32 values in 18 bytes: f16 d, then 16 bytes of nibbles;   w = (q − 8)·d
 *         (byte j holds value j in its low nibble and value j + 16 in its high one)
 *   q4_k  256 values in 144 bytes: f16 d, f16 dmin, 12 bytes of eight 6-bit
 *         (scale, min) pairs, 128 bytes of nibbles;                 w = d·sc·q − dmin·m
 *   q6_k  256 values in 210 bytes: 128 bytes of low 4 bits, 64 bytes of high 2 bits,
 *         16 int8 scales, f16 d;                                    w = d·sc·(q − 32)
 *
 * The quantizers (q8_0, q4_0) reproduce ggml's reference quantize_row_q8_0 /
 * quantize_row_q4_0 bit for bit: every step is rounded to float32 as C does.
 */

export type QuantType = 'q8_0' | 'q4_0' | 'q4_k' | 'q6_k';

export interface QuantizedMatrix {
  type: QuantType;
  /** N: output features. */
  rows: number;
  /** K: input features, a multiple of the type's block size. */
  cols: number;
  /** rows × (cols / blockElements) blocks of blockBytes each. */
  data: Uint8Array;
  /**
   * How the blocks are ordered. 'ggml' (the default): each row's blocks in
   * turn, as GGUF stores them. 'rows16' (q4_0 and q8_0, rows a multiple of
   * 16): the native AVX-512 VNNI backend's layout, set in place the first
   * time it multiplies the matrix (interleaveRows16): groups of 16 rows
   * stored block by block, each group-block being the 16 f16 scales and then
   * the rows' quant bytes 4 at a time (slice i: bytes 4i … 4i+3 of row 0,
   * of row 1, … of row 15), so that one 64-byte load holds 4 bytes of all 16
   * rows. Same bytes, other order: readers take a row through storedRow.
   */
  layout?: QuantLayout;
}

export type QuantLayout = 'ggml' | 'rows16';

/** The rows of one interleaved group. */
export const INTERLEAVE = 16;

export const QUANT_BLOCKS: Record<QuantType, { elements: number; bytes: number }> = {
  q8_0: { elements: 32, bytes: 34 },
  q4_0: { elements: 32, bytes: 18 },
  q4_k: { elements: 256, bytes: 144 },
  q6_k: { elements: 256, bytes: 210 },
};

/** ggml's type numbers (what GGUF files and the native kernels use). */
export const GGML_TYPE: Record<QuantType, number> = { q4_0: 2, q8_0: 8, q4_k: 12, q6_k: 14 };

/** Bytes of one stored row of `cols` values. */
export function quantRowBytes(type: QuantType, cols: number): number {
  const b = QUANT_BLOCKS[type];
  if (cols % b.elements !== 0) throw new Error(`${type} rows need a multiple of ${b.elements} values, got ${cols}`);
  return (cols / b.elements) * b.bytes;
}

/** Whether `m` can be interleaved (q4_0 or q8_0, whole groups of 16 rows). */
export function canInterleave(m: QuantizedMatrix): boolean {
  return (m.type === 'q4_0' || m.type === 'q8_0') && m.rows % INTERLEAVE === 0;
}

/** Where row `row`'s block `b` starts in the interleaved layout: its group-block, and the row's lane in it. */
function groupBlock(m: QuantizedMatrix, row: number, b: number): { p: number; r: number } {
  const group = Math.floor(row / INTERLEAVE);
  return { p: (group * (m.cols / 32) + b) * INTERLEAVE * QUANT_BLOCKS[m.type].bytes, r: row % INTERLEAVE };
}

/**
 * Row `row` of m in ggml's layout: a view of the stored bytes, or (interleaved)
 * the row's blocks gathered into a new array.
 */
export function storedRow(m: QuantizedMatrix, row: number): Uint8Array {
  const rb = quantRowBytes(m.type, m.cols);
  if ((m.layout ?? 'ggml') === 'ggml') return m.data.subarray(row * rb, (row + 1) * rb);
  const { bytes } = QUANT_BLOCKS[m.type];
  const out = new Uint8Array(rb);
  const d = m.data;
  for (let b = 0, o = 0; b < m.cols / 32; b++, o += bytes) {
    const { p, r } = groupBlock(m, row, b);
    out[o] = d[p + 2 * r]!;
    out[o + 1] = d[p + 2 * r + 1]!;
    for (let j = 0; j < bytes - 2; j++) out[o + 2 + j] = d[p + 32 + 64 * (j >> 2) + 4 * r + (j & 3)]!;
  }
  return out;
}

/**
 * Rewrite m's bytes in place into the interleaved layout (see `layout`): the
 * reference for the native addon's interleaveQuantRows, which the native
 * backend uses (same bytes, faster).
 */
export function interleaveRows16(m: QuantizedMatrix): void {
  if (!canInterleave(m)) throw new Error(`interleaveRows16: a ${m.rows}×${m.cols} ${m.type} matrix cannot be interleaved (q4_0 or q8_0, rows a multiple of 16)`);
  if (m.layout === 'rows16') return;
  const { bytes } = QUANT_BLOCKS[m.type];
  const rows = Array.from({ length: m.rows }, (_, r) => storedRow(m, r).slice());
  m.layout = 'rows16';
  const d = m.data;
  rows.forEach((row, r) => {
    for (let b = 0, o = 0; b < m.cols / 32; b++, o += bytes) {
      const { p, r: lane } = groupBlock(m, r, b);
      d[p + 2 * lane] = row[o]!;
      d[p + 2 * lane + 1] = row[o + 1]!;
      for (let j = 0; j < bytes - 2; j++) d[p + 32 + 64 * (j >> 2) + 4 * lane + (j & 3)] = row[o + 2 + j]!;
    }
  });
}

// --- IEEE half precision (the block scales) ---

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits → number (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** float32 → IEEE binary16 bits, round to nearest even (what F16C's vcvtps2ph does for ggml). */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const e = (bits >>> 23) & 0xff;
  let m = bits & 0x7fffff;
  if (e === 255) return sign | 0x7c00 | (m ? 0x200 : 0);
  let he = e - 127 + 15;
  if (he >= 31) return sign | 0x7c00;
  if (he <= 0) {
    // Subnormal half: shift the full mantissa (with its hidden 1) into place, rounding to even.
    if (he < -10) return sign;
    m |= 0x800000;
    const shift = 14 - he;
    const half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  let hm = m >>> 13;
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && hm & 1)) {
    hm++;
    if (hm === 0x400) { hm = 0; he++; if (he >= 31) return sign | 0x7c00; }
  }
  return sign | (he << 10) | hm;
}

const fr = Math.fround;
/** C's roundf: half away from zero. */
const roundf = (x: number) => (x < 0 ? -Math.round(-x) : Math.round(x));

// --- Quantize (ggml's reference formulas) ---

/** One row of q8_0 blocks: d = max|x| / 127, q = roundf(x / d). */
function quantizeRowQ8_0(x: Float32Array, xo: number, k: number, out: Uint8Array, oo: number): void {
  const view = new DataView(out.buffer, out.byteOffset);
  for (let b = 0; b < k / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xo + b * 32 + j]!));
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    const base = oo + b * 34;
    view.setUint16(base, floatToHalf(d), true);
    for (let j = 0; j < 32; j++) view.setInt8(base + 2 + j, roundf(fr(x[xo + b * 32 + j]! * id)));
  }
}

/**
 * One row of q4_0 blocks: the value of largest magnitude (with its sign) maps
 * to −8, so d = max / −8 and q = min(15, trunc(x / d + 8.5)).
 */
function quantizeRowQ4_0(x: Float32Array, xo: number, k: number, out: Uint8Array, oo: number): void {
  const view = new DataView(out.buffer, out.byteOffset);
  for (let b = 0; b < k / 32; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + b * 32 + j]!;
      if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
    }
    const d = fr(max / -8);
    const id = d ? fr(1 / d) : 0;
    const base = oo + b * 18;
    view.setUint16(base, floatToHalf(d), true);
    for (let j = 0; j < 16; j++) {
      const x0 = fr(x[xo + b * 32 + j]! * id);
      const x1 = fr(x[xo + b * 32 + 16 + j]! * id);
      const q0 = Math.min(15, Math.trunc(fr(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(fr(x1 + 8.5)));
      out[base + 2 + j] = q0 | (q1 << 4);
    }
  }
}

/** Quantize a [rows, cols] float matrix to q8_0 or q4_0 (the types attn writes). */
export function quantizeMatrix(type: 'q8_0' | 'q4_0', w: Float32Array, rows: number, cols: number): QuantizedMatrix {
  const rb = quantRowBytes(type, cols);
  const data = new Uint8Array(rows * rb);
  const row = type === 'q8_0' ? quantizeRowQ8_0 : quantizeRowQ4_0;
  for (let r = 0; r < rows; r++) row(w, r * cols, cols, data, r * rb);
  return { type, rows, cols, data };
}

// --- Dequantize ---

/** The (scale, min) pair j (0–7) of a q4_k block's 12 packed bytes at s: 6 bits each. */
function scaleMinK4(j: number, q: Uint8Array, s: number): [number, number] {
  if (j < 4) return [q[s + j]! & 63, q[s + j + 4]! & 63];
  return [(q[s + j + 4]! & 0xf) | ((q[s + j - 4]! >> 6) << 4), (q[s + j + 4]! >> 4) | ((q[s + j]! >> 6) << 4)];
}

/** Row `row` of m as floats into out[oo …]. */
export function dequantizeRow(m: QuantizedMatrix, row: number, out: Float32Array, oo = 0): void {
  const { type, cols } = m;
  const { elements, bytes } = QUANT_BLOCKS[type];
  const data = storedRow(m, row);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let b = 0; b < cols / elements; b++) {
    const p = b * bytes;
    const y = oo + b * elements;
    if (type === 'q8_0') {
      const d = halfToFloat(view.getUint16(p, true));
      for (let j = 0; j < 32; j++) out[y + j] = view.getInt8(p + 2 + j) * d;
    } else if (type === 'q4_0') {
      const d = halfToFloat(view.getUint16(p, true));
      for (let j = 0; j < 16; j++) {
        const byte = data[p + 2 + j]!;
        out[y + j] = ((byte & 0xf) - 8) * d;
        out[y + j + 16] = ((byte >> 4) - 8) * d;
      }
    } else if (type === 'q4_k') {
      // 4 groups of 64 values; each group's 32 bytes hold two sub-blocks of 32 (low, then high nibbles).
      const d = halfToFloat(view.getUint16(p, true));
      const dmin = halfToFloat(view.getUint16(p + 2, true));
      for (let g = 0; g < 4; g++) {
        const [sc1, m1] = scaleMinK4(2 * g, data, p + 4);
        const [sc2, m2] = scaleMinK4(2 * g + 1, data, p + 4);
        const q = p + 16 + 32 * g;
        for (let l = 0; l < 32; l++) {
          out[y + 64 * g + l] = fr(d * sc1) * (data[q + l]! & 0xf) - fr(dmin * m1);
          out[y + 64 * g + 32 + l] = fr(d * sc2) * (data[q + l]! >> 4) - fr(dmin * m2);
        }
      }
    } else {
      // q6_k: two halves of 128 values; ql 64 bytes, qh 32 bytes and 8 scales per half.
      const d = halfToFloat(view.getUint16(p + 208, true));
      for (let h = 0; h < 2; h++) {
        const ql = p + 64 * h;
        const qh = p + 128 + 32 * h;
        const sc = p + 192 + 8 * h;
        const yh = y + 128 * h;
        for (let l = 0; l < 32; l++) {
          const is = l >> 4;
          const hb = data[qh + l]!;
          const q1 = ((data[ql + l]! & 0xf) | ((hb & 3) << 4)) - 32;
          const q2 = ((data[ql + l + 32]! & 0xf) | (((hb >> 2) & 3) << 4)) - 32;
          const q3 = ((data[ql + l]! >> 4) | (((hb >> 4) & 3) << 4)) - 32;
          const q4 = ((data[ql + l + 32]! >> 4) | (((hb >> 6) & 3) << 4)) - 32;
          out[yh + l] = fr(d * view.getInt8(sc + is)) * q1;
          out[yh + l + 32] = fr(d * view.getInt8(sc + is + 2)) * q2;
          out[yh + l + 64] = fr(d * view.getInt8(sc + is + 4)) * q3;
          out[yh + l + 96] = fr(d * view.getInt8(sc + is + 6)) * q4;
        }
      }
    }
  }
}

/** The whole matrix as floats [rows, cols]. */
export function dequantizeMatrix(m: QuantizedMatrix, out = new Float32Array(m.rows * m.cols)): Float32Array {
  for (let r = 0; r < m.rows; r++) dequantizeRow(m, r, out, r * m.cols);
  return out;
}
