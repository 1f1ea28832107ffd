import { backend } from '../backend/index.js';
import { gemmArgs, mat, matT } from '../backend/gemm_args.js';
import { isGradEnabled } from '../tensor/autograd.js';
import { isHost, type Storage } from '../backend/storage.js';
import { releaseStorage, toBackend, type Tensor } from '../tensor/tensor.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import { QuantizedLinear, type LinearLayer } from './quantized_linear.js';

/**
 * Many LoRA adapters over one base model, chosen per row (serving: one base
 * in memory, each request naming its adapter, all of them in one continuous
 * batch). The base's weights are shared and read once per step for every
 * row; each adapted layer then adds, for each adapter, its own low-rank
 * correction to the rows that use it:
 *
 *   y = x·Wᵀ + b                       (every row, one product)
 *   y[rows of a] += s_a · (x[rows of a]·A_aᵀ)·B_aᵀ   for each adapter a in the step
 *
 * Rows are grouped by adapter so each adapter costs two small products per
 * layer, whatever the number of its rows. Inference only (training uses
 * nn/lora.ts's LoRALinear, whose adapter is a pair of trainable Linears).
 */

/** One adapter's matrices for one layer: A [r, in], B [out, r], and its scale alpha/r. */
export interface AdapterMatrices {
  A: Float32Array;
  B: Float32Array;
  r: number;
  scaling: number;
}

/**
 * Which adapter each row of the next forward pass uses (−1: the base alone),
 * grouped. One per model, shared by all its MultiLoRALinear layers: set
 * around a forward pass (LoRABank.run), empty otherwise.
 */
export class AdapterRouting {
  /** Rows in the pass; every adapted layer checks its input has as many. */
  rows = 0;
  /** Each adapter that appears, with its rows in order. */
  groups: Array<{ adapter: number; rows: Int32Array }> = [];

  /** Each group's one-hot selection [n, rows] where a device keeps values (built on first use in a pass). */
  private readonly selections = new Map<Int32Array, Storage>();

  /** S [n, rows] with S[i][rows[i]] = 1: S·h gathers the group's rows of h, Sᵀ·d scatters d back to them. */
  selection(group: { rows: Int32Array }): Storage {
    let s = this.selections.get(group.rows);
    if (!s) {
      const values = new Float32Array(group.rows.length * this.rows);
      group.rows.forEach((row, i) => (values[i * this.rows + row] = 1));
      this.selections.set(group.rows, (s = toBackend(values)));
    }
    return s;
  }

  set(rowAdapter: ArrayLike<number>): void {
    const byAdapter = new Map<number, number[]>();
    for (let i = 0; i < rowAdapter.length; i++) {
      const a = rowAdapter[i]!;
      if (a < 0) continue;
      let list = byAdapter.get(a);
      if (!list) byAdapter.set(a, (list = []));
      list.push(i);
    }
    this.rows = rowAdapter.length;
    this.groups = [...byAdapter].map(([adapter, rows]) => ({ adapter, rows: Int32Array.from(rows) }));
  }

  clear(): void {
    this.rows = 0;
    this.groups = [];
    // The pass's work on them is recorded: a device hands them out again only after it is submitted.
    for (const s of this.selections.values()) releaseStorage(s);
    this.selections.clear();
  }
}

/** A base layer (fp32 or int8) with any number of adapters, applied row by row as the routing says. */
export class MultiLoRALinear extends Module {
  /** Adapter index → its matrices for this layer (adapters that do not touch this layer are absent). */
  readonly adapters = new Map<number, AdapterMatrices>();

  constructor(
    readonly base: LinearLayer,
    private readonly routing: AdapterRouting,
  ) {
    super();
  }

  /** [out, in] of the base. */
  get shape(): [number, number] {
    return linearShape(this.base)!;
  }

  forward(x: Tensor): Tensor {
    const y = this.base.forward(x);
    const groups = this.routing.groups.filter((g) => this.adapters.has(g.adapter));
    if (groups.length === 0) return y;
    if (isGradEnabled() && x.requiresGrad) throw new Error('MultiLoRALinear is for inference; train adapters with nn/lora.ts');
    const [outF, inF] = this.shape;
    const rows = x.size / inF;
    if (rows !== this.routing.rows) throw new Error(`adapter routing is set for ${this.routing.rows} rows but the layer sees ${rows}`);
    if (!isHost(x.storage)) {
      this.correctOnDevice(x, y, groups);
      return y;
    }
    const be = backend();
    for (const g of groups) {
      const { A, B, r, scaling } = this.adapters.get(g.adapter)!;
      const n = g.rows.length;
      // Gather the group's rows, down to r values each (scaled), up to out, and add back in place.
      const xs = new Float32Array(n * inF);
      g.rows.forEach((row, i) => xs.set(x.data.subarray(row * inF, (row + 1) * inF), i * inF));
      const h = new Float32Array(n * r);
      be.gemm(gemmArgs({ M: n, N: r, K: inF }, mat(h, r), mat(xs, inF), matT(A, inF), { alpha: scaling }));
      const d = new Float32Array(n * outF);
      be.gemm(gemmArgs({ M: n, N: outF, K: r }, mat(d, outF), mat(h, r), matT(B, r)));
      g.rows.forEach((row, i) => {
        const at = row * outF;
        for (let o = 0; o < outF; o++) y.data[at + o] += d[i * outF + o]!;
      });
    }
    return y;
  }

