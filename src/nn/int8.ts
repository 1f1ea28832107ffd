import type { GPT } from '../models/gpt.js';
import type { Int8Weight } from '../tensor/ops/linear_int8.js';
import { Linear } from './linear.js';
import type { Module } from './module.js';

/**
 * Symmetric per-row (per output channel) int8 quantization: each row gets its
 * own scale max|w|/127, so one large row does not flatten the others' precision.
 */
export function quantizeRows(w: Float32Array, rows: number, cols: number): Int8Weight {
  const data = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = 0;
    for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(w[r * cols + c]!));
    const s = max > 0 ? max / 127 : 1;
    scale[r] = s;
    for (let c = 0; c < cols; c++) data[r * cols + c] = Math.max(-127, Math.min(127, Math.round(w[r * cols + c]! / s)));
  }
  return { shape: [rows, cols], data, scale };
}

/** The fp32 values an int8 weight stands for (q·scale), written into `out`. */
export function dequantizeRows(q: Int8Weight, out: Float32Array): Float32Array {
  const [rows, cols] = q.shape;
  for (let r = 0; r < rows; r++) {
    const s = q.scale[r]!;
    for (let c = 0; c < cols; c++) out[r * cols + c] = q.data[r * cols + c]! * s;
  }
  return out;
}

/** Every Linear layer of a module tree, with its dotted name. */
export function namedLinears(m: Module, prefix = ''): Array<[string, Linear]> {
  const out: Array<[string, Linear]> = [];
  for (const [key, value] of Object.entries(m)) {
    if (value instanceof Linear) out.push([prefix + key, value]);
    else if (Array.isArray(value)) value.forEach((c, i) => typeof c === 'object' && c !== null && 'children' in c && out.push(...namedLinears(c as Module, `${prefix}${key}.${i}.`)));
    else if (typeof value === 'object' && value !== null && 'children' in value) out.push(...namedLinears(value as Module, `${prefix}${key}.`));
  }
  return out;
}

/**
 * Quantize a GPT's matrices in place: every Linear and the tied output head
 * get int8 weights, and their fp32 weights are replaced by the dequantized
 * values, so every path through the model (int8 kernels or fp32 ones)
 * computes with the same numbers. Embedding lookups stay fp32.
 */
export function quantizeModel(model: GPT): void {
  for (const [, lin] of namedLinears(model)) {
    const [out, inF] = lin.weight.shape as [number, number];
    lin.int8 = quantizeRows(lin.weight.data, out, inF);
    dequantizeRows(lin.int8, lin.weight.data);
  }
  const [V, C] = model.wte.weight.shape as [number, number];
  model.headInt8 = quantizeRows(model.wte.weight.data, V, C);
  dequantizeRows(model.headInt8, model.wte.weight.data);
}

/** Drop the int8 copies (e.g. before fine-tuning): the fp32 weights hold the same values. */
export function dropInt8(model: GPT): void {
  for (const [, lin] of namedLinears(model)) lin.int8 = null;
  model.headInt8 = null;
}

export function isQuantized(model: GPT): boolean {
  return model.headInt8 !== null;
}
