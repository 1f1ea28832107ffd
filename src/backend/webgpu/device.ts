/// <reference types="@webgpu/types" />
import { envCount } from '../../util/env.js';
import { UserError } from '../../util/errors.js';

/**
 * GpuContext: everything the WebGPU kernels share, so that a kernel file is
 * only its WGSL and the few lines that launch it.
 *
 * - One GPUDevice, with its limits raised to what the adapter allows (a model's
 *   weights need large storage buffers; GEMM tiles need workgroup memory).
 * - A buffer pool. Creating GPU buffers is slow and training makes the same
 *   sizes every step, so released buffers go to free lists by size class and
 *   are handed out again — but only after the work that used them has been
 *   submitted (`flush`), because the queue then orders any later write after
 *   that work.
 * - A pipeline cache keyed by WGSL source and entry point: each kernel variant
 *   is compiled once.
 * - ONE command encoder, and on it one open compute pass that consecutive
 *   dispatches share (WebGPU orders dispatches within a pass, so a kernel sees
 *   the previous one's writes); a copy or a clear ends the pass. Nothing
 *   waits: `flush()` submits what was recorded, and `read()` is the one place
 *   that awaits (the loss at a log step, the logits row being sampled).
 * - The GPU starts while the host still records: every `submitEvery`
 *   dispatches (ATTN_WEBGPU_SUBMIT_EVERY, 32 by default; 0 = only at reads and
 *   explicit flushes) what is recorded is submitted, so a step costs about
 *   max(recording, GPU time) instead of their sum, as CUDA's asynchronous
 *   launches do. The queue runs submits in order, so nothing else changes.
 * - Cheap dispatches, since a training step makes hundreds: every kernel's
 *   parameters go to one slot of a uniform ring (a host copy, uploaded with a
 *   single writeBuffer per submit, bound with a dynamic offset), so the bind
 *   group depends only on the storage buffers and is cached per (layout,
 *   buffers) — pooled buffers come back step after step, and so do the hits.
 * - A staging ring for a call's small host operands (token ids, targets, row
 *   starts, RoPE tables, `withStaged`): copied into one host array and
 *   uploaded with one writeBuffer per submit into one storage buffer, so
 *   they make no buffer and their bind groups are the same every step.
 * - Counters (`stats`) of what that costs on the host: dispatches, passes,
 *   bind groups made, buffers created, queue writes, submits, reads, and the
 *   milliseconds spent recording; and, with `profile` on a device that has
 *   `timestamp-query`, the GPU time of every dispatch by kernel name.
 * - Deferred work (`defer`): a kernel may leave its work unrecorded until
 *   something touches what it writes, so that a reader can fold it into its
 *   own kernel instead (a decode step's norm into the product after it,
 *   input_fold.ts). Any recorded work that reads or writes one of its outputs,
 *   or writes one of its inputs, records it first; released outputs drop it.
 * - Errors a user can cause (no adapter, a buffer over the device's limits, a
 *   lost device) become one-line `UserError`s naming the cause.
 */

// WebGPU's flag values, spelled out so that Node needs no globals from the `webgpu` package.
export const BufferUsage = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 } as const;
const MAP_MODE_READ = 1;
const SHADER_STAGE_COMPUTE = 4;

/** Usage of every pooled storage buffer: read and written by kernels, uploaded to, read back from. */
const STORAGE_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;
const UNIFORM_USAGE = BufferUsage.UNIFORM | BufferUsage.COPY_DST;
const READBACK_USAGE = BufferUsage.MAP_READ | BufferUsage.COPY_DST;

/** A range of 4-byte elements (f32, i32 or u32) in a GPU buffer: what a typed array is to the js backend. */
export interface GpuSpan {
  buffer: GPUBuffer;
  /** First element (not byte). */
  offset: number;
  /** Elements. */
  length: number;
}

/** The whole buffer (or its elements from `offset`) as a span. */
export function span(buffer: GPUBuffer, offset = 0, length = buffer.size / 4 - offset): GpuSpan {
  return { buffer, offset, length };
}

/** How a kernel's shader declares one binding. */
export type BindingKind = 'read' | 'rw';

/** One uniform field, in the order the shader's params struct declares it: u32, i32 or f32. */
export type Param = ['u' | 'i' | 'f', number];
export const u32 = (v: number): Param => ['u', v];
export const i32 = (v: number): Param => ['i', v];
export const f32 = (v: number): Param => ['f', v];

/** A compute shader and the storage bindings it declares (binding i in group 0; the params struct comes last). */
export interface KernelSource {
  /** Shown in error messages. */
  name: string;
  code: string;
  entry?: string;
  bindings: readonly BindingKind[];
}

export interface GpuContextOptions {
  /** A GPU object to use (the browser's navigator.gpu, or one made by the `webgpu` package); found automatically otherwise. */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
}

/** What recording work has cost on the host since the context opened (or `resetStats`): compare two snapshots. */
export interface GpuStats {
  dispatches: number;
  /** Compute passes begun (consecutive dispatches share one). */
  passes: number;
  bindGroupsCreated: number;
  bindGroupsReused: number;
  /** GPU buffers created (pool misses), uniform ring and staging included. */
  buffersCreated: number;
  /** queue.writeBuffer calls. */
  writeBuffers: number;
  /** queue.submit calls (command buffers). */
  submits: number;
  /** Read-backs awaited. */
  reads: number;
  /** Copies and clears recorded. */
  copies: number;
  /** Milliseconds of JavaScript spent in dispatch(): the host's share of a step. */
  encodeMs: number;
  /** Works deferred (`defer`), and of those the ones recorded after all (something else touched their outputs). */
  deferred: number;
  deferredRun: number;
}

