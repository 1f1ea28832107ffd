import { writeSync } from 'node:fs';
import { writeFileAtomicWith } from './atomic.js';
import { GGML_TYPE_NUMBER, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPES, typeBlock, type GGUFTensorType, type GGUFRaw, type GGUFValue, type GGUFValueType } from './gguf.js';

/** A tensor to write: its bytes as stored (f32/f16 values or quantized blocks). */
export interface GGUFTensorOut {
  name: string;
  /** ggml order: dims[0] varies fastest ([in, out] for a PyTorch weight [out, in]). */
  dims: number[];
  type: GGUFTensorType;
  data: Uint8Array;
}

/**
 * A tensor whose bytes are made when the file is written: writeGGUF then
 * holds one tensor's bytes at a time (how the bench writes a 1B model
 * without ever holding all of it).
 */
export interface LazyGGUFTensorOut {
  name: string;
  dims: number[];
  type: GGUFTensorType;
  data: () => Uint8Array;
}

export type GGUFTensorSource = GGUFTensorOut | LazyGGUFTensorOut;

/** Bytes a tensor of these dims and type takes in the file. */
function storedBytes(dims: number[], type: GGUFTensorType): number {
  const { elements, bytes } = typeBlock(type);
  return (dims.reduce((a, b) => a * b, 1) / elements) * bytes;
}

/** A tensor's bytes (made now if lazy), checked against its dims and type. */
function tensorBytes(t: GGUFTensorSource): Uint8Array {
  const data = typeof t.data === 'function' ? t.data() : t.data;
  if (data.length !== storedBytes(t.dims, t.type)) throw new Error(`GGUF tensor ${t.name}: ${data.length} bytes do not hold [${t.dims}] ${t.type} values`);
  return data;
}

/** Grows a byte buffer as values are appended (the header is small; tensor data is copied in once at the end). */
class Writer {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  pos = 0;
  private readonly text = new TextEncoder();
  private room(n: number): number {
    if (this.pos + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
      next.set(this.buf.subarray(0, this.pos));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const p = this.pos;
    this.pos += n;
    return p;
  }
  /** Reserve n bytes, then write them through the (possibly new) view. */
  private put(n: number, write: (view: DataView, at: number) => void): void {
    const at = this.room(n);
    write(this.view, at);
  }
  u32(v: number): void { this.put(4, (d, p) => d.setUint32(p, v, true)); }
  u64(v: number | bigint): void { this.put(8, (d, p) => d.setBigUint64(p, BigInt(v), true)); }
  string(s: string): void {
    const b = this.text.encode(s);
    this.u64(b.length);
    const at = this.room(b.length);
    this.buf.set(b, at);
  }
  value(type: GGUFValueType, v: GGUFRaw, itemType?: GGUFValueType): void {
    switch (type) {
      case 'uint8': this.put(1, (d, p) => d.setUint8(p, v as number)); break;
      case 'int8': this.put(1, (d, p) => d.setInt8(p, v as number)); break;
      case 'uint16': this.put(2, (d, p) => d.setUint16(p, v as number, true)); break;
      case 'int16': this.put(2, (d, p) => d.setInt16(p, v as number, true)); break;
      case 'uint32': this.put(4, (d, p) => d.setUint32(p, v as number, true)); break;
      case 'int32': this.put(4, (d, p) => d.setInt32(p, v as number, true)); break;
      case 'float32': this.put(4, (d, p) => d.setFloat32(p, v as number, true)); break;
      case 'bool': this.put(1, (d, p) => d.setUint8(p, v ? 1 : 0)); break;
      case 'string': this.string(v as string); break;
      case 'uint64': this.put(8, (d, p) => d.setBigUint64(p, BigInt(v as bigint), true)); break;
      case 'int64': this.put(8, (d, p) => d.setBigInt64(p, BigInt(v as bigint), true)); break;
      case 'float64': this.put(8, (d, p) => d.setFloat64(p, v as number, true)); break;
      case 'array': {
        if (!itemType || itemType === 'array') throw new Error('GGUF arrays here hold scalars or strings');
        const items = v as GGUFRaw[];
        this.u32(GGUF_VALUE_TYPES.indexOf(itemType));
        this.u64(items.length);
        for (const item of items) this.value(itemType, item);
        break;
      }
    }
  }
  bytes(): Uint8Array { return this.buf.subarray(0, this.pos); }
}

/** Where everything goes: the header's bytes, the data's start, each tensor's offset in the data, and the file's size. */
interface GGUFLayoutOut {
  header: Uint8Array;
  dataStart: number;
  offsets: number[];
  size: number;
}

function layoutGGUF(metadata: Map<string, GGUFValue>, tensors: GGUFTensorSource[], alignment: number): GGUFLayoutOut {
  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, v] of metadata) {
    w.string(key);
    w.u32(GGUF_VALUE_TYPES.indexOf(v.type));
    w.value(v.type, v.value, v.type === 'array' ? v.itemType : undefined);
  }
  const pad = (n: number) => Math.ceil(n / alignment) * alignment;
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    if ((t.dims[0] ?? 1) % typeBlock(t.type).elements !== 0 || (typeof t.data !== 'function' && t.data.length !== storedBytes(t.dims, t.type))) {
      throw new Error(`GGUF tensor ${t.name}: ${typeof t.data === 'function' ? '?' : t.data.length} bytes do not hold [${t.dims}] ${t.type} values`);
    }
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML_TYPE_NUMBER[t.type]);
    w.u64(offset);
    offsets.push(offset);
    offset = pad(offset + storedBytes(t.dims, t.type));
  }
  const header = w.bytes();
  const dataStart = pad(header.length);
  return { header, dataStart, offsets, size: dataStart + offset };
}

