import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { bf16ToF32 } from './safetensors.js';
import { dequantizeMatrix, halfToFloat, QUANT_BLOCKS, type QuantizedMatrix, type QuantType } from '../backend/quantized_matrix.js';
import { backend } from '../backend/index.js';
import { UserError } from '../util/errors.js';

/**
 * GGUF (version 3), llama.cpp's model file: everything little-endian,
 *
 *   "GGUF"  u32 version  u64 tensor_count  u64 metadata_count
 *   metadata: (string key, u32 value type, value) × metadata_count
 *   tensor infos: (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset) × tensor_count
 *   padding to `general.alignment` (default 32)
 *   data: each tensor at data_start + offset (offsets are multiples of the alignment)
 *
 * A string is a u64 byte length and UTF-8 bytes; an array is a u32 item type,
 * a u64 count and the items. dims[0] is the fastest-varying dimension: a
 * PyTorch weight [out, in] has dims [in, out], and a quantized matrix's rows
 * run along dims[0] in blocks.
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF's metadata value types, by number. */
export const GGUF_VALUE_TYPES = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'bool', 'string', 'array', 'uint64', 'int64', 'float64'] as const;
export type GGUFValueType = (typeof GGUF_VALUE_TYPES)[number];

/** A metadata value as read (arrays may nest). */
export type GGUFRaw = number | bigint | boolean | string | GGUFRaw[];

