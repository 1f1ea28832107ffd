/**
 * The Hugging Face safetensors format as bytes: parse and serialise, so that
 * weights can be exchanged with PyTorch without pickle. Pure (no node:fs), so
 * the browser page uses this same codec; `safetensors.ts` adds the files.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON header,
 * then one raw little-endian byte buffer that the header indexes into.
 */

/** The dtypes this project needs; anything else is rejected rather than guessed at. */
export type DType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'I8';

/** Array type a dtype decodes to: half floats widen to float32 so callers get one float type. */
export type TensorData = Float32Array | Int32Array | BigInt64Array | Int8Array;

/** One decoded tensor. `data` is row-major and owns its memory (never a view of the file). */
export interface TensorEntry {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

/** Input accepted by the writer; the same shape as what the reader returns, so files round-trip. */
export type TensorInput = TensorEntry;

/** Writers accept a Map (keeps order for any key) or a plain object for convenience. */
export type TensorCollection = Map<string, TensorInput> | Record<string, TensorInput>;

export interface SafetensorsFile {
  /** In header order, which is also the order the writer laid the data out. */
  tensors: Map<string, TensorEntry>;
  /** The free-form `__metadata__` map; empty when the file has none. */
  metadata: Record<string, string>;
}

/** Thrown for every malformed file or invalid write request, so callers can catch format problems alone. */
export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

const DTYPE_SIZE: Record<DType, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, I8: 1 };
const SUPPORTED = Object.keys(DTYPE_SIZE).join(', ');
/** Same cap as the reference implementation: guards against allocating for garbage lengths. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(DTYPE_SIZE, value);
}

// ---------------------------------------------------------------------------
// Half-precision conversion. Done with exact arithmetic on doubles (scaling by
// powers of two never rounds), so the result is correctly rounded even for
// inputs that are not float32 values, and independent of host endianness.
// ---------------------------------------------------------------------------

/** Bit layout of a small IEEE-style binary float. */
interface HalfFormat {
  expBits: number;
  mantBits: number;
}
const F16: HalfFormat = { expBits: 5, mantBits: 10 };
const BF16: HalfFormat = { expBits: 8, mantBits: 7 };

function decodeHalf(bits: number, fmt: HalfFormat): number {
  const { expBits, mantBits } = fmt;
  const expMax = (1 << expBits) - 1;
  const bias = expMax >> 1;
  const sign = bits & (1 << (expBits + mantBits)) ? -1 : 1;
  const exp = (bits >>> mantBits) & expMax;
  const mant = bits & ((1 << mantBits) - 1);
  if (exp === expMax) return mant === 0 ? sign * Infinity : NaN;
  // Subnormals have no implicit leading 1 and share the smallest normal exponent.
  if (exp === 0) return sign * mant * 2 ** (1 - bias - mantBits);
  return sign * (mant + (1 << mantBits)) * 2 ** (exp - bias - mantBits);
}

/** Round a non-negative value to an integer, ties to even (IEEE default rounding). */
function roundHalfEven(q: number): number {
  const floor = Math.floor(q);
  const diff = q - floor; // exact: q is small enough that no bits are lost
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor + (floor & 1);
}

/** floor(log2(a)) for finite a > 0; Math.log2 alone may be off by one near powers of two. */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  else if (2 ** (e + 1) <= a) e += 1;
  return e;
}