/** The bytes of a GGUF v3 file: header, metadata, tensor infos, then each tensor's data at an aligned offset. */
export function serializeGGUF(metadata: Map<string, GGUFValue>, tensors: GGUFTensorSource[], alignment = GGUF_DEFAULT_ALIGNMENT): Uint8Array {
  const { header, dataStart, offsets, size } = layoutGGUF(metadata, tensors, alignment);
  const out = new Uint8Array(size);
  out.set(header);
  tensors.forEach((t, i) => out.set(tensorBytes(t), dataStart + offsets[i]!));
  return out;
}

/** Write all of `bytes` at `position` (write() may stop short, and asks for at most `chunk` bytes each time). */
function writeFully(fd: number, bytes: Uint8Array, position: number, chunk: number): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, Math.min(chunk, bytes.length - done), position + done);
}

/**
 * Write a GGUF file atomically (temp name, fsync, rename), one tensor at a
 * time: the file is never one buffer (Node's typed arrays stop at 4 GiB; a
 * 1B model in F32 is 4.4 GB), and lazy tensors are made only as they are written.
 */
export function writeGGUF(path: string, metadata: Map<string, GGUFValue>, tensors: GGUFTensorSource[], alignment = GGUF_DEFAULT_ALIGNMENT, chunkBytes = 2 ** 30): void {
  const { header, dataStart, offsets, size } = layoutGGUF(metadata, tensors, alignment);
  writeFileAtomicWith(path, (fd) => {
    writeFully(fd, header, 0, chunkBytes);
    tensors.forEach((t, i) => writeFully(fd, tensorBytes(t), dataStart + offsets[i]!, chunkBytes));
    // The gaps between tensors are holes (zeros); the last tensor's padding is written out so the size is the serialized one.
    const end = offsets.length ? dataStart + offsets.at(-1)! + storedBytes(tensors.at(-1)!.dims, tensors.at(-1)!.type) : header.length;
    if (size > end) writeFully(fd, new Uint8Array(size - end), end, chunkBytes);
  });
}
