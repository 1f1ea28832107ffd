import { add, gelu, mul, relu, silu } from '../tensor/ops/elementwise.js';
import { isGradEnabled } from '../tensor/autograd.js';
import { swiglu } from '../tensor/ops/swiglu.js';
import { Tensor, viewStorage } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { Dropout } from './dropout.js';
import { joinedLinear, type JoinsProjections } from './joined_linear.js';
import { forwardThen, Linear } from './linear.js';
import { Module } from './module.js';
import { projectInto } from './residual.js';
import type { LinearLayer } from './quantized_linear.js';

export type Activation = 'relu' | 'gelu' | 'silu';

export function activate(x: Tensor, a: Activation): Tensor {
  return a === 'relu' ? relu(x) : a === 'gelu' ? gelu(x) : silu(x);
}

/** act(gate) ∘ up; SwiGLU (silu) in one fused pass. */
function gated(gate: Tensor, up: Tensor, a: Activation): Tensor {
  return a === 'silu' ? swiglu(gate, up) : mul(activate(gate, a), up);
}

/** The parts a feed-forward computes with: up (and gate, when gated) widen, down projects back. */
export interface FeedForwardParts {
  up: LinearLayer;
  gate: LinearLayer | null;
  down: LinearLayer;
}

/**
 * The position-wise feed-forward of a block: widen, activation, project back
 * — each position on its own. Gated (SwiGLU, Llama): down(act(gate(x)) ∘ up(x)),
 * where the gate decides per channel how much of up(x) passes. This class is
 * the computation; subclasses name the layers as checkpoints do: MLP (GPT-2:
 * c_fc, c_proj), FeedForward (fc1, fc2), GatedFeedForward (gate_proj, up_proj, down_proj).
 */
export abstract class FeedForwardLayer extends Module {
  /** Dropout on the output, before it joins the residual stream. */
  dropout: Dropout;
  /** Dropout on the widened activations (the Transformer paper's), or null. */
  hidden_dropout: Dropout | null;
  readonly activation: Activation;

  constructor(o: { activation: Activation; dropout: number; hiddenDropout?: number }, rng: Rng) {
    super();
    this.activation = o.activation;
    this.dropout = new Dropout(o.dropout, rng);
    this.hidden_dropout = o.hiddenDropout ? new Dropout(o.hiddenDropout, rng) : null;
  }

  protected abstract get parts(): FeedForwardParts;

  /** x [.., C] → [.., C]; given `skip` (the residual stream), skip + that (residual.ts's projectInto). */
  forward(x: Tensor, skip: Tensor | null = null): Tensor {
    const { up, gate, down } = this.parts;
    // Training, ungated: activation and down projection as one op, which keeps the wide activation
    // for backward only when the down projection's weight trains (Linear.forwardActivated).
    if (!gate && !this.hidden_dropout && this.activation !== 'silu' && down instanceof Linear && isGradEnabled()) {
      if (skip && !this.dropout.active) return down.forwardActivated(up.forward(x), this.activation, skip);
      const y = this.dropout.forward(down.forwardActivated(up.forward(x), this.activation));
      return skip ? add(skip, y) : y;
    }
    // Ungated, the up projection stores act(x·Wᵀ + b) (linear's epilogue; two ops where a gradient is recorded).
    let h = gate ? gated(...this.gateAndUp(x, gate, up), this.activation) : forwardThen(up, x, { activation: this.activation });
    if (this.hidden_dropout) h = this.hidden_dropout.forward(h);
    return projectInto(down, h, this.dropout, skip);
  }

  /**
   * gate(x) and up(x). For one position on a device whose weights adjoin,
   * one product [gate | up] whose halves are read in place (joined_linear.ts):
   * a decode step's dispatch fewer. (More positions would need the halves
   * copied out of their interleaved rows, so they run as two products.)
   */
  private gateAndUp(x: Tensor, gate: LinearLayer, up: LinearLayer): [Tensor, Tensor] {
    const both = x.size === x.shape[x.rank - 1] ? joinedLinear([gate, up]) : null;
    if (!both) return [gate.forward(x), up.forward(x)];
    const gu = both.forward(x);
    const width = gu.shape[gu.rank - 1]! / 2;
    const shape = [...x.shape.slice(0, -1), width];
    return [new Tensor(viewStorage(gu.storage, 0, width), shape), new Tensor(viewStorage(gu.storage, width, width), shape)];
  }
}