/** One metadata value with its GGUF type (kept so a file can be written back the same). */
export type GGUFValue =
  | { type: 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64'; value: number }
  | { type: 'uint64' | 'int64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: GGUFValueType; value: GGUFRaw[] };

/** The tensor types attn reads, by ggml's numbers. */
export type GGUFTensorType = 'f32' | 'f16' | 'bf16' | QuantType;
export const GGML_TYPES: Record<number, GGUFTensorType> = { 0: 'f32', 1: 'f16', 2: 'q4_0', 8: 'q8_0', 12: 'q4_k', 14: 'q6_k', 30: 'bf16' };
export const GGML_TYPE_NUMBER: Record<GGUFTensorType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8, q4_k: 12, q6_k: 14, bf16: 30 };

/** Elements per block and bytes per block of each tensor type. */
export function typeBlock(type: GGUFTensorType): { elements: number; bytes: number } {
  if (type === 'f32') return { elements: 1, bytes: 4 };
  if (type === 'f16' || type === 'bf16') return { elements: 1, bytes: 2 };
  return QUANT_BLOCKS[type];
}

export interface GGUFTensor {
  name: string;
  /** ggml order: dims[0] varies fastest (a row of a matrix). */
  dims: number[];
  type: GGUFTensorType;
  /** The stored bytes, a view into the file's buffer (no copy). */
  bytes: Uint8Array;
}

export interface GGUFFile {
  version: number;
  alignment: number;
  metadata: Map<string, GGUFValue>;
  tensors: Map<string, GGUFTensor>;
}

/** Thrown when the header runs past the prefix of the file read so far: read a longer prefix. */
class HeaderPastPrefix extends Error {}

/** Reads little-endian values from a buffer, failing with one clear line when the buffer ends. */
class Cursor {
  pos = 0;
  private readonly view: DataView;
  private readonly text = new TextDecoder('utf-8');
  /** `bytes` may be only the start of a file of `fileSize` bytes (a large file's header is read alone). */
  constructor(private readonly bytes: Uint8Array, private readonly source: string, private readonly fileSize = bytes.length) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string): void {
    if (this.pos + n <= this.bytes.length) return;
    if (this.bytes.length < this.fileSize) throw new HeaderPastPrefix();
    throw new UserError(`${this.source}: truncated GGUF file (it ends inside the ${what})`);
  }
  u32(what: string): number { this.need(4, what); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  u64(what: string): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${this.source}: ${what} is ${v}, too large to be real (corrupt file?)`);
    return Number(v);
  }
  string(what: string): string {
    const n = this.u64(what);
    this.need(n, what);
    const s = this.text.decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  value(type: number, key: string): GGUFRaw {
    const v = this.view;
    const at = (n: number) => { this.need(n, `value of ${key}`); const p = this.pos; this.pos += n; return p; };
    switch (GGUF_VALUE_TYPES[type]) {
      case 'uint8': return v.getUint8(at(1));
      case 'int8': return v.getInt8(at(1));
      case 'uint16': return v.getUint16(at(2), true);
      case 'int16': return v.getInt16(at(2), true);
      case 'uint32': return v.getUint32(at(4), true);
      case 'int32': return v.getInt32(at(4), true);
      case 'float32': return v.getFloat32(at(4), true);
      case 'bool': return v.getUint8(at(1)) !== 0;
      case 'string': return this.string(`value of ${key}`);
      case 'uint64': return v.getBigUint64(at(8), true);
      case 'int64': return v.getBigInt64(at(8), true);
      case 'float64': return v.getFloat64(at(8), true);
      case 'array': {
        const itemType = this.u32(`array type of ${key}`);
        if (GGUF_VALUE_TYPES[itemType] === undefined) throw new UserError(`${this.source}: metadata ${key} is an array of unknown value type ${itemType}`);
        const n = this.u64(`array length of ${key}`);
        const items: GGUFRaw[] = [];
        for (let i = 0; i < n; i++) items.push(this.value(itemType, key));
        return items;
      }
      default: throw new UserError(`${this.source}: metadata ${key} has unknown value type ${type}`);
    }
  }
}

/** Where each tensor lies in the file: what the header says, before any tensor byte is read. */
interface GGUFLayout {
  version: number;
  alignment: number;
  metadata: Map<string, GGUFValue>;
  infos: { name: string; dims: number[]; type: GGUFTensorType; offset: number; size: number }[];
  dataStart: number;
}

/**
 * Parse the header (metadata and tensor infos). `bytes` holds the file's
 * first bytes (all of it, or a prefix of a file of `fileSize` bytes: then
 * HeaderPastPrefix says a longer prefix is needed).
 */
/** Whether a file starts with GGUF's magic (false when it cannot be read): an earlier export, which a new one may replace. */
export function hasGGUFMagic(path: string): boolean {
  const head = new Uint8Array(4);
  try {
    const fd = openSync(path, 'r');
    try {
      if (readSync(fd, head, 0, 4, 0) < 4) return false;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
  return new DataView(head.buffer).getUint32(0, true) === GGUF_MAGIC;
}

function parseLayout(bytes: Uint8Array, source: string, fileSize = bytes.length): GGUFLayout {
  const c = new Cursor(bytes, source, fileSize);
  if (bytes.length < 4 || new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true) !== GGUF_MAGIC) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new UserError(`${source}: not a GGUF file (it starts with bytes ${head || 'nothing'}, not "GGUF")`);
  }
  c.pos = 4;
  const version = c.u32('header');
  // Version 1 counted with u32s; 2 and 3 share this layout (3 added big-endian files, which start "FUGG"-swapped and fail the version check).
  if (version !== 2 && version !== 3) throw new UserError(`${source}: GGUF version ${version} is not supported (attn reads versions 2 and 3)`);
  const nTensors = c.u64('header');
  const nKv = c.u64('header');

  const metadata = new Map<string, GGUFValue>();
  for (let i = 0; i < nKv; i++) {
    const key = c.string('metadata');
    const type = c.u32(`metadata ${key}`);
    const name = GGUF_VALUE_TYPES[type];
    if (name === undefined) throw new UserError(`${source}: metadata ${key} has unknown value type ${type}`);
    const start = c.pos;
    const value = c.value(type, key);
    if (name === 'array') {
      const itemType = GGUF_VALUE_TYPES[new DataView(bytes.buffer, bytes.byteOffset).getUint32(start, true)]!;
      metadata.set(key, { type: 'array', itemType, value: value as GGUFRaw[] });
    } else metadata.set(key, { type: name, value } as GGUFValue);
  }

  const align = metadata.get('general.alignment');
  const alignment = align === undefined ? GGUF_DEFAULT_ALIGNMENT : Number(align.value);
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) throw new UserError(`${source}: general.alignment ${String(align?.value)} must be a positive multiple of 8`);

  const infos: { name: string; dims: number[]; type: GGUFTensorType; offset: number; size: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.string('tensor infos');
    const nDims = c.u32(`tensor ${name}`);
    if (nDims > 4) throw new UserError(`${source}: tensor ${name} has ${nDims} dimensions (ggml allows at most 4)`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(c.u64(`tensor ${name}`));
    const typeNumber = c.u32(`tensor ${name}`);
    const type = GGML_TYPES[typeNumber];
    if (!type) throw new UserError(`${source}: tensor ${name} has ggml type ${typeNumber}, which attn does not read (it reads F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K)`);
    const offset = c.u64(`tensor ${name}`);
    if (offset % alignment !== 0) throw new UserError(`${source}: tensor ${name} is at offset ${offset}, not a multiple of the alignment ${alignment}`);
    const { elements, bytes: blockBytes } = typeBlock(type);
    if ((dims[0] ?? 1) % elements !== 0) throw new UserError(`${source}: tensor ${name} (${type}) has rows of ${dims[0]} values, not a multiple of its block size ${elements}`);
    const count = dims.reduce((a, b) => a * b, 1);
    infos.push({ name, dims, type, offset, size: (count / elements) * blockBytes });
  }

  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const seen = new Set<string>();
  for (const t of infos) {
    const end = dataStart + t.offset + t.size;
    if (end > fileSize) throw new UserError(`${source}: tensor ${t.name} ends at byte ${end} but the file has ${fileSize} bytes (truncated file)`);
    if (seen.has(t.name)) throw new UserError(`${source}: tensor ${t.name} appears twice`);
    seen.add(t.name);
  }
  return { version, alignment, metadata, infos, dataStart };
}

/** Parse a GGUF file held in memory. Tensor data stays where it is: each tensor's bytes are a view. */
export function parseGGUF(bytes: Uint8Array, source = 'GGUF'): GGUFFile {
  const { version, alignment, metadata, infos, dataStart } = parseLayout(bytes, source);
  const tensors = new Map<string, GGUFTensor>();
  for (const t of infos) tensors.set(t.name, { name: t.name, dims: t.dims, type: t.type, bytes: bytes.subarray(dataStart + t.offset, dataStart + t.offset + t.size) });
  return { version, alignment, metadata, tensors };
}

export interface ReadGGUFOptions {
  /**
   * Files up to this size are read whole into one buffer. Larger ones (a 1B
   * model in F32 is 4.4 GB, past both readFileSync's 2 GiB and a typed
   * array's 4 GiB) are read tensor by tensor with positioned reads, each
   * tensor into a buffer of its own. Lowered by tests to take that path on
   * small files.
   */
  wholeFileBytes?: number;
  /** The most bytes one positioned read asks for (read() itself stops short of 2 GiB). */
  readChunkBytes?: number;
  /** Whole files from this size on go into huge pages when the backend offers them (8 MB; lowered by tests). */
  hugePageFileBytes?: number;
}

export const GGUF_WHOLE_FILE_BYTES = 2 ** 30;
const READ_CHUNK_BYTES = 2 ** 30;

/** Read a GGUF file (quantized tensors stay quantized): one buffer with views into it, or, when large, one buffer per tensor. */
export function readGGUF(path: string, o: ReadGGUFOptions = {}): GGUFFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new UserError(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size <= (o.wholeFileBytes ?? GGUF_WHOLE_FILE_BYTES)) {
      const huge = hugePageBytes(size, o.hugePageFileBytes ?? HUGE_PAGE_FILE_BYTES);
      if (huge) {
        readFully(fd, huge, 0, o.readChunkBytes ?? READ_CHUNK_BYTES, path);
        return parseGGUF(huge, path);
      }
      let buf: Uint8Array = readFileSync(fd);
      // Typed views need aligned starts: a small file can come in Node's shared pool at any offset.
      if (buf.byteOffset % 8 !== 0) buf = new Uint8Array(buf);
      return parseGGUF(buf, path);
    }
    return readGGUFByTensor(fd, size, path, o.readChunkBytes ?? READ_CHUNK_BYTES);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot read ${path}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/** Whole files from this size on are read into huge pages where the backend offers them. */
export const HUGE_PAGE_FILE_BYTES = 8 << 20;

/**
 * A buffer of `size` bytes in 2 MB pages, or null (small file, or a backend
 * without them). A quantized model's decode streams every weight byte once a
 * token, straight from this buffer: through 4 KB pages that is a TLB miss
 * every 4 KB (150 000 a token for a 1B Q4_0 model); through 2 MB pages, one
 * every 2 MB (docs/quantized_inference.md, "Decode, fifth pass").
 */
function hugePageBytes(size: number, from: number): Uint8Array | null {
  if (size < from) return null;
  const floats = backend().hugePageArray?.(Math.ceil(size / 4));
  return floats ? new Uint8Array(floats.buffer, 0, size) : null;
}

/** Fill `into` from the file at `position`, `chunk` bytes per read at most. */
function readFully(fd: number, into: Uint8Array, position: number, chunk: number, source: string): void {
  for (let done = 0; done < into.length; ) {
    const n = readSync(fd, into, done, Math.min(chunk, into.length - done), position + done);
    if (n === 0) throw new UserError(`${source}: truncated GGUF file (it ended while reading at byte ${position + done})`);
    done += n;
  }
}

function readGGUFByTensor(fd: number, size: number, source: string, chunk: number): GGUFFile {
  // The header (mostly the tokenizer's vocabulary) is small: read a prefix, longer until it holds the whole header.
  let layout: GGUFLayout | null = null;
  for (let n = Math.min(size, chunk, 1 << 20); !layout; n = Math.min(size, n * 4)) {
    const prefix = new Uint8Array(n);
    readFully(fd, prefix, 0, chunk, source);
    try {
      layout = parseLayout(prefix, source, size);
    } catch (e) {
      if (!(e instanceof HeaderPastPrefix)) throw e;
    }
  }
  const tensors = new Map<string, GGUFTensor>();
  for (const t of layout.infos) {
    const bytes = new Uint8Array(t.size); // its own ArrayBuffer: aligned for Float32Array views
    readFully(fd, bytes, layout.dataStart + t.offset, chunk, source);
    tensors.set(t.name, { name: t.name, dims: t.dims, type: t.type, bytes });
  }
  return { version: layout.version, alignment: layout.alignment, metadata: layout.metadata, tensors };
}

/** A metadata value, or undefined. */
export function ggufValue(file: GGUFFile, key: string): GGUFRaw | undefined {
  return file.metadata.get(key)?.value;
}

/** A tensor's values as float32 (a copy; quantized types are dequantized). */
export function tensorToFloat32(t: GGUFTensor): Float32Array {
  const n = t.dims.reduce((a, b) => a * b, 1);
  const b = t.bytes;
  switch (t.type) {
    case 'f32':
      return b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, n).slice() : new Float32Array(b.slice().buffer);
    case 'f16':
    case 'bf16': {
      const out = new Float32Array(n);
      const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const conv = t.type === 'f16' ? halfToFloat : bf16ToF32;
      for (let i = 0; i < n; i++) out[i] = conv(v.getUint16(2 * i, true));
      return out;
    }
    default:
      return dequantizeMatrix(tensorAsQuantized(t));
  }
}

/** A block-quantized tensor as a matrix of dims[0] columns, without copying its bytes. */
export function tensorAsQuantized(t: GGUFTensor): QuantizedMatrix {
  if (t.type === 'f32' || t.type === 'f16' || t.type === 'bf16') throw new Error(`tensor ${t.name} is ${t.type}, not block-quantized`);
  const cols = t.dims[0] ?? 1;
  const rows = t.dims.slice(1).reduce((a, b) => a * b, 1);
  return { type: t.type, rows, cols, data: t.bytes };
}
