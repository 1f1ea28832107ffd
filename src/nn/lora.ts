import type { InputOnlyActivation } from '../tensor/ops/activation_linear.js';
import { gelu, relu, silu } from '../tensor/ops/elementwise.js';
import { applyEpilogue, linear, type LinearEpilogue } from '../tensor/ops/linear.js';
import { loraLinear } from '../tensor/ops/lora_linear.js';
import type { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { Dropout } from './dropout.js';
import { Linear } from './linear.js';
import { Module, Parameter } from './module.js';
import { QuantizedLinear } from './quantized_linear.js';

/**
 * LoRA (Hu et al. 2021, "Low-Rank Adaptation"): fine-tune a big matrix W
 * [out, in] by learning a small correction ΔW = (alpha/r)·B·A instead, with
 * A [r, in] and B [out, r] and r ≪ in, out. W stays frozen (no gradient, no
 * optimizer state, shared between many adapters); only A and B train.
 *
 *   y = x·Wᵀ + b + (alpha/r) · (dropout(x)·Aᵀ)·Bᵀ
 *
 * B starts at zero, so training starts from exactly the base model; A starts
 * random (Kaiming-uniform, as PEFT does) so that B's gradient is not zero.
 */
export interface LoRAOptions {
  /** Rank of the update. */
  r: number;
  /** The update is scaled by alpha / r, so changing r does not change the step size much. */
  alpha: number;
  /** Dropout on the adapter's input while training (the base path sees x unchanged). Default 0. */
  dropout?: number;
  /**
   * Which Linears get an adapter: those whose module name is a target or ends
   * with "." + target (PEFT's rule): "c_attn", "c_fc", "q_proj", "h.0.attn.c_attn".
   */
  targets: string[];
  /** Draws A's initial values and the adapter dropout masks. Default a fixed seed. */
  rng?: Rng;
}

/**
 * A Linear with a LoRA adapter. It is still a Linear (same `weight` and
 * `bias`, so the base keeps its parameter names and every `instanceof Linear`
 * path works); the adapter's two matrices are Linears named as PEFT names
 * them, so their parameters are "….c_attn.lora_A.weight" and "….lora_B.weight".
 */
export class LoRALinear extends Linear {
  lora_A: Linear;
  lora_B: Linear;
  lora_dropout: Dropout;
  readonly r: number;
  readonly alpha: number;
  /** alpha / r: how much of B·A is added. */
  readonly scaling: number;
  /** Off: the layer is its base alone (DPO's reference model is the policy with its adapters off). */
  enabled = true;

  constructor(base: Linear, o: { r: number; alpha: number; dropout?: number; rng: Rng }) {
    const [outF, inF] = base.weight.shape as [number, number];
    super(inF, outF, { weight: base.weight, bias: base.bias });
    this.r = o.r;
    this.alpha = o.alpha;
    this.scaling = o.alpha / o.r;
    this.lora_A = new Linear(inF, o.r, { weight: kaimingUniform([o.r, inF], o.rng), bias: null });
    this.lora_B = new Linear(o.r, outF, { weight: new Parameter(new Float32Array(outF * o.r), [outF, o.r]), bias: null });
    this.lora_dropout = new Dropout(o.dropout ?? 0, o.rng);
    this.training = base.training;
  }

  override forward(x: Tensor, then: LinearEpilogue = {}): Tensor {
    if (!this.enabled) return linear(x, this.weight, this.bias, then);
    // One op (tensor/ops/lora_linear.ts): the adapter's product is added into the base's output as it
    // is computed, so no extra [rows, out] tensors are kept for backward.
    return applyEpilogue(loraLinear(x, this.weight, this.bias, this.lora_dropout.forward(x), this.lora_A.weight, this.lora_B.weight, this.scaling), then);
  }

  /** The adapter reads its input (dA = s·gᵀ·u), so act(u) is kept: activation, then this layer. */
  override forwardActivated(u: Tensor, act: InputOnlyActivation, addend: Tensor | null = null): Tensor {
    return this.forward(act === 'gelu' ? gelu(u) : act === 'relu' ? relu(u) : silu(u), { addend });
  }

  /** ΔW = scaling·B·A as a [out, in] matrix (what merging adds to the weight). */
  delta(): Float32Array {
    const [outF, inF] = this.weight.shape as [number, number];
    const A = this.lora_A.weight.data;
    const B = this.lora_B.weight.data;
    const out = new Float32Array(outF * inF);
    for (let o = 0; o < outF; o++) {
      for (let k = 0; k < this.r; k++) {
        const b = B[o * this.r + k]! * this.scaling;
        if (b === 0) continue;
        const row = k * inF;
        for (let i = 0; i < inF; i++) out[o * inF + i] += b * A[row + i]!;
      }
    }
    return out;
  }
}

/**
 * A [rows, cols] parameter uniform in ±1/√cols: PyTorch's kaiming_uniform_
 * with a = √5 (nn.Linear's default init, and PEFT's for lora_A), whose bound
 * gain·√(3/fan_in) with gain √(2/(1+a²)) simplifies to 1/√fan_in.
 */
function kaimingUniform([rows, cols]: [number, number], rng: Rng): Parameter {
  const bound = 1 / Math.sqrt(cols);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = (2 * rng.random() - 1) * bound;
  return new Parameter(data, [rows, cols]);
}

/** PEFT's target rule: the whole module name, or its last dotted parts. */
export function matchesTarget(moduleName: string, target: string): boolean {
  return moduleName === target || moduleName.endsWith('.' + target);
}

/**
 * Put a LoRA adapter on every Linear named by `o.targets` and freeze
 * everything else: afterwards only the adapters' parameters need gradients,
 * so backward computes no weight gradient for the base (and an optimizer
 * built over `loraParameters(model)` holds state for the adapters only).
 * A target that names no Linear is a UserError naming it. Returns the names
 * of the wrapped layers.
 */
export function addLoRA(model: Module, o: LoRAOptions): string[] {
  if (!Number.isInteger(o.r) || o.r < 1) throw new UserError(`LoRA rank r must be a positive integer, got ${o.r}`);
  if (!(o.alpha > 0)) throw new UserError(`LoRA alpha must be positive, got ${o.alpha}`);
  const dropout = o.dropout ?? 0;
  if (!(dropout >= 0 && dropout < 1)) throw new UserError(`LoRA dropout must be in [0, 1), got ${dropout}`);
  if (o.targets.length === 0) throw new UserError('LoRA needs at least one target layer name (e.g. c_attn,c_fc or q_proj,v_proj)');
  if (loraLayers(model).length > 0) throw new UserError('the model already has LoRA adapters: merge them first');
  const modules = model.namedModules();
  const chosen: Array<[string, Module]> = [];
  for (const target of o.targets) {
    const hits = modules.filter(([name]) => name !== '' && matchesTarget(name, target));
    const linears = hits.filter(([, m]) => m instanceof Linear);
    if (linears.length === 0) {
      const quantized = hits.some(([, m]) => m instanceof QuantizedLinear);
      const names = [...new Set(modules.filter(([, m]) => m instanceof Linear).map(([n]) => n.split('.').pop()!))];
      throw new UserError(
        quantized
          ? `LoRA target "${target}" names int8-quantized layers: load the fp32 model to train adapters`
          : `LoRA target "${target}" names no linear layer of this model (its linear layers: ${names.join(', ')})`,
      );
    }
    for (const hit of linears) if (!chosen.some(([n]) => n === hit[0])) chosen.push(hit);
  }
  // In the model's own order, whatever the order of the targets.
  chosen.sort((a, b) => modules.indexOf(a) - modules.indexOf(b));
  const rng = o.rng ?? new Rng(0);
  for (const p of model.parameters()) p.requiresGrad = false;
  for (const [name, layer] of chosen) {
    model.replaceModule(name, new LoRALinear(layer as Linear, { r: o.r, alpha: o.alpha, dropout, rng }));
  }
  return chosen.map(([n]) => n);
}

/** Every LoRA layer of the model, with its module name ("h.0.attn.c_attn"). */
export function loraLayers(model: Module): Array<[string, LoRALinear]> {
  return model.namedModules().filter((e): e is [string, LoRALinear] => e[1] instanceof LoRALinear);
}

/** The adapters' parameters only (named "h.0.attn.c_attn.lora_A.weight", …): what the optimizer trains. */
export function loraParameters(model: Module): Array<[string, Parameter]> {
  return loraLayers(model).flatMap(([name, l]): Array<[string, Parameter]> => [
    [`${name}.lora_A.weight`, l.lora_A.weight],
    [`${name}.lora_B.weight`, l.lora_B.weight],
  ]);
}

/**
 * Run f with every adapter of the model switched off: the base model alone,
 * with no second copy of its weights (how DPO with LoRA gets its reference model).
 */
export function withoutLoRA<T>(model: Module, f: () => T): T {
  const layers = loraLayers(model).map(([, l]) => l);
  const before = layers.map((l) => l.enabled);
  for (const l of layers) l.enabled = false;
  try {
    return f();
  } finally {
    layers.forEach((l, i) => (l.enabled = before[i]!));
  }
}

/**
 * Fold every adapter into its base weight (W += (alpha/r)·B·A) and put plain
 * Linears back: the model computes the same function with no adapter cost,
 * and saves as an ordinary model. Every parameter is trainable again.
 */
export function mergeLoRA(model: Module): void {
  for (const [name, layer] of loraLayers(model)) {
    const delta = layer.delta();
    const w = layer.weight.data;
    for (let i = 0; i < w.length; i++) w[i] += delta[i]!;
    const [outF, inF] = layer.weight.shape as [number, number];
    const plain = new Linear(inF, outF, { weight: layer.weight, bias: layer.bias });
    plain.training = layer.training;
    model.replaceModule(name, plain);
  }
  for (const p of model.parameters()) p.requiresGrad = true;
}
