import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  SafetensorsError,
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  type DType,
  type TensorEntry,
} from '../src/io/safetensors.js';
import { referenceSkip } from './helpers.js';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Builds a file by hand so tests control the exact header text and byte layout. */
function buildFile(headerText: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function buildFromHeader(header: unknown, data?: Uint8Array): Uint8Array {
  return buildFile(JSON.stringify(header), data);
}

/** Asserts a SafetensorsError whose single-line message matches every pattern. */
function expectError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SafetensorsError, `expected SafetensorsError, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), `message should be one line: ${err.message}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

const f32Bits = new Uint32Array(1);
const f32View = new Float32Array(f32Bits.buffer);
function floatFromBits(bits: number): number {
  f32Bits[0] = bits;
  return f32View[0]!;
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

function sampleData(dtype: DType, count: number): TensorEntry['data'] {
  // Values chosen to be exactly representable in the dtype, so round trips compare exactly.
  const floats = [1, -2, 0.5, 0, -0.25, 3, 1024, -7.5];
  switch (dtype) {
    case 'F32':
      return Float32Array.from({ length: count }, (_, i) => floats[i % floats.length]! + i * 1e-3);
    case 'F16':
    case 'BF16':
      return Float32Array.from({ length: count }, (_, i) => floats[i % floats.length]!);
    case 'I32':
      return Int32Array.from({ length: count }, (_, i) => (i % 2 ? -1 : 1) * (i * 1000003 + 7));
    case 'I64':
      return BigInt64Array.from({ length: count }, (_, i) => BigInt(i) * -(2n ** 40n) + 9007199254740993n);
    case 'I8':
      return Int8Array.from({ length: count }, (_, i) => (i % 2 ? -1 : 1) * ((i * 37) % 128));
  }
}

test('round trip for every dtype with shapes [], [0] and [3,1,2]', () => {
  const dtypes: DType[] = ['F32', 'F16', 'BF16', 'I32', 'I64', 'I8'];
  const shapes = [[], [0], [3, 1, 2]];
  const input = new Map<string, TensorEntry>();
  for (const dtype of dtypes) {
    for (const shape of shapes) {
      const count = shape.reduce((a, b) => a * b, 1);
      input.set(`${dtype}:${JSON.stringify(shape)}`, { dtype, shape, data: sampleData(dtype, count) });
    }
  }
  const metadata = { format: 'pt', note: 'héllo ✓' };
  const bytes = serializeSafetensors(input, metadata);
  const parsed = parseSafetensors(bytes);

  assert.deepEqual(parsed.metadata, metadata);
  assert.deepEqual([...parsed.tensors.keys()], [...input.keys()]);
  for (const [name, expected] of input) {
    const got = parsed.tensors.get(name)!;
    assert.equal(got.dtype, expected.dtype, name);
    assert.deepEqual(got.shape, expected.shape, name);
    assert.deepEqual(got.data, expected.data, name);
  }
});

test('serializer pads the header with spaces to 8-byte alignment', () => {
  for (const name of ['a', 'ab', 'abc', 'abcd', 'abcde', 'abcdef', 'abcdefg', 'abcdefgh']) {
    const bytes = serializeSafetensors({ [name]: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(headerText, /^\{.*\} *$/);
    assert.equal(bytes.length, 8 + n + 4);
  }
});

test('serializer accepts a plain object and omits empty metadata', () => {
  const bytes = serializeSafetensors({ x: { dtype: 'I32', shape: [2], data: new Int32Array([5, -6]) } });
  const headerText = new TextDecoder().decode(bytes.subarray(8));
  assert.ok(!headerText.includes('__metadata__'));
  const parsed = parseSafetensors(bytes);
  assert.deepEqual(parsed.metadata, {});
  assert.deepEqual(parsed.tensors.get('x')!.data, new Int32Array([5, -6]));
});

test('F16/BF16 writing rounds to nearest even', () => {
  const values = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, 2 ** -25, 4e-8]);
  const f16 = parseSafetensors(serializeSafetensors({ h: { dtype: 'F16', shape: [6], data: values } }));
  assert.deepEqual(f16.tensors.get('h')!.data, new Float32Array([1, 1 + 2 ** -9, 65504, Infinity, 0, 2 ** -24]));

  const bvalues = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 65504]);
  const bf16 = parseSafetensors(serializeSafetensors({ b: { dtype: 'BF16', shape: [3], data: bvalues } }));
  assert.deepEqual(bf16.tensors.get('b')!.data, new Float32Array([1, 1 + 2 ** -6, 65536]));
});