function encodeHalf(x: number, fmt: HalfFormat): number {
  const { expBits, mantBits } = fmt;
  const expMax = (1 << expBits) - 1;
  const bias = expMax >> 1;
  const signBit = 1 << (expBits + mantBits);
  const infBits = expMax << mantBits;
  // A single quiet NaN: payloads carry no meaning for model weights.
  if (Number.isNaN(x)) return infBits | (1 << (mantBits - 1));
  const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | infBits;

  const minExp = 1 - bias;
  if (a < 2 ** minExp) {
    // Subnormal: count units of the smallest subnormal. Rounding up to
    // 2^mantBits lands exactly on the smallest normal's encoding.
    return sign | roundHalfEven(a * 2 ** (mantBits - minExp));
  }
  let e = exponentOf(a);
  if (e > bias) return sign | infBits;
  let m = roundHalfEven(a * 2 ** (mantBits - e)); // in [2^mantBits, 2^(mantBits+1)]
  if (m === 2 ** (mantBits + 1)) {
    // Rounded up into the next binade (possibly overflowing to infinity).
    m = 2 ** mantBits;
    e += 1;
    if (e > bias) return sign | infBits;
  }
  return sign | ((e + bias) << mantBits) | (m - 2 ** mantBits);
}

/** IEEE binary16 bits -> number. Exact: every half value is a float32 value. */
export function f16ToF32(bits: number): number {
  return decodeHalf(bits & 0xffff, F16);
}

/** number -> IEEE binary16 bits, round to nearest even; overflow gives ±Infinity. */
export function f32ToF16(x: number): number {
  return encodeHalf(x, F16);
}

/** bfloat16 bits -> number. Exact: bfloat16 is a truncated float32. */
export function bf16ToF32(bits: number): number {
  return decodeHalf(bits & 0xffff, BF16);
}