  /**
   * The same corrections where a device keeps x and y, with no values on the
   * host: a group's rows are gathered and scattered back by products with
   * its one-hot selection S [n, rows] (AdapterRouting.selection), so each
   * group is four products on the device:
   *
   *   h = x·Aᵀ [rows, r],  h_g = s · S·h [n, r],  d = h_g·Bᵀ [n, out],  y += Sᵀ·d
   */
  private correctOnDevice(x: Tensor, y: Tensor, groups: AdapterRouting['groups']): void {
    const be = backend();
    const device = be.device!;
    const [outF, inF] = this.shape;
    const rows = this.routing.rows;
    for (const g of groups) {
      const { r, scaling } = this.adapters.get(g.adapter)!;
      const { A, B } = this.onDevice(g.adapter);
      const S = this.routing.selection(g);
      const n = g.rows.length;
      // Temporaries of this layer alone: taken from the device and given back here (not left to a scratch scope).
      const h = device.alloc(rows * r, false);
      const hg = device.alloc(n * r, false);
      const d = device.alloc(n * outF, false);
      be.gemm(gemmArgs({ M: rows, N: r, K: inF }, mat(h, r), mat(x.storage, inF), matT(A, inF)));
      be.gemm(gemmArgs({ M: n, N: r, K: rows }, mat(hg, r), mat(S, rows), mat(h, r), { alpha: scaling }));
      be.gemm(gemmArgs({ M: n, N: outF, K: r }, mat(d, outF), mat(hg, r), matT(B, r)));
      be.gemm(gemmArgs({ M: rows, N: outF, K: n }, mat(y.storage, outF), matT(S, rows), mat(d, outF), { accumulate: true }));
      for (const t of [h, hg, d]) device.release(t); // handed out again only after the work recorded on them is submitted
    }
  }

  /** An adapter's A and B in the current backend's storage: uploaded to a device once, on first use. */
  private onDevice(adapter: number): { A: Storage; B: Storage } {
    const m = this.adapters.get(adapter)!;
    let stored = this.stored.get(adapter);
    if (!stored || stored.backend !== backend().name) {
      stored = { backend: backend().name, A: toBackend(m.A), B: toBackend(m.B) };
      this.stored.set(adapter, stored);
    }
    return stored;
  }

  private readonly stored = new Map<number, { backend: string; A: Storage; B: Storage }>();
}

/** [out, in] of a linear layer of any kind (fp32, int8, already holding adapters); null for anything else. */
export function linearShape(m: Module): [number, number] | null {
  if (m instanceof Linear) return m.weight.shape as [number, number];
  if (m instanceof QuantizedLinear && !m.tiedHead) return [...m.weight.shape];
  if (m instanceof MultiLoRALinear) return linearShape(m.base);
  return null;
}

const banks = new WeakMap<Module, LoRABank>();

/**
 * The adapters held over one base model: their names (index = adapter id)
 * and the routing its layers read. `LoRABank.of(model)` makes or finds it.
 */
export class LoRABank {
  readonly routing = new AdapterRouting();
  readonly names: string[] = [];

  private constructor(private readonly model: Module) {}

  static of(model: Module): LoRABank {
    let bank = banks.get(model);
    if (!bank) banks.set(model, (bank = new LoRABank(model)));
    return bank;
  }

  /** The bank of a model that has one (null: no adapter was ever added). */
  static find(model: Module): LoRABank | null {
    return banks.get(model) ?? null;
  }

  /**
   * Add an adapter under `name`: its layers (module name → matrices, already
   * checked against the model: io/peft.ts's readAdapter). Layers not yet
   * adapted are wrapped. Returns its id, what `run` takes per row.
   */
  add(name: string, layers: ReadonlyMap<string, { A: Float32Array; B: Float32Array }>, r: number, scaling: number): number {
    if (this.names.includes(name)) throw new Error(`adapter ${name} is already loaded`);
    const id = this.names.length;
    const modules = new Map(this.model.namedModules());
    for (const [layerName, w] of layers) {
      let layer = modules.get(layerName);
      if (!(layer instanceof MultiLoRALinear)) {
        if (!layer || !linearShape(layer)) throw new Error(`adapter ${name}: ${layerName} is not a linear layer`);
        const wrapped = new MultiLoRALinear(layer as LinearLayer, this.routing);
        this.model.replaceModule(layerName, wrapped);
        layer = wrapped;
      }
      (layer as MultiLoRALinear).adapters.set(id, { A: w.A, B: w.B, r, scaling });
    }
    this.names.push(name);
    return id;
  }

  /** Run f (one forward pass) with row i using adapter rowAdapter[i] (−1: none). */
  run<T>(rowAdapter: ArrayLike<number>, f: () => T): T {
    this.routing.set(rowAdapter);
    try {
      return f();
    } finally {
      this.routing.clear();
    }
  }
}