// ---------------------------------------------------------------------------
// Half-precision conversions
// ---------------------------------------------------------------------------

test('f32ToF16 / f16ToF32 on known values', () => {
  const cases: Array<[number, number]> = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff], // largest finite half
    [0, 0x0000],
    [-0, 0x8000],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];
  for (const [value, bits] of cases) {
    assert.equal(f32ToF16(value), bits, `f32ToF16(${value})`);
    assert.ok(Object.is(f16ToF32(bits), value), `f16ToF32(0x${bits.toString(16)})`);
  }
  assert.ok(Number.isNaN(f16ToF32(0x7e00)));
  assert.ok(Number.isNaN(f16ToF32(0xfc01)));
  const nanBits = f32ToF16(NaN);
  assert.equal(nanBits & 0x7c00, 0x7c00);
  assert.notEqual(nanBits & 0x03ff, 0);
});

test('f32ToF16 rounds to nearest, ties to even, and overflows to infinity', () => {
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie, 0x3c00 is even
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie, rounds up to even
  assert.equal(f32ToF16(1 + 2 ** -11 + 2 ** -20), 0x3c01); // just above the tie
  assert.equal(f32ToF16(2 ** -25), 0x0000); // tie between 0 and smallest subnormal
  assert.equal(f32ToF16(3 * 2 ** -25), 0x0002); // subnormal tie to even
  assert.equal(f32ToF16(-(2 ** -26)), 0x8000); // underflow keeps the sign
  assert.equal(f32ToF16(65519.99), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00); // tie above max finite goes to infinity
  assert.equal(f32ToF16(1e10), 0x7c00);
  assert.equal(f32ToF16(2 - 2 ** -11), 0x4000); // tie rounds up into the next binade
  assert.equal(f32ToF16(1023.5 * 2 ** -24), 0x0400); // largest subnormal rounds up to smallest normal
});

test('F16: every finite half survives a round trip and every midpoint rounds to even', () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    if ((bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0) continue; // NaN
    assert.equal(f32ToF16(f16ToF32(bits)), bits);
  }
  for (let bits = 0; bits < 0x7c00; bits++) {
    const lo = f16ToF32(bits);
    const hi = f16ToF32(bits + 1);
    const mid = Math.fround((lo + hi) / 2);
    assert.equal(mid, (lo + hi) / 2, 'midpoint is exact in float32');
    assert.equal(f32ToF16(mid), bits % 2 === 0 ? bits : bits + 1);
    assert.equal(f32ToF16(-mid), 0x8000 | (bits % 2 === 0 ? bits : bits + 1));
  }
});

test('f32ToBf16 / bf16ToF32 on known values', () => {
  const cases: Array<[number, number]> = [
    [1, 0x3f80],
    [-2, 0xc000],
    [0.5, 0x3f00],
    [65536, 0x4780],
    [-0, 0x8000],
    [2 ** -126, 0x0080], // smallest normal
    [2 ** -133, 0x0001], // smallest subnormal
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
  ];
  for (const [value, bits] of cases) {
    assert.equal(f32ToBf16(value), bits, `f32ToBf16(${value})`);
    assert.ok(Object.is(bf16ToF32(bits), value), `bf16ToF32(0x${bits.toString(16)})`);
  }
  assert.equal(f32ToBf16(65504), 0x4780); // 8 significant bits: rounds up to 65536
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie to even (down)
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // tie to even (up)
  assert.equal(f32ToBf16(floatFromBits(0x7f7fffff)), 0x7f80); // float32 max overflows
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
});

test('f32ToBf16 matches the float32 bit-twiddling reference on random inputs', () => {
  // Reference: add 0x7fff plus the lowest kept bit, then truncate; correct for all non-NaN float32.
  let seed = 12345;
  for (let i = 0; i < 200_000; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const bits = (seed ^ (seed << 13)) >>> 0;
    if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) continue; // NaN
    const expected = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
    assert.equal(f32ToBf16(floatFromBits(bits)), expected, `bits 0x${bits.toString(16)}`);
  }
});

test('BF16: every finite bfloat16 survives a round trip', () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    if ((bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0) continue; // NaN
    const value = bf16ToF32(bits);
    assert.equal(Math.fround(value), value, 'exactly representable in float32');
    assert.equal(f32ToBf16(value), bits);
  }
});