/**
 * Work a kernel left for later (`GpuContext.defer`): it writes `outputs` from
 * `inputs` when `run` records it. Readers that can compute what it would
 * have written from its inputs themselves look it up (`deferredWriting`) and
 * leave it pending.
 */
export interface DeferredWork {
  readonly outputs: readonly GPUBuffer[];
  readonly inputs: readonly (GPUBuffer | null)[];
  /** Record the work now (through dispatch, like any kernel). */
  readonly run: () => void;
}

/** A deferred work, pending. */
interface Pending {
  work: DeferredWork;
  /** Its outputs released so far. */
  released: Set<GPUBuffer>;
}

/** Deferred works pending at most: past this the oldest is recorded (works whose outputs are never released would pile up). */
const MAX_DEFERRED = 256;

/** A kernel's compiled pipeline and the layout of its bind group. */
interface Compiled {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** One level of the bind group cache: the group bound so far (at a leaf) and the next buffer's children. */
interface BindNode {
  group: GPUBindGroup | null;
  next: Map<GPUBuffer, BindNode> | null;
}

const zeroStats = (): GpuStats => ({ dispatches: 0, passes: 0, bindGroupsCreated: 0, bindGroupsReused: 0, buffersCreated: 0, writeBuffers: 0, submits: 0, reads: 0, copies: 0, encodeMs: 0, deferred: 0, deferredRun: 0 });

/** Uniform ring size in slots: a submit is forced when a recording uses them all. */
const RING_SLOTS = 4096;
/** Cached bind groups kept at most (the cache is emptied past this: shapes that never come back). */
const MAX_BIND_GROUPS = 16384;
/** Staging ring size in 4-byte elements (4 MiB): a call's host operands larger than what is left of it get a pooled buffer of their own. */
const STAGE_ELEMENTS = 1 << 20;
export { envCount };

/** ATTN_WEBGPU_SUBMIT_EVERY: dispatches per submit while recording (0: submit only at reads and flushes). */
const submitEveryFromEnv = () => envCount('ATTN_WEBGPU_SUBMIT_EVERY', 32, 'dispatches');

/** Timestamp pairs a profile records before it resolves them. */
const MAX_QUERIES = 4096;

/** The quad probe's workgroup (see GpuContext.subgroupQuads): 1 where an invocation reaches its quad's other three by shuffles. */
const QUAD_PROBE_SIZE = 256;
const QUAD_PROBE: KernelSource = {
  name: 'subgroupQuadProbe',
  bindings: ['rw'],
  code: /* wgsl */ `
enable subgroups;
struct P { n: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<i32>;
@group(0) @binding(1) var<uniform> p: P;
@compute @workgroup_size(${QUAD_PROBE_SIZE})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) size: u32) {
  let a = subgroupShuffleXor(lid, 1u);
  let b = subgroupShuffleXor(lid, 2u);
  out[min(lid, p.n - 1u)] = select(0, 1, size >= 4u && a == (lid ^ 1u) && b == (lid ^ 2u));
}`,
};

const SWIFTSHADER_HINT = 'on a machine without a GPU set VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json (Debian chromium ships SwiftShader)';

/** The GPU entry point: navigator.gpu in a browser, Dawn's through the optional `webgpu` package in Node. */
async function findGpu(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  // A variable specifier: bundlers leave the optional Node package alone, and its absence is a runtime matter.
  const name = 'webgpu';
  let mod: { create: (flags: string[]) => GPU };
  try {
    mod = (await import(name)) as typeof mod;
  } catch (e) {
    throw new UserError(`WebGPU is not available: the optional package 'webgpu' did not load (${(e as Error).message.split('\n')[0]})`);
  }
  return mod.create([]);
}

/** Round a byte size up to its pool size class: multiples of a quarter of the size's power of two (≤ 25 % waste), at least 256. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes));
  const quarter = 2 ** Math.max(6, Math.floor(Math.log2(b)) - 2);
  return Math.ceil(b / quarter) * quarter;
}

export class GpuContext {
  readonly device: GPUDevice;
  /** The adapter's description (vendor, architecture, device), for benchmark records. */
  readonly adapterName: string;
  private lostReason: string | null = null;
  private firstError: string | null = null;
  private encoder: GPUCommandEncoder | null = null;
  /** Compute passes recorded since the last flush. */
  private pending = 0;
  /** Dispatches recorded since the last submit. */
  private sinceSubmit = 0;
  /** Dispatches that make a submit while recording (0: none but reads and explicit flushes). */
  submitEvery = submitEveryFromEnv();
  private readonly free = new Map<string, GPUBuffer[]>();
  /** Buffers given back through release and not handed out since (the double-release check). */
  private readonly given = new Set<GPUBuffer>();
  /** Released since the last flush: free again once that work is submitted. */
  private releasedSinceFlush: GPUBuffer[] = [];
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** Per kernel object: its pipeline and bind group layout, so a dispatch builds no string key. */
  private readonly compiled = new WeakMap<KernelSource, Compiled>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  private readonly poolKey = new WeakMap<GPUBuffer, string>();
  private readonly dummies: GPUBuffer[] = [];
  /** The compute pass dispatches are recorded into, while no copy or clear has intervened. */
  private pass: GPUComputePassEncoder | null = null;
  /** The uniform ring: one slot of `slot` bytes per dispatch, its host copy, and the slots used since the last submit. */
  private readonly slot: number;
  private readonly ring: GPUBuffer;
  private readonly ringHost: ArrayBuffer;
  private readonly ringU: Uint32Array;
  private readonly ringI: Int32Array;
  private readonly ringF: Float32Array;
  private ringUsed = 0;
  /**
   * The staging ring: small host operands of one call (token ids, targets,
   * row starts, RoPE tables) are copied into `stageHost` and go up with one
   * writeBuffer per submit, into the one storage buffer `stage`. Every call
   * then binds the same buffer (its element offset is a parameter), so its
   * bind group is a cache hit, and the operands take no pooled buffer.
   */
  private stage: GPUBuffer | null = null;
  private readonly stageHost = new ArrayBuffer(STAGE_ELEMENTS * 4);
  private readonly stageI = new Int32Array(this.stageHost);
  private readonly stageF = new Float32Array(this.stageHost);
  /** Elements staged; those before `stageWritten` are already written to the device. */
  private stageUsed = 0;
  private stageWritten = 0;
  /** Calls inside `withStaged`: while one is open, a flush keeps the ring's contents (its span may not be recorded yet). */
  private stageOpen = 0;
  /** Cached bind groups: a trie keyed by layout, then by each bound buffer in binding order. */
  private bindGroups = new Map<GPUBindGroupLayout, BindNode>();
  private bindGroupCount = 0;
  /** Buffers bound by the dispatch being recorded (reused: no array per dispatch). */
  private readonly bound: GPUBuffer[] = [];
  private readonly ids = new WeakMap<GPUBuffer, number>();
  private nextId = 1;
  /** Free lists that received buffers since the last flush (re-sorted then, so the pool hands buffers out in the same order every step). */
  private readonly unsorted = new Set<GPUBuffer[]>();
  /** Host-side costs since the context opened. */
  readonly stats: GpuStats = zeroStats();
  /** Whether the device has `timestamp-query` (so `startProfile` can time each dispatch on the GPU). */
  readonly canTimestamp: boolean;
  private profile: { names: string[]; querySet: GPUQuerySet; resolve: GPUBuffer; pending: Promise<void>[]; times: Map<string, { ms: number; count: number }> } | null = null;