/** The GPT's sizes, as its config names them. */
export interface MLPConfig {
  n_embd: number;
  n_layer: number;
  dropout: number;
  bias: boolean;
}

/** GPT-2's feed-forward: widen 4× (c_fc), GELU, project back (c_proj). */
export class MLP extends FeedForwardLayer {
  c_fc: LinearLayer;
  c_proj: LinearLayer;

  constructor(cfg: MLPConfig, rng: Rng) {
    super({ activation: 'gelu', dropout: cfg.dropout }, rng);
    this.c_fc = new Linear(cfg.n_embd, 4 * cfg.n_embd, { bias: cfg.bias, std: 0.02, rng });
    this.c_proj = new Linear(4 * cfg.n_embd, cfg.n_embd, { bias: cfg.bias, std: 0.02 / Math.sqrt(2 * cfg.n_layer), rng });
  }

  protected get parts(): FeedForwardParts {
    return { up: this.c_fc, gate: null, down: this.c_proj };
  }
}

export interface FeedForwardConfig {
  d_model: number;
  d_ff: number;
  dropout: number;
  activation: Activation;
  bias?: boolean;
}

/** The Transformer paper's feed-forward: fc1 to d_ff, ReLU (or GELU: ViT), dropout, fc2 back. */
export class FeedForward extends FeedForwardLayer {
  fc1: LinearLayer;
  fc2: LinearLayer;

  constructor(cfg: FeedForwardConfig, rng: Rng) {
    super({ activation: cfg.activation, dropout: cfg.dropout, hiddenDropout: cfg.dropout }, rng);
    const std = Math.sqrt(1 / cfg.d_model);
    this.fc1 = new Linear(cfg.d_model, cfg.d_ff, { bias: cfg.bias ?? true, std, rng });
    this.fc2 = new Linear(cfg.d_ff, cfg.d_model, { bias: cfg.bias ?? true, std: Math.sqrt(1 / cfg.d_ff), rng });
  }

  protected get parts(): FeedForwardParts {
    return { up: this.fc1, gate: null, down: this.fc2 };
  }
}

export interface GatedFeedForwardConfig {
  d_model: number;
  d_ff: number;
  activation?: Activation;
  bias?: boolean;
  dropout?: number;
  /** std of the initial weights of gate/up, and of down. */
  std: number;
  downStd?: number;
}

/** SwiGLU (Llama, Qwen, Mistral): down_proj(silu(gate_proj(x)) ∘ up_proj(x)). */
export class GatedFeedForward extends FeedForwardLayer implements JoinsProjections {
  gate_proj: LinearLayer;
  up_proj: LinearLayer;
  down_proj: LinearLayer;

  constructor(cfg: GatedFeedForwardConfig, rng: Rng) {
    super({ activation: cfg.activation ?? 'silu', dropout: cfg.dropout ?? 0 }, rng);
    const bias = cfg.bias ?? false;
    this.gate_proj = new Linear(cfg.d_model, cfg.d_ff, { bias, std: cfg.std, rng });
    this.up_proj = new Linear(cfg.d_model, cfg.d_ff, { bias, std: cfg.std, rng });
    this.down_proj = new Linear(cfg.d_ff, cfg.d_model, { bias, std: cfg.downStd ?? cfg.std, rng });
  }

  protected get parts(): FeedForwardParts {
    return { up: this.up_proj, gate: this.gate_proj, down: this.down_proj };
  }

  /** gate_proj and up_proj read the same x: on a device, one product for one position when their weights adjoin (joined_linear.ts). */
  get joinable(): LinearLayer[][] {
    return [[this.gate_proj, this.up_proj]];
  }
}