// ---------------------------------------------------------------------------
// Hand-built files
// ---------------------------------------------------------------------------

test('parses a hand-built file with unaligned offsets, a hole and a padded header', () => {
  const data = new Uint8Array(40);
  const view = new DataView(data.buffer);
  view.setInt32(1, -123456, true); // i32 at offset 1
  view.setFloat32(5, 1.5, true); // f32 [2] at 5..13
  view.setFloat32(9, -0.25, true);
  view.setUint16(13, 0x3c00, true); // f16 1.0 at 13..15
  view.setUint16(15, 0xc000, true); // bf16 -2 at 15..17
  // 17..19: hole (allowed)
  view.setBigInt64(19, -(2n ** 62n) - 5n, true); // i64 at 19..27
  const header = {
    i: { dtype: 'I32', shape: [], data_offsets: [1, 5] },
    f: { dtype: 'F32', shape: [2], data_offsets: [5, 13] },
    h: { dtype: 'F16', shape: [1, 1], data_offsets: [13, 15] },
    b: { dtype: 'BF16', shape: [1], data_offsets: [15, 17] },
    l: { dtype: 'I64', shape: [1], data_offsets: [19, 27] },
    e: { dtype: 'F32', shape: [0, 4], data_offsets: [27, 27] },
    __metadata__: { format: 'pt' },
  };
  const file = buildFile(JSON.stringify(header) + '       ', data);

  // Parse from a view at an odd offset inside a larger buffer, as a Buffer slice might be.
  const backing = new Uint8Array(file.length + 3);
  backing.set(file, 3);
  const parsed = parseSafetensors(backing.subarray(3));

  assert.deepEqual(parsed.metadata, { format: 'pt' });
  assert.deepEqual(parsed.tensors.get('i'), { dtype: 'I32', shape: [], data: new Int32Array([-123456]) });
  assert.deepEqual(parsed.tensors.get('f'), { dtype: 'F32', shape: [2], data: new Float32Array([1.5, -0.25]) });
  assert.deepEqual(parsed.tensors.get('h'), { dtype: 'F16', shape: [1, 1], data: new Float32Array([1]) });
  assert.deepEqual(parsed.tensors.get('b'), { dtype: 'BF16', shape: [1], data: new Float32Array([-2]) });
  assert.deepEqual(parsed.tensors.get('l'), { dtype: 'I64', shape: [1], data: new BigInt64Array([-(2n ** 62n) - 5n]) });
  assert.deepEqual(parsed.tensors.get('e'), { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) });
});

test('an empty header object is a valid file with no tensors', () => {
  const parsed = parseSafetensors(buildFile('{}'));
  assert.equal(parsed.tensors.size, 0);
  assert.deepEqual(parsed.metadata, {});
});

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

const okEntry = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
const eightBytes = new Uint8Array(8);

test('rejects files shorter than 8 bytes', () => {
  expectError(() => parseSafetensors(new Uint8Array(5)), /shorter than 8 bytes/);
  expectError(() => parseSafetensors(new Uint8Array(0), 'empty.safetensors'), /^empty\.safetensors: /);
});