  /**
   * Dawn's instance and adapter, held for the device's lifetime: in Node,
   * letting the garbage collector take them aborts the process.
   */
  private readonly keepAlive: unknown[];

  private constructor(device: GPUDevice, adapterName: string, keepAlive: unknown[]) {
    this.device = device;
    this.keepAlive = keepAlive;
    this.adapterName = adapterName;
    this.canTimestamp = device.features.has('timestamp-query');
    this.slot = Math.max(256, device.limits.minUniformBufferOffsetAlignment);
    this.ring = device.createBuffer({ size: this.slot * RING_SLOTS, usage: UNIFORM_USAGE });
    this.ringHost = new ArrayBuffer(this.slot * RING_SLOTS);
    this.ringU = new Uint32Array(this.ringHost);
    this.ringI = new Int32Array(this.ringHost);
    this.ringF = new Float32Array(this.ringHost);
    void device.lost.then((info) => {
      this.lostReason = info.message || info.reason || 'unknown reason';
    });
    device.addEventListener('uncapturederror', (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      if (this.firstError === null) this.firstError = `${err.constructor?.name ?? 'GPUError'}: ${err.message.split('\n')[0]}`;
    });
  }

  /** Find an adapter, open a device with the adapter's full limits. Throws a UserError naming why it cannot. */
  static async create(opts: GpuContextOptions = {}): Promise<GpuContext> {
    const gpu = opts.gpu ?? (await findGpu());
    const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) throw new UserError(`no WebGPU adapter found (${SWIFTSHADER_HINT})`);
    const want = [
      'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize',
      'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY',
      'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage',
    ] as const;
    const requiredLimits: Record<string, number> = {};
    for (const k of want) requiredLimits[k] = adapter.limits[k];
    // Timestamps for the per-kernel profile, where the adapter offers them (it costs nothing unless used).
    // Subgroups for the attention kernels' lanes (used only where the probe below passes).
    const requiredFeatures = (['timestamp-query', 'subgroups'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ requiredLimits, requiredFeatures }).catch(() =>
        // An adapter that lists subgroups but will not open a device with them: the device the backend had before.
        adapter.requestDevice({ requiredLimits, requiredFeatures: requiredFeatures.filter((f) => f !== 'subgroups') }),
      );
    } catch (e) {
      throw new UserError(`the WebGPU adapter refused a device (${(e as Error).message.split('\n')[0]})`);
    }
    const info = adapter.info;
    const name = info ? [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') : '';
    const ctx = new GpuContext(device, name || 'unknown adapter', [gpu, adapter]);
    ctx.subgroupQuads = await ctx.probeQuads();
    return ctx;
  }

  /**
   * Whether the device's subgroups hold aligned quads of consecutive
   * invocations (local_invocation_index 4k … 4k + 3), so that
   * `subgroupShuffleXor(x, 1u)` and `(x, 2u)` reach the other three of a
   * quad: what kernels that give one row to four invocations rely on
   * (attention.ts). WebGPU promises subgroups of at least 4 but not their
   * layout, so it is tried once, on a workgroup of 256, at creation.
   */
  subgroupQuads = false;

  private async probeQuads(): Promise<boolean> {
    if (!this.device.features.has('subgroups')) return false;
    this.device.pushErrorScope('validation');
    let ok = false;
    // Its own buffer, not the pool's: the pool's order stays what a caller's allocations make it.
    const out = this.device.createBuffer({ size: QUAD_PROBE_SIZE * 4, usage: STORAGE_USAGE });
    try {
      this.dispatch(QUAD_PROBE, [out], [u32(QUAD_PROBE_SIZE)], [1]);
      ok = (await this.readI32(out)).every((x) => x === 1);
    } catch {
      ok = false;
    }
    out.destroy();
    const error = await this.device.popErrorScope();
    return ok && error === null;
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Throw if the device is lost or an earlier call left a GPU error: everything after would be wrong silently. */
  check(): void {
    if (this.lostReason !== null) throw new UserError(`the WebGPU device was lost (${this.lostReason}); restart from the last checkpoint`);
    if (this.firstError !== null) {
      const e = this.firstError;
      this.firstError = null;
      if (e.startsWith('GPUOutOfMemoryError')) throw new UserError(`the GPU ran out of memory (${e})`);
      throw new Error(`WebGPU error: ${e}`);
    }
  }

  // ---- buffers ----

  private take(bytes: number, usage: number): GPUBuffer {
    this.check();
    const size = sizeClass(bytes);
    if (usage & BufferUsage.STORAGE && size > this.limits.maxStorageBufferBindingSize) {
      throw new UserError(`a GPU buffer of ${bytes} bytes is over this device's maxStorageBufferBindingSize (${this.limits.maxStorageBufferBindingSize} bytes)`);
    }
    if (size > this.limits.maxBufferSize) {
      throw new UserError(`a GPU buffer of ${bytes} bytes is over this device's maxBufferSize (${this.limits.maxBufferSize} bytes)`);
    }
    const key = `${usage}:${size}`;
    const list = this.free.get(key);
    const reused = list?.pop();
    if (reused) {
      this.given.delete(reused);
      return reused;
    }
    const buffer = this.device.createBuffer({ size, usage });
    this.stats.buffersCreated++;
    this.poolKey.set(buffer, key);
    this.idOf(buffer);
    return buffer;
  }

  /** Writes recorded into each buffer: dispatch outputs, copies, clears, queue writes. */
  private readonly written = new WeakMap<GPUBuffer, number>();
  /** Writes whose targets are not known (encode()): they count against every buffer. */
  private opaqueWrites = 0;

  private wrote(b: GPUBuffer): void {
    this.written.set(b, (this.written.get(b) ?? 0) + 1);
  }

  /**
   * A count that changes whenever work that may write `buffer` is recorded:
   * a kernel may reuse what it derived from the buffer (quantized
   * activations) while the count stays the same.
   */
  writes(buffer: GPUBuffer): number {
    return (this.written.get(buffer) ?? 0) + this.opaqueWrites;
  }

  /**
   * Deferred works not yet recorded, oldest first, and indexes by the
   * buffers they write and read: a decode token leaves two norms a layer
   * pending until its end, and every binding of every dispatch is looked up.
   */
  private readonly deferredWork = new Set<Pending>();
  private readonly deferredByOutput = new Map<GPUBuffer, Pending>();
  private readonly deferredByInput = new Map<GPUBuffer, Set<Pending>>();
  /** Pending works with a released buffer: recorded at the next flush, after which the pool may hand the buffer out again. */
  private readonly deferredAtFlush = new Set<Pending>();

  /**
   * Leave `work` unrecorded for now. Its outputs count as written (a reader
   * that keeps what it derived from one sees the change). It is recorded
   * first when later work reads or writes one of its outputs or writes one of
   * its inputs, and before a read-back, an opaque `encode`, or a flush after
   * one of its buffers was released (the pool may hand that buffer out
   * again). Once all its outputs are released it is dropped, never recorded.
   */
  defer(work: DeferredWork): void {
    // Work still pending on one of these outputs comes first (it may have other outputs someone reads).
    for (const b of work.outputs) this.settle(b, true);
    const d: Pending = { work, released: new Set() };
    this.deferredWork.add(d);
    for (const b of work.outputs) {
      this.deferredByOutput.set(b, d);
      this.wrote(b);
    }
    for (const b of work.inputs) {
      if (!b) continue;
      let set = this.deferredByInput.get(b);
      if (!set) this.deferredByInput.set(b, (set = new Set()));
      set.add(d);
    }
    this.stats.deferred++;
    if (this.deferredWork.size > MAX_DEFERRED) this.runDeferred(this.deferredWork.values().next().value!);
  }

  /** The pending deferred work that writes `buffer`, if any: a reader may compute its values itself, from the work's inputs. */
  deferredWriting(buffer: GPUBuffer): DeferredWork | null {
    return this.deferredByOutput.get(buffer)?.work ?? null;
  }

  /** Forget a pending work (recorded now, or dropped). */
  private undefer(d: Pending): boolean {
    if (!this.deferredWork.delete(d)) return false;
    for (const b of d.work.outputs) if (this.deferredByOutput.get(b) === d) this.deferredByOutput.delete(b);
    for (const b of d.work.inputs) {
      const set = b && this.deferredByInput.get(b);
      if (set && set.delete(d) && set.size === 0) this.deferredByInput.delete(b!);
    }
    this.deferredAtFlush.delete(d);
    return true;
  }

  private runDeferred(d: Pending): void {
    if (!this.undefer(d)) return;
    this.stats.deferredRun++;
    d.work.run();
  }

  /** Record the deferred works that must come before work that reads `buffer` (or writes it, `writes`). */
  private settle(buffer: GPUBuffer, writes: boolean): void {
    const d = this.deferredByOutput.get(buffer);
    if (d) this.runDeferred(d);
    const readers = writes ? this.deferredByInput.get(buffer) : undefined;
    if (readers) for (const r of [...readers]) this.runDeferred(r);
  }

  /** Note a released buffer in the deferred works: drop one whose outputs are all released (nobody will read them). */
  private releasedDeferred(buffer: GPUBuffer): void {
    const d = this.deferredByOutput.get(buffer);
    if (d) {
      d.released.add(buffer);
      if (d.work.outputs.every((b) => d.released.has(b))) this.undefer(d);
      else this.deferredAtFlush.add(d);
    }
    const readers = this.deferredByInput.get(buffer);
    if (readers) {
      for (const r of readers) this.deferredAtFlush.add(r);
    }
  }

  /** A storage buffer of at least `bytes` bytes, contents undefined (a reused buffer keeps old values). */
  buffer(bytes: number): GPUBuffer {
    return this.take(bytes, STORAGE_USAGE);
  }

  /** A storage buffer holding at least `elements` zeroed 4-byte elements. */
  zeros(elements: number): GPUBuffer {
    const b = this.buffer(elements * 4);
    // Counted as pending work: a queue write into b must first submit this clear, or the clear would land after it.
    this.commands().clearBuffer(b);
    this.wrote(b);
    this.stats.copies++;
    this.pending++;
    return b;
  }

  /** Give a pooled buffer back. Work already recorded may still use it: it is handed out again only after the next flush. */
  release(buffer: GPUBuffer): void {
    if (!this.poolKey.has(buffer)) throw new Error('GpuContext.release: not a pooled buffer');
    // Released twice, a buffer would be handed to two owners, each overwriting the other's values.
    if (this.given.has(buffer)) throw new Error('GpuContext.release: a buffer released twice (its storage has two owners that each give it back)');
    this.given.add(buffer);
    this.releasedSinceFlush.push(buffer);
    if (this.deferredWork.size > 0) this.releasedDeferred(buffer);
  }

  /** A new storage buffer holding `data`. */
  upload(data: Float32Array | Uint32Array | Int32Array): GPUBuffer {
    const b = this.buffer(data.byteLength);
    this.device.queue.writeBuffer(b, 0, data.buffer, data.byteOffset, data.byteLength);
    this.wrote(b);
    this.stats.writeBuffers++;
    return b;
  }

  /**
   * Run `f` with `data` on the device for the length of one call: staged in
   * the ring (no buffer made, no queue write until the next submit), or, when
   * the ring is full, in a pooled buffer released when `f` returns. `f`
   * records work reading the span; it must not keep the span.
   */
  withStaged<T>(data: Int32Array | Uint32Array | Float32Array, f: (s: GpuSpan) => T): T {
    const n = data.length;
    if (n === 0 || this.stageUsed + n > STAGE_ELEMENTS) {
      const b = this.upload(n ? data : Int32Array.of(0));
      try {
        return f({ buffer: b, offset: 0, length: n });
      } finally {
        this.release(b);
      }
    }
    this.stage ??= this.device.createBuffer({ size: STAGE_ELEMENTS * 4, usage: STORAGE_USAGE });
    const offset = this.stageUsed;
    if (data instanceof Float32Array) this.stageF.set(data, offset);
    else this.stageI.set(data, offset); // Uint32 and Int32 share their bits
    this.wrote(this.stage);
    // Offsets kept a multiple of 4 elements (16 bytes): vector loads stay aligned, and the ring's layout is the same every step.
    this.stageUsed += (n + 3) & ~3;
    this.stageOpen++;
    try {
      return f({ buffer: this.stage, offset, length: n });
    } finally {
      this.stageOpen--;
    }
  }

  /**
   * Write `data` into an existing buffer at element `offset`. Recorded work is
   * submitted first: a queue write would otherwise land before kernels that
   * were recorded earlier and still have to read the old contents.
   */
  write(buffer: GPUBuffer, offset: number, data: Float32Array | Uint32Array | Int32Array): void {
    this.check();
    this.settle(buffer, true);
    if (this.pending > 0) this.flush();
    this.device.queue.writeBuffer(buffer, offset * 4, data.buffer, data.byteOffset, data.byteLength);
    this.wrote(buffer);
    this.stats.writeBuffers++;
  }

  /** Copy `length` elements between buffers, in order with the recorded kernels. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, length: number): void {
    this.settle(src, false);
    this.settle(dst, true);
    this.commands().copyBufferToBuffer(src, srcOffset * 4, dst, dstOffset * 4, length * 4);
    this.wrote(dst);
    this.stats.copies++;
    this.pending++;
  }

  /** Read `length` float32 elements from element `offset` (submits what is recorded, then waits for it). */
  async read(buffer: GPUBuffer, offset = 0, length = buffer.size / 4 - offset): Promise<Float32Array> {
    return new Float32Array(await this.readBytes(buffer, offset * 4, length * 4));
  }

  /** As read, for int32 contents. */
  async readI32(buffer: GPUBuffer, offset = 0, length = buffer.size / 4 - offset): Promise<Int32Array> {
    return new Int32Array(await this.readBytes(buffer, offset * 4, length * 4));
  }

  private async readBytes(buffer: GPUBuffer, byteOffset: number, bytes: number): Promise<ArrayBuffer> {
    this.settle(buffer, false);
    const staging = this.take(bytes, READBACK_USAGE);
    // copyBufferToBuffer moves multiples of 4 bytes; our elements are 4 bytes.
    this.commands().copyBufferToBuffer(buffer, byteOffset, staging, 0, bytes);
    this.pending++;
    this.stats.reads++;
    this.flush();
    try {
      await staging.mapAsync(MAP_MODE_READ, 0, bytes);
    } catch (e) {
      this.check();
      throw new Error(`WebGPU read failed: ${(e as Error).message.split('\n')[0]}`);
    }
    const out = staging.getMappedRange(0, bytes).slice(0);
    staging.unmap();
    this.toFree(staging);
    this.check();
    return out;
  }

  // ---- pipelines and dispatch ----

  private layout(kinds: readonly BindingKind[]): GPUBindGroupLayout {
    const key = kinds.join(',');
    let layout = this.layouts.get(key);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = kinds.map((k, i) => ({
        binding: i,
        visibility: SHADER_STAGE_COMPUTE,
        buffer: { type: k === 'read' ? 'read-only-storage' : 'storage' },
      }));
      entries.push({ binding: kinds.length, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } });
      layout = this.device.createBindGroupLayout({ entries });
      this.layouts.set(key, layout);
    }
    return layout;
  }

  /** The compiled pipeline of a kernel, from the cache (keyed by WGSL and entry point). */
  pipeline(k: KernelSource): GPUComputePipeline {
    return this.compile(k).pipeline;
  }

  /** A kernel's pipeline and layout: looked up by the kernel object (kernels are constants), compiled on first use. */
  private compile(k: KernelSource): Compiled {
    let c = this.compiled.get(k);
    if (!c) {
      c = { pipeline: this.pipelineOf(k), layout: this.layout(k.bindings) };
      this.compiled.set(k, c);
    }
    return c;
  }

  /** The pipeline of a kernel by its WGSL and entry point: a new KernelSource object with known code compiles nothing. */
  private pipelineOf(k: KernelSource): GPUComputePipeline {
    const entry = k.entry ?? 'main';
    const key = `${entry}\n${k.code}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ code: k.code, label: k.name });
      const layout = this.device.createPipelineLayout({ bindGroupLayouts: [this.layout(k.bindings)] });
      p = this.device.createComputePipeline({ layout, compute: { module, entryPoint: entry }, label: k.name });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** The encoder that recorded work goes to (created on demand; submitted by flush). Ends the open compute pass: what comes next is a copy or a clear. */
  commands(): GPUCommandEncoder {
    this.check();
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** The open compute pass, begun when there is none (profiling: one pass per dispatch, with its timestamps). */
  private computePass(name: string): GPUComputePassEncoder {
    if (this.pass && !this.profile) return this.pass;
    const encoder = this.commands();
    let desc: GPUComputePassDescriptor | undefined;
    const prof = this.profile;
    if (prof) {
      const i = prof.names.length;
      prof.names.push(name);
      desc = { timestampWrites: { querySet: prof.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } };
    }
    this.pass = encoder.beginComputePass(desc);
    this.stats.passes++;
    return this.pass;
  }

  /** A small id per buffer, for bind group cache keys. */
  private idOf(b: GPUBuffer): number {
    let id = this.ids.get(b);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(b, id);
    }
    return id;
  }

  /**
   * The bind group of `buffers` (and the uniform ring) for a layout: cached,
   * since the pool hands the same buffers out again step after step. The
   * cache is a trie of Maps keyed by the objects themselves, so a hit builds
   * no key and allocates nothing.
   */
  private bindGroup(layout: GPUBindGroupLayout, buffers: readonly GPUBuffer[]): GPUBindGroup {
    let node = this.bindGroups.get(layout);
    if (!node) {
      node = { group: null, next: null };
      this.bindGroups.set(layout, node);
    }
    for (let i = 0; i < buffers.length; i++) {
      const b = buffers[i]!;
      node.next ??= new Map();
      let child: BindNode | undefined = node.next.get(b);
      if (!child) {
        child = { group: null, next: null };
        node.next.set(b, child);
      }
      node = child;
    }
    if (node.group) {
      this.stats.bindGroupsReused++;
      return node.group;
    }
    const entries: GPUBindGroupEntry[] = buffers.map((buffer, i) => ({ binding: i, resource: { buffer } }));
    entries.push({ binding: buffers.length, resource: { buffer: this.ring, offset: 0, size: this.slot } });
    const group = this.device.createBindGroup({ layout, entries });
    if (this.bindGroupCount >= MAX_BIND_GROUPS) {
      // Shapes that never come back: start over (the group just made stays valid for this dispatch).
      this.bindGroups = new Map();
      this.bindGroupCount = 0;
    } else {
      node.group = group;
    }
    this.bindGroupCount++;
    this.stats.bindGroupsCreated++;
    return group;
  }

  /** Pack a dispatch's parameters into the next ring slot; returns its byte offset. */
  private pushParams(name: string, params: readonly Param[]): number {
    if (params.length * 4 > this.slot) throw new Error(`${name}: ${params.length} parameters do not fit a ${this.slot}-byte uniform slot`);
    if (this.ringUsed === RING_SLOTS) this.flush();
    const offset = this.ringUsed * this.slot;
    const base = offset / 4;
    for (let i = 0; i < params.length; i++) {
      const p = params[i]!;
      const t = p[0];
      const v = p[1];
      if (t === 'u') this.ringU[base + i] = v;
      else if (t === 'i') this.ringI[base + i] = v;
      else this.ringF[base + i] = v;
    }
    this.ringUsed++;
    return offset;
  }

  /** Record custom work on the shared encoder (a kernel that needs several passes, a copy). */
  encode(f: (encoder: GPUCommandEncoder) => void): void {
    for (const d of [...this.deferredWork]) this.runDeferred(d); // its reads and writes are not known
    f(this.commands());
    this.opaqueWrites++;
    this.stats.copies++;
    this.pending++;
  }

  /** The 16-byte buffer bound at slot `i` where an optional input or output (a bias, a padding mask) is absent: one per slot, as two writable bindings may not share a buffer. */
  private dummy(i: number): GPUBuffer {
    while (this.dummies.length <= i) this.dummies.push(this.device.createBuffer({ size: 16, usage: STORAGE_USAGE }));
    return this.dummies[i]!;
  }

  /**
   * Record one compute dispatch: `buffers[i]` at binding i (null: an absent
   * optional operand, which the kernel must not touch), `params` packed
   * into a uniform struct at the last binding, `groups` workgroups. An input
   * that is also an output of the same dispatch (in-place calls) is read from
   * a copy, since WebGPU forbids binding one buffer both ways in a dispatch.
   */
  dispatch(k: KernelSource, buffers: readonly (GPUBuffer | null | undefined)[], params: readonly Param[], groups: readonly [number, number?, number?]): void {
    if (buffers.length !== k.bindings.length) throw new Error(`${k.name}: ${buffers.length} buffers for ${k.bindings.length} bindings`);
    const maxGroups = this.limits.maxComputeWorkgroupsPerDimension;
    const [gx, gy = 1, gz = 1] = groups;
    if (gx === 0 || gy === 0 || gz === 0) return; // nothing to do
    if (gx > maxGroups || gy > maxGroups || gz > maxGroups) {
      throw new UserError(`${k.name}: ${gx}×${gy}×${gz} workgroups is over this device's maxComputeWorkgroupsPerDimension (${maxGroups})`);
    }
    if (this.deferredWork.size > 0) {
      for (let i = 0; i < buffers.length; i++) {
        const b = buffers[i];
        if (b) this.settle(b, k.bindings[i] === 'rw');
      }
    }
    const t0 = performance.now();
    // Hand the GPU what is recorded so far (before this dispatch's parameters take a ring slot).
    if (this.submitEvery > 0 && this.sinceSubmit >= this.submitEvery) this.flush();
    const { pipeline, layout } = this.compile(k);
    const bound = this.resolveAliases(k, buffers);
    for (let i = 0; i < bound.length; i++) if (k.bindings[i] === 'rw') this.wrote(bound[i]!);
    const group = this.bindGroup(layout, bound);
    // A full query set is resolved by a submit, before this dispatch's parameters take a ring slot.
    if (this.profile && this.profile.names.length * 2 >= MAX_QUERIES) this.flush();
    const offset = this.pushParams(k.name, params);
    const pass = this.computePass(k.name);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group, [offset]);
    pass.dispatchWorkgroups(gx, gy, gz);
    if (this.profile) this.endPass();
    this.pending++;
    this.sinceSubmit++;
    this.stats.dispatches++;
    this.stats.encodeMs += performance.now() - t0;
  }

  /**
   * The buffers to bind, in the reused `bound` array: a dummy for each absent
   * one, and a copy for an input that is also an output of the dispatch (a
   * few bindings: nested loops, no Set or array made per dispatch).
   */
  private resolveAliases(k: KernelSource, buffers: readonly (GPUBuffer | null | undefined)[]): GPUBuffer[] {
    const bound = this.bound;
    const kinds = k.bindings;
    const n = buffers.length;
    bound.length = n;
    for (let i = 0; i < n; i++) bound[i] = buffers[i] ?? this.dummy(i);
    for (let i = 0; i < n; i++) {
      if (kinds[i] !== 'rw') continue;
      for (let j = i + 1; j < n; j++) {
        if (kinds[j] === 'rw' && bound[j] === bound[i]) throw new Error(`${k.name}: one buffer bound to two outputs of the same dispatch`);
      }
    }
    for (let i = 0; i < n; i++) {
      if (kinds[i] === 'rw') continue;
      const b = bound[i]!;
      let written = false;
      for (let j = 0; j < n; j++) if (kinds[j] === 'rw' && bound[j] === b) written = true;
      if (!written) continue;
      const copy = this.buffer(b.size);
      this.commands().copyBufferToBuffer(b, 0, copy, 0, b.size);
      this.stats.copies++;
      this.releasedSinceFlush.push(copy);
      bound[i] = copy;
    }
    return bound;
  }

  /** Submit everything recorded; buffers released before now become reusable. */
  flush(): void {
    this.check();
    // A released buffer is handed out again after this flush: work that still reads or writes one is recorded first.
    if (this.deferredAtFlush.size > 0) for (const d of [...this.deferredAtFlush]) this.runDeferred(d);
    this.endPass();
    if (this.ringUsed > 0) {
      // The parameters of everything recorded, in one upload; the queue orders it after earlier submits and before this one.
      this.device.queue.writeBuffer(this.ring, 0, this.ringHost, 0, this.ringUsed * this.slot);
      this.stats.writeBuffers++;
      this.ringUsed = 0;
    }
    if (this.stageUsed > this.stageWritten) {
      // Everything staged since the last submit, in one upload ordered before this submit's work.
      this.device.queue.writeBuffer(this.stage!, this.stageWritten * 4, this.stageHost, this.stageWritten * 4, (this.stageUsed - this.stageWritten) * 4);
      this.stats.writeBuffers++;
      this.stageWritten = this.stageUsed;
    }
    // The ring starts over once no call holds a span of it; a later queue write is ordered after this submit's reads.
    if (this.stageOpen === 0) this.stageUsed = this.stageWritten = 0;
    if (this.encoder) {
      if (this.profile && this.profile.names.length > 0) this.resolveProfile(this.encoder);
      this.device.queue.submit([this.encoder.finish()]);
      this.stats.submits++;
      this.encoder = null;
    }
    this.pending = 0;
    this.sinceSubmit = 0;
    for (const b of this.releasedSinceFlush) this.toFree(b);
    this.releasedSinceFlush = [];
    this.sortFree();
  }

  private toFree(b: GPUBuffer): void {
    const key = this.poolKey.get(b)!;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(b);
    this.unsorted.add(list);
  }

  /**
   * Order each free list that changed by buffer id, the lowest handed out
   * first. Released buffers arrive in whatever order the step let them go,
   * not the order it took them; sorted, the same allocations of the next step
   * get the same buffers as this one's, so their bind groups are cache hits.
   */
  private sortFree(): void {
    for (const list of this.unsorted) list.sort((a, b) => this.ids.get(b)! - this.ids.get(a)!);
    this.unsorted.clear();
  }

  /** Submit and wait until the GPU has finished everything (for timing). */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  /** Zero the counters (snapshot `{ ...ctx.stats }` to compare instead). */
  resetStats(): void {
    Object.assign(this.stats, zeroStats());
  }

  /**
   * Time every dispatch from now on with GPU timestamps (each gets its own
   * pass: slower, so only for profiling). Needs `canTimestamp`.
   */
  startProfile(): void {
    if (!this.canTimestamp) throw new Error('this WebGPU device has no timestamp-query feature');
    this.flush();
    const querySet = this.device.createQuerySet({ type: 'timestamp', count: MAX_QUERIES });
    const resolve = this.device.createBuffer({ size: MAX_QUERIES * 8, usage: 0x0200 /* QUERY_RESOLVE */ | BufferUsage.COPY_SRC });
    this.profile = { names: [], querySet, resolve, pending: [], times: new Map() };
  }

  /** Copy the recorded timestamps out (in order with the work) and add them to the profile once read. */
  private resolveProfile(encoder: GPUCommandEncoder): void {
    const prof = this.profile!;
    const n = prof.names.length;
    const names = prof.names;
    prof.names = [];
    encoder.resolveQuerySet(prof.querySet, 0, 2 * n, prof.resolve, 0);
    const staging = this.device.createBuffer({ size: 2 * n * 8, usage: READBACK_USAGE });
    encoder.copyBufferToBuffer(prof.resolve, 0, staging, 0, 2 * n * 8);
    // Mapped once the submit carrying the copy is done; a later resolve may reuse the query set after this submit.
    queueMicrotask(() => {
      prof.pending.push(
        staging.mapAsync(MAP_MODE_READ).then(() => {
          const t = new BigUint64Array(staging.getMappedRange());
          names.forEach((name, i) => {
            const e = prof.times.get(name) ?? { ms: 0, count: 0 };
            e.ms += Number(t[2 * i + 1]! - t[2 * i]!) / 1e6;
            e.count++;
            prof.times.set(name, e);
          });
          staging.unmap();
          staging.destroy();
        }),
      );
    });
  }

  /** Stop profiling: GPU milliseconds and dispatch counts per kernel name, for the work since startProfile. */
  async stopProfile(): Promise<Map<string, { ms: number; count: number }>> {
    const prof = this.profile;
    if (!prof) throw new Error('no profile was started');
    this.flush();
    await new Promise<void>((r) => queueMicrotask(r));
    await this.device.queue.onSubmittedWorkDone();
    await Promise.all(prof.pending);
    this.profile = null;
    prof.querySet.destroy();
    prof.resolve.destroy();
    return prof.times;
  }

  /** Free every pooled buffer and the device; the context is unusable afterwards. */
  destroy(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    for (const b of this.dummies) b.destroy();
    this.stage?.destroy();
    this.free.clear();
    this.given.clear();
    this.device.destroy();
  }
}