/** number -> bfloat16 bits, round to nearest even (not truncation, which biases weights toward zero). */
export function f32ToBf16(x: number): number {
  return encodeHalf(x, BF16);
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/** Validated header record, kept with its name for error messages and overlap checks. */
interface HeaderEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

/** Builds a throw helper that prefixes every message with the file name when known. */
function failer(source: string | undefined): (problem: string) => never {
  return (problem: string): never => {
    const text = source === undefined ? problem : `${source}: ${problem}`;
    // One line per error keeps logs and CLI output readable.
    throw new SafetensorsError(text.replace(/\s*\n\s*/g, ' '));
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function describe(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** Reads and JSON-decodes the header; returns it with the byte offset where the data buffer starts. */
function readHeader(
  bytes: Uint8Array,
  fail: (problem: string) => never,
): { header: Record<string, unknown>; dataStart: number } {
  if (bytes.length < 8) {
    fail(`file is shorter than 8 bytes (${bytes.length}), so it has no header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${declared} is absurd (limit ${MAX_HEADER_BYTES} bytes); not a safetensors file?`);
  }
  const headerLength = Number(declared);
  if (8 + headerLength > bytes.length) {
    fail(`header length ${headerLength} is larger than the ${bytes.length - 8} bytes after the length field (file truncated?)`);
  }

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text); // tolerates the trailing-space padding writers add
  } catch (err) {
    fail(`header is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(header)) {
    fail(`header must be a JSON object, got ${Array.isArray(header) ? 'an array' : describe(header)}`);
  }
  return { header, dataStart: 8 + headerLength };
}

function parseMetadata(value: unknown, fail: (problem: string) => never): Record<string, string> {
  if (!isPlainObject(value)) fail(`${METADATA_KEY} must be an object of strings`);
  const metadata: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(`${METADATA_KEY}.${key} must be a string, got ${describe(v)}`);
    metadata[key] = v;
  }
  return metadata;
}

function parseEntry(
  name: string,
  raw: unknown,
  bufferLength: number,
  fail: (problem: string) => never,
): HeaderEntry {
  const where = `tensor ${JSON.stringify(name)}`;
  if (!isPlainObject(raw)) fail(`${where}: header entry must be an object`);
  const { dtype, shape, data_offsets: offsets } = raw;

  if (!isDType(dtype)) fail(`${where}: unsupported dtype ${describe(dtype)} (supported: ${SUPPORTED})`);
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    fail(`${where}: shape must be an array of non-negative integers, got ${describe(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
    fail(`${where}: data_offsets must be two non-negative integers [begin, end], got ${describe(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(`${where}: data_offsets begin ${begin} is after end ${end}`);
  if (end > bufferLength) {
    fail(`${where}: data ends at byte ${end} but the data buffer has only ${bufferLength} bytes (file truncated)`);
  }
  const expected = elementCount(shape) * DTYPE_SIZE[dtype];
  if (end - begin !== expected) {
    fail(`${where}: data_offsets span ${end - begin} bytes, expected ${expected} for ${dtype} ${describe(shape)}`);
  }
  return { name, dtype, shape: [...shape], begin, end };
}

/** Overlapping tensors would alias each other's bytes, a sign of a corrupt or hostile file. Holes are harmless. */
function rejectOverlaps(entries: readonly HeaderEntry[], fail: (problem: string) => never): void {
  const ranges = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1]!;
    const cur = ranges[i]!;
    if (cur.begin < prev.end) {
      fail(
        `tensors ${JSON.stringify(prev.name)} [${prev.begin}, ${prev.end}) and ` +
          `${JSON.stringify(cur.name)} [${cur.begin}, ${cur.end}) overlap`,
      );
    }
  }
}

/** Decodes through a DataView: offsets need not be aligned and the file is little-endian on any host. */
function decodeData(view: DataView, start: number, entry: HeaderEntry): TensorData {
  const count = elementCount(entry.shape);
  const at = start + entry.begin;
  switch (entry.dtype) {
    case 'F32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(at + 4 * i, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = f16ToF32(view.getUint16(at + 2 * i, true));
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = bf16ToF32(view.getUint16(at + 2 * i, true));
      return out;
    }
    case 'I32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(at + 4 * i, true);
      return out;
    }
    case 'I64': {
      const out = new BigInt64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getBigInt64(at + 8 * i, true);
      return out;
    }
    case 'I8': // int8 weights of a quantized model
      return new Int8Array(view.buffer.slice(view.byteOffset + at, view.byteOffset + at + count));
  }
}

/** A tensor as the header describes it: enough to check sizes before reading any data. */
export interface TensorHeader {
  dtype: DType;
  shape: number[];
}

/**
 * Parses only the header: `bytes` needs to hold the first 8 + N bytes of the
 * file, and `fileLength` is the whole file's size (to check every tensor's
 * data lies inside it). Validates exactly as parseSafetensors does.
 */
export function parseSafetensorsHeader(bytes: Uint8Array, fileLength: number, source?: string): Map<string, TensorHeader> {
  const fail = failer(source);
  const { header, dataStart } = readHeader(bytes, fail);
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) parseMetadata(raw, fail);
    else entries.push(parseEntry(name, raw, fileLength - dataStart, fail));
  }
  rejectOverlaps(entries, fail);
  return new Map(entries.map((e) => [e.name, { dtype: e.dtype, shape: e.shape }]));
}

/** How many bytes of a file hold its header (the 8-byte length and the JSON), from its first 8 bytes. */
export function headerSize(first8: Uint8Array, source?: string): number {
  const fail = failer(source);
  if (first8.length < 8) fail(`file is shorter than 8 bytes (${first8.length}), so it has no header length`);
  const declared = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) fail(`header length ${declared} is absurd (limit ${MAX_HEADER_BYTES} bytes); not a safetensors file?`);
  return 8 + Number(declared);
}

/**
 * Parses a complete safetensors file held in memory. Everything is validated
 * before any tensor is decoded, so a bad file fails fast and never half-loads.
 * `source` (usually the path) is only used to make error messages actionable.
 */
export function parseSafetensors(bytes: Uint8Array, source?: string): SafetensorsFile {
  const fail = failer(source);
  const { header, dataStart } = readHeader(bytes, fail);
  const bufferLength = bytes.length - dataStart;

  let metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = parseMetadata(raw, fail);
    else entries.push(parseEntry(name, raw, bufferLength, fail));
  }
  rejectOverlaps(entries, fail);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tensors = new Map<string, TensorEntry>();
  for (const entry of entries) {
    tensors.set(entry.name, { dtype: entry.dtype, shape: entry.shape, data: decodeData(view, dataStart, entry) });
  }
  return { tensors, metadata };
}

// ---------------------------------------------------------------------------
// Serialization
// ---------------------------------------------------------------------------

/** Which typed array each dtype must be written from; a mismatch is almost always a caller bug. */
function expectedArray(dtype: DType): typeof Float32Array | typeof Int32Array | typeof BigInt64Array | typeof Int8Array {
  if (dtype === 'I8') return Int8Array;
  if (dtype === 'I32') return Int32Array;
  if (dtype === 'I64') return BigInt64Array;
  return Float32Array;
}

function checkInput(name: string, t: TensorInput): void {
  const where = `tensor ${JSON.stringify(name)}`;
  const fail = (problem: string): never => {
    throw new SafetensorsError(`cannot serialize ${where}: ${problem}`);
  };
  if (name === METADATA_KEY) fail(`the name ${METADATA_KEY} is reserved for metadata`);
  if (!isDType(t.dtype)) fail(`unsupported dtype ${describe(t.dtype)} (supported: ${SUPPORTED})`);
  if (!Array.isArray(t.shape) || !t.shape.every(isNonNegativeInt)) {
    fail(`shape must be an array of non-negative integers, got ${describe(t.shape)}`);
  }
  const Expected = expectedArray(t.dtype);
  if (!(t.data instanceof Expected)) {
    const got = (t.data as unknown as { constructor?: { name?: string } })?.constructor?.name ?? typeof t.data;
    fail(`dtype ${t.dtype} must be written from a ${Expected.name}, got ${got}`);
  }
  const count = elementCount(t.shape);
  if (t.data.length !== count) {
    fail(`shape ${describe(t.shape)} needs ${count} elements but data has ${t.data.length}`);
  }
}

function encodeData(view: DataView, at: number, t: TensorInput): void {
  const data = t.data;
  const n = data.length;
  switch (t.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) view.setFloat32(at + 4 * i, data[i] as number, true);
      return;
    case 'F16':
      for (let i = 0; i < n; i++) view.setUint16(at + 2 * i, f32ToF16(data[i] as number), true);
      return;
    case 'BF16':
      for (let i = 0; i < n; i++) view.setUint16(at + 2 * i, f32ToBf16(data[i] as number), true);
      return;
    case 'I32':
      for (let i = 0; i < n; i++) view.setInt32(at + 4 * i, data[i] as number, true);
      return;
    case 'I64':
      for (let i = 0; i < n; i++) view.setBigInt64(at + 8 * i, data[i] as bigint, true);
      return;
    case 'I8':
      for (let i = 0; i < n; i++) view.setInt8(at + i, data[i] as number);
      return;
  }
}

function checkMetadata(metadata: Record<string, string>): void {
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') {
      throw new SafetensorsError(`cannot serialize ${METADATA_KEY}.${key}: value must be a string, got ${describe(value)}`);
    }
  }
}

/**
 * Encodes tensors into safetensors bytes. Data is laid out contiguously in the
 * given order; the header is space-padded so the data buffer starts 8-byte
 * aligned, which lets memory-mapping readers view it without copying.
 */
export function serializeSafetensors(tensors: TensorCollection, metadata?: Record<string, string>): Uint8Array {
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    checkMetadata(metadata);
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const [name, t] of list) {
    checkInput(name, t);
    const size = t.data.length * DTYPE_SIZE[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const dataStart = 8 + headerLength;
  const out = new Uint8Array(dataStart + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, dataStart); // spaces: still valid JSON whitespace

  let at = dataStart;
  for (const [, t] of list) {
    encodeData(view, at, t);
    at += t.data.length * DTYPE_SIZE[t.dtype];
  }
  return out;
}