test('rejects header lengths larger than the file or absurdly large', () => {
  const tooLong = new Uint8Array(20);
  new DataView(tooLong.buffer).setBigUint64(0, 1000n, true);
  expectError(() => parseSafetensors(tooLong, 'x.safetensors'), /^x\.safetensors: /, /header length 1000/, /larger/);

  const absurd = new Uint8Array(16);
  new DataView(absurd.buffer).setBigUint64(0, 2n ** 40n, true);
  expectError(() => parseSafetensors(absurd), /absurd/, /100000000/);
  new DataView(absurd.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
  expectError(() => parseSafetensors(absurd), /absurd/);
});

test('rejects headers that are not JSON objects', () => {
  expectError(() => parseSafetensors(buildFile('{"a": ')), /not valid JSON/);
  expectError(() => parseSafetensors(buildFile('[1, 2]')), /must be a JSON object/, /array/);
  expectError(() => parseSafetensors(buildFile('null')), /must be a JSON object/);
  expectError(() => parseSafetensors(buildFile('"str"')), /must be a JSON object/);
  const badUtf8 = buildFile('{"a":1}');
  badUtf8[10] = 0xff;
  expectError(() => parseSafetensors(badUtf8), /UTF-8/);
});

test('rejects unknown dtypes, naming the dtype and the supported ones', () => {
  const file = buildFromHeader({ w: { ...okEntry, dtype: 'F64' } }, eightBytes);
  expectError(() => parseSafetensors(file), /"w"/, /F64/, /F32, F16, BF16, I32, I64/);
  expectError(() => parseSafetensors(buildFromHeader({ w: { ...okEntry, dtype: undefined } }, eightBytes)), /dtype/);
});

test('rejects malformed shapes', () => {
  for (const shape of [[2, -1], [1.5], '2', [null], { 0: 2 }, undefined]) {
    const file = buildFromHeader({ w: { ...okEntry, shape } }, eightBytes);
    expectError(() => parseSafetensors(file), /"w"/, /shape must be an array of non-negative integers/);
  }
});

test('rejects malformed or out-of-range data_offsets', () => {
  for (const offsets of [[0], [0, 8, 9], ['0', 8], [-1, 7], [0.5, 8], null]) {
    const file = buildFromHeader({ w: { ...okEntry, data_offsets: offsets } }, eightBytes);
    expectError(() => parseSafetensors(file), /"w"/, /data_offsets must be two non-negative integers/);
  }
  const reversed = buildFromHeader({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, eightBytes);
  expectError(() => parseSafetensors(reversed), /begin 8 is after end 4/);
  const pastEnd = buildFromHeader({ w: { dtype: 'F32', shape: [0], data_offsets: [12, 12] } }, eightBytes);
  expectError(() => parseSafetensors(pastEnd), /only 8 bytes/);
});

test('rejects byte ranges that do not match shape x dtype size', () => {
  const file = buildFromHeader({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, eightBytes);
  expectError(() => parseSafetensors(file), /"w"/, /span 8 bytes, expected 12/);
  const half = buildFromHeader({ w: { dtype: 'BF16', shape: [2, 2], data_offsets: [0, 4] } }, eightBytes);
  expectError(() => parseSafetensors(half), /expected 8 for BF16 \[2,2\]/);
});

test('rejects overlapping tensors but allows zero-size tensors anywhere', () => {
  const data = new Uint8Array(16);
  const overlapping = buildFromHeader(
    {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    },
    data,
  );
  expectError(() => parseSafetensors(overlapping, 'o.safetensors'), /^o\.safetensors: /, /"a"/, /"b"/, /overlap/);

  const aliased = buildFromHeader(
    {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'I32', shape: [2], data_offsets: [0, 8] },
    },
    data,
  );
  expectError(() => parseSafetensors(aliased), /overlap/);

  const zeroInside = buildFromHeader(
    {
      a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      z: { dtype: 'F32', shape: [0], data_offsets: [4, 4] },
    },
    data,
  );
  assert.equal(parseSafetensors(zeroInside).tensors.size, 2);
});

test('reports truncated files as truncated', () => {
  const good = serializeSafetensors({
    a: { dtype: 'F32', shape: [4], data: new Float32Array(4) },
    b: { dtype: 'I64', shape: [2], data: new BigInt64Array(2) },
  });
  for (const cut of [1, 8, 20]) {
    expectError(() => parseSafetensors(good.subarray(0, good.length - cut), 'm.safetensors'), /^m\.safetensors: /, /truncated/);
  }
  // Cut inside the header itself.
  expectError(() => parseSafetensors(good.subarray(0, 12)), /truncated/);
});

test('rejects malformed __metadata__', () => {
  expectError(() => parseSafetensors(buildFromHeader({ __metadata__: { a: 1 } })), /__metadata__\.a must be a string/);
  expectError(() => parseSafetensors(buildFromHeader({ __metadata__: ['x'] })), /__metadata__ must be an object/);
});

test('readSafetensors reports missing files with the path', () => {
  const path = join(tmpdir(), `definitely-missing-${process.pid}.safetensors`);
  expectError(() => readSafetensors(path), new RegExp(`^cannot read ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
});

test('readSafetensors names the file in parse errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'st-bad-'));
  try {
    const path = join(dir, 'bad.safetensors');
    writeFileSync(path, new Uint8Array(3));
    expectError(() => readSafetensors(path), /bad\.safetensors: file is shorter than 8 bytes/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('serializer rejects inconsistent tensors', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ dtype: 'F32', shape: [2], data: new Int32Array(2) }, /F32 must be written from a Float32Array, got Int32Array/],
    [{ dtype: 'F16', shape: [2], data: new Float64Array(2) }, /Float32Array, got Float64Array/],
    [{ dtype: 'I32', shape: [2], data: new Float32Array(2) }, /Int32Array/],
    [{ dtype: 'I64', shape: [2], data: new Int32Array(2) }, /BigInt64Array/],
    [{ dtype: 'F32', shape: [3], data: new Float32Array(2) }, /needs 3 elements but data has 2/],
    [{ dtype: 'F64', shape: [2], data: new Float32Array(2) }, /unsupported dtype "F64"/],
    [{ dtype: 'F32', shape: [-2], data: new Float32Array(2) }, /shape/],
  ];
  for (const [tensor, pattern] of cases) {
    expectError(() => serializeSafetensors({ t: tensor as TensorEntry }), /"t"/, pattern);
  }
  const reserved = { __metadata__: { dtype: 'F32', shape: [], data: new Float32Array(1) } as TensorEntry };
  expectError(() => serializeSafetensors(new Map(Object.entries(reserved))), /reserved/);
  expectError(
    () => serializeSafetensors({}, { n: 3 } as unknown as Record<string, string>),
    /__metadata__\.n: value must be a string/,
  );
});

// ---------------------------------------------------------------------------
// Atomic writer
// ---------------------------------------------------------------------------

test('writeSafetensors writes atomically and leaves no temp file behind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'st-write-'));
  try {
    const path = join(dir, 'model.safetensors');
    const first = { w: { dtype: 'F32' as const, shape: [2], data: new Float32Array([1, 2]) } };
    writeSafetensors(path, first, { step: '1' });
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);

    // Overwriting replaces the file in one step and still leaves nothing else.
    const second = new Map([['w', { dtype: 'BF16' as const, shape: [3], data: new Float32Array([3, 4, 5]) }]]);
    writeSafetensors(path, second, { step: '2' });
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    const parsed = readSafetensors(path);
    assert.deepEqual(parsed.metadata, { step: '2' });
    assert.deepEqual(parsed.tensors.get('w'), { dtype: 'BF16', shape: [3], data: new Float32Array([3, 4, 5]) });

    // Invalid input is rejected before anything is written.
    const bad = { w: { dtype: 'F32' as const, shape: [2], data: new Int32Array(2) } };
    expectError(() => writeSafetensors(path, bad));
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    assert.equal(readSafetensors(path).metadata.step, '2');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeSafetensors reports I/O failures and cleans up', () => {
  const dir = mkdtempSync(join(tmpdir(), 'st-fail-'));
  try {
    const path = join(dir, 'no-such-dir', 'model.safetensors');
    expectError(() => writeSafetensors(path, {}), /^cannot write .*model\.safetensors: /);
    // Renaming over a directory fails after the temp file was written: it must be removed.
    mkdirSync(join(dir, 'blocked.safetensors'));
    expectError(() => writeSafetensors(join(dir, 'blocked.safetensors'), {}), /cannot write/);
    assert.deepEqual(readdirSync(dir), ['blocked.safetensors']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------
// Reference checkpoint exported from PyTorch
// ---------------------------------------------------------------------------

/** Tests run from the repo root, but compiled copies may live anywhere, so try both anchors. */
function referencePath(): string | undefined {
  const rel = 'shared/reference/gpt2-tiny/model.safetensors';
  const candidates = [
    resolve(process.cwd(), '..', rel),
    fileURLToPath(new URL(`../../../${rel}`, import.meta.url)), // from dist/test/ up past the repo root
  ];
  return candidates.find((p) => existsSync(p));
}

test('parses the PyTorch-exported gpt2-tiny checkpoint', (t) => {
  const path = referencePath();
  if (path === undefined) {
    t.skip(referenceSkip('reference checkpoint ../shared/reference/gpt2-tiny/model.safetensors absent') || undefined);
    return;
  }
  const file = readSafetensors(path);
  const wte = file.tensors.get('wte.weight');
  assert.ok(wte, 'wte.weight present');
  assert.equal(wte.dtype, 'F32');
  assert.deepEqual(wte.shape, [101, 32]);
  assert.equal(wte.data.length, 101 * 32);
  assert.ok(wte.data instanceof Float32Array);
  assert.ok(wte.data.every((v) => Number.isFinite(v)));
  assert.equal(file.metadata.format, 'pt');

  // Re-serializing what we read must reproduce every tensor exactly.
  const again = parseSafetensors(serializeSafetensors(file.tensors, file.metadata));
  assert.deepEqual(again, file);
});
