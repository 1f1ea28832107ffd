import type { GPTConfig } from '../models/gpt_config.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import type { TensorEntry } from './safetensors.js';
import { UserError } from '../util/errors.js';
import { checkConfigSizes } from './config_limits.js';

/** The tanh-approximated GELU that attn implements, under the names Hugging Face uses for it. */
const TANH_GELU = new Set(['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast']);

/** Map a Hugging Face GPT-2 config.json onto our config. */
export function configFromHF(hf: Record<string, unknown>, source: string): GPTConfig {
  checkConfigSizes(hf, source); // the limits; loadModel has checked them against the weights already
  const act = (hf.activation_function as string | undefined) ?? 'gelu_new';
  if (!TANH_GELU.has(act)) throw new UserError(`${source}: activation_function "${act}" is not supported (attn implements the tanh GELU, "gelu_new")`);
  if (hf.tie_word_embeddings === false) throw new UserError(`${source}: untied output heads (tie_word_embeddings: false) are not supported yet`);
  try {
    return parseGPTConfig(
      {
        n_layer: hf.n_layer,
        n_head: hf.n_head,
        n_embd: hf.n_embd,
        block_size: hf.n_positions ?? hf.n_ctx,
        vocab_size: hf.vocab_size,
        dropout: 0,
        bias: true,
        layer_norm_epsilon: hf.layer_norm_epsilon ?? 1e-5,
      },
      source,
    );
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

/** Conv1D layers of GPT-2 store weights [in, out]; our Linear stores [out, in]. */
export function isConv1DWeight(name: string): boolean {
  return /^h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/.test(name);
}

/** Buffers some GPT-2 checkpoints carry that are not parameters (the causal mask). */
function isBuffer(name: string): boolean {
  return /\.attn\.(bias|masked_bias)$/.test(name);
}

export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/**
 * Rename and re-lay-out Hugging Face GPT-2 tensors into our parameter names:
 * drop the "transformer." prefix and the mask buffers, transpose Conv1D
 * weights, and check that a separate lm_head is really tied to wte.
 */
export function weightsFromHF(tensors: Map<string, TensorEntry>, source: string): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  let lmHead: TensorEntry | undefined;
  for (const [rawName, t] of tensors) {
    const name = rawName.startsWith('transformer.') ? rawName.slice('transformer.'.length) : rawName;
    if (isBuffer(name)) continue;
    if (name === 'lm_head.weight') {
      lmHead = t;
      continue;
    }
    if (!(t.data instanceof Float32Array)) throw new UserError(`${source}: tensor ${rawName} has integer dtype ${t.dtype}, expected a float`);
    if (isConv1DWeight(name)) {
      const [inF, outF] = t.shape as [number, number];
      out.set(name, { shape: [outF, inF], data: transpose2d(t.data, inF, outF) });
    } else {
      out.set(name, { shape: t.shape, data: t.data });
    }
  }
  const wte = out.get('wte.weight');
  if (lmHead && wte && !sameValues(lmHead.data, wte.data)) {
    throw new UserError(`${source}: lm_head.weight differs from wte.weight; untied output heads are not supported yet`);
  }
  return out;
}

function sameValues(a: ArrayLike<unknown>, b: ArrayLike<unknown>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
