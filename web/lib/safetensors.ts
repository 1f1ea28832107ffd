/**
 * The safetensors format, in the browser: an 8-byte little-endian header length,
 * a JSON header { name: { dtype, shape, data_offsets } }, then the raw data.
 * The page writes F32 (what the CLI writes) and reads F32, F16 and BF16.
 * (src/io/safetensors.ts is the full, validating version; it reads files with node:fs.)
 */

export interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

export function encodeSafetensors(tensors: Map<string, F32Tensor>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const size = t.data.length * 4;
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil((8 + json.length) / 8) * 8 - 8; // data starts 8-byte aligned
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const t of tensors.values()) {
    for (let i = 0; i < t.data.length; i++) view.setFloat32(at + 4 * i, t.data[i]!, true);
    at += t.data.length * 4;
  }
  return out;
}

function f16(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const bf16Bits = new Uint32Array(1);
const bf16Float = new Float32Array(bf16Bits.buffer);
/** bfloat16 is the top half of a float32. */
function bf16(bits: number): number {
  bf16Bits[0] = bits << 16;
  return bf16Float[0]!;
}

/** Tensors as float32, whatever their stored float type. Throws one-line errors on malformed files. */
export function decodeSafetensors(bytes: Uint8Array, source = 'model.safetensors'): Map<string, F32Tensor> {
  if (bytes.length < 8) throw new Error(`${source}: too short to be a safetensors file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (8 + n > bytes.length) throw new Error(`${source}: header length ${n} runs past the end of the file`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch {
    throw new Error(`${source}: the header is not valid JSON`);
  }
  const base = 8 + n;
  const out = new Map<string, F32Tensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, end] = e.data_offsets;
    const count = e.shape.reduce((a, c) => a * c, 1);
    const width = { F32: 4, F16: 2, BF16: 2 }[e.dtype];
    if (width === undefined) throw new Error(`${source}: tensor ${name} has dtype ${e.dtype}; the page reads F32, F16 and BF16`);
    if (end - b !== count * width || base + end > bytes.length) throw new Error(`${source}: tensor ${name} has a bad size or offset`);
    const data = new Float32Array(count);
    const at = base + b;
    for (let i = 0; i < count; i++) {
      if (e.dtype === 'F32') data[i] = view.getFloat32(at + 4 * i, true);
      else if (e.dtype === 'F16') data[i] = f16(view.getUint16(at + 2 * i, true));
      else data[i] = bf16(view.getUint16(at + 2 * i, true));
    }
    out.set(name, { shape: e.shape, data });
  }
  return out;
}
