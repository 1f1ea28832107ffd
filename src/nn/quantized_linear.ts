import type { LinearEpilogue } from '../tensor/ops/linear.js';
import { linearInt8, type Int8Weight } from '../tensor/ops/linear_int8.js';
import { Tensor } from '../tensor/tensor.js';
import { dequantizeBlocks, hasBlockQuantized } from './block_quantized.js';
import { inferenceProduct, Linear } from './linear.js';
import { Module, Parameter } from './module.js';
import { TiedLinear } from './tied_linear.js';

/**
 * A weight matrix [out, in] in a compact format, with what QuantizedLinear
 * needs from it: multiply, and give the fp32 values back. One format today,
 * int8 per output row; block formats (GGUF's Q8_0, Q4_0) join as more members
 * of this union, each with its own `format` tag and kernel.
 */
export type QuantizedWeight = { format: 'int8-rows' } & Int8Weight;

/**
 * Any layer y = x·Wᵀ + b: fp32 (trainable) or quantized (inference). (A GGUF
 * model's BlockQuantizedLinears take these places too, at load time only:
 * nn/block_quantized.ts's useQuantizedMatrices.)
 */
export type LinearLayer = Linear | QuantizedLinear;

/**
 * Symmetric per-row (per output channel) int8 quantization: each row gets its
 * own scale max|w|/127, so one large row does not flatten the others' precision.
 */
export function quantizeRows(w: Float32Array, rows: number, cols: number): QuantizedWeight {
  const data = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = 0;
    for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(w[r * cols + c]!));
    const s = max > 0 ? max / 127 : 1;
    scale[r] = s;
    for (let c = 0; c < cols; c++) data[r * cols + c] = Math.max(-127, Math.min(127, Math.round(w[r * cols + c]! / s)));
  }
  return { format: 'int8-rows', shape: [rows, cols], data, scale };
}

/** The fp32 values a quantized weight stands for (q·scale), written into `out`. */
export function dequantizeRows(q: Int8Weight, out: Float32Array = new Float32Array(q.shape[0] * q.shape[1])): Float32Array {
  const [rows, cols] = q.shape;
  for (let r = 0; r < rows; r++) {
    const s = q.scale[r]!;
    for (let c = 0; c < cols; c++) out[r * cols + c] = q.data[r * cols + c]! * s;
  }
  return out;
}

/**
 * y = x·Wᵀ + b with W held quantized (weight-only: activations stay fp32 and
 * the kernel widens the weights as it reads them). No fp32 copy of W exists;
 * the bias stays fp32. Inference only: it records no gradient — `dequantize`
 * turns the model back into Linears to train it.
 */
export class QuantizedLinear extends Module {
  readonly weight: QuantizedWeight;
  readonly bias: Tensor | null;
  /**
   * Set when this is a tied output head: dequantizing gives the TiedLinear back,
   * not a second matrix. (A function, so the module walk does not find the TiedLinear as a sub-layer.)
   */
  readonly tiedHead: (() => TiedLinear) | null;

  constructor(weight: QuantizedWeight, bias: Tensor | null, tied: TiedLinear | null = null) {
    super();
    if (bias && bias.size !== weight.shape[0]) throw new Error(`QuantizedLinear: bias of ${bias.size} for ${weight.shape[0]} outputs`);
    this.weight = weight;
    this.bias = bias;
    this.tiedHead = tied ? () => tied : null;
  }

  /** Quantize a Linear's weight (its bias is kept as it is). */
  static fromLinear(lin: Linear): QuantizedLinear {
    const [out, inF] = lin.weight.shape as [number, number];
    return new QuantizedLinear(quantizeRows(lin.weight.data, out, inF), lin.bias ? new Tensor(lin.bias.data, lin.bias.shape) : null);
  }

  /** `then`: an activation and an addend, applied as the int8 product stores its output. */
  forward(x: Tensor, then: LinearEpilogue = {}): Tensor {
    switch (this.weight.format) {
      case 'int8-rows':
        return inferenceProduct(then, (t) => linearInt8(x, this.weight, this.bias, t));
    }
  }

  /** forward(x, then) honours `then` (nn/linear.ts's forwardThen). */
  get takesEpilogue(): true {
    return true;
  }

  /** Bytes of the weight as stored (values + scales). */
  get weightBytes(): number {
    return this.weight.data.byteLength + this.weight.scale.byteLength;
  }
}

/**
 * Swap every Linear of a model (found by walking its module tree) for a
 * QuantizedLinear, in place. A tied output head gets its own quantized matrix,
 * and the matrix it shares (the token embedding, still fp32 for lookups) is
 * set to the dequantized values, so the model computes exactly what it will
 * compute when saved and loaded again (the file holds that matrix once, in int8).
 */
export function quantize(model: Module): void {
  for (const [name, layer] of model.namedModules()) {
    if (layer instanceof Linear) model.replaceModule(name, QuantizedLinear.fromLinear(layer));
    else if (layer instanceof TiedLinear) {
      const w = layer.weight;
      const q = quantizeRows(w.data, w.shape[0]!, w.shape[1]!);
      dequantizeRows(q, w.data);
      model.replaceModule(name, new QuantizedLinear(q, null, layer));
    }
  }
}

/**
 * The reverse, for fine-tuning a quantized model: every QuantizedLinear (and
 * every GGUF block-quantized layer) becomes a Linear holding its dequantized weights.
 */
export function dequantize(model: Module): void {
  dequantizeBlocks(model);
  for (const [name, layer] of model.namedModules()) {
    if (!(layer instanceof QuantizedLinear)) continue;
    if (layer.tiedHead) {
      model.replaceModule(name, layer.tiedHead());
      continue;
    }
    const [out, inF] = layer.weight.shape;
    const weight = new Parameter(dequantizeRows(layer.weight), [out, inF]);
    const bias = layer.bias ? new Parameter(Float32Array.from(layer.bias.data), [out]) : null;
    model.replaceModule(name, new Linear(inF, out, { weight, bias }));
  }
}

export function isQuantized(model: Module): boolean {
  return hasBlockQuantized(model) || model.namedModules().some(([, m]) => m instanceof QuantizedLinear);
}
