import { CHINCHILLA_TOKENS_PER_PARAM, type ModelPlan } from './plan.js';

/** 124439808 → "124.44M"; small numbers stay exact. */
export function formatCount(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'k']];
  for (const [size, unit] of units) if (Math.abs(n) >= size) return `${(n / size).toFixed(2)}${unit}`;
  return String(n);
}

/** Binary units, as memory is sold: 497759232 → "474.7 MiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** 8.54e8 → "854.44 MFLOP"; 1.86e18 → "1.86 EFLOP". */
export function formatFlops(n: number): string {
  const units: [number, string][] = [[1e24, 'Y'], [1e21, 'Z'], [1e18, 'E'], [1e15, 'P'], [1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [size, unit] of units) if (Math.abs(n) >= size) return `${(n / size).toFixed(2)} ${unit}FLOP`;
  return `${n} FLOP`;
}

const group = (n: number): string => n.toLocaleString('en-US');
const pct = (part: number, whole: number): string => `${((100 * part) / whole).toFixed(1)}%`;

/** The plan as the text `attn plan` prints: aligned rows, exact counts beside rounded ones. */
export function formatPlan(p: ModelPlan): string {
  const c = p.config;
  const N = p.params.total;
  const T = c.block_size;
  const rows: string[] = [];
  const head = (s: string): void => void rows.push('', s);
  const row = (label: string, value: string, note = ''): void => void rows.push(`  ${label.padEnd(34)}${value.padStart(16)}${note ? '  ' + note : ''}`);

  rows.push(
    `GPT: ${c.n_layer} layers, ${c.n_head} heads, ${c.n_embd} dims, context ${T}, vocab ${c.vocab_size}, ${c.bias ? 'biases' : 'no biases'}; ` +
      `batch ${p.batchSize}, ${p.bytesPerValue} bytes per value`,
  );
  head('Parameters');
  row('token embedding (wte, tied head)', group(p.params.tokenEmbedding), pct(p.params.tokenEmbedding, N));
  row('position embedding (wpe)', group(p.params.positionEmbedding), pct(p.params.positionEmbedding, N));
  row(`attention (${c.n_layer} × ${group(p.params.perBlock.attention)})`, group(p.params.blocks.attention), pct(p.params.blocks.attention, N));
  row(`MLP (${c.n_layer} × ${group(p.params.perBlock.mlp)})`, group(p.params.blocks.mlp), pct(p.params.blocks.mlp, N));
  row(`block layernorms (${c.n_layer} × ${group(p.params.perBlock.layernorms)})`, group(p.params.blocks.layernorms), pct(p.params.blocks.layernorms, N));
  row('final layernorm (ln_f)', group(p.params.finalLayerNorm));
  row('output head', '0', 'tied to wte');
  row('total', group(N), formatCount(N));
  row('non-embedding', group(p.params.nonEmbedding), formatCount(p.params.nonEmbedding));

  head(`FLOPs per token (full context T = ${T})`);
  row('attention, forward (4·L·T·d)', formatFlops(p.flops.attentionForwardPerToken));
  row('inference (2·M + 4·L·T·d)', formatFlops(p.flops.inferencePerToken), `M = ${formatCount(p.params.matmul)} matmul weights`);
  row('training (6·M + 12·L·T·d)', formatFlops(p.flops.trainingPerToken));
  row('rule of thumb 2N / 6N', `${formatFlops(p.flops.inferencePerToken2N)} / ${formatFlops(p.flops.trainingPerToken6N)}`);

  head(`Memory for training (batch ${p.batchSize} × ${T} tokens)`);
  row('weights', formatBytes(p.memory.weights));
  row('gradients', formatBytes(p.memory.gradients));
  row('AdamW state (m, v)', formatBytes(p.memory.adamw));
  row('activations', formatBytes(p.memory.activations), `${formatBytes(p.memory.activationsFusedAttention)} with fused attention`);
  row('total', formatBytes(p.memory.trainingTotal));

  head('KV cache (inference)');
  row('per token (2·L·d values)', formatBytes(p.kvCache.bytesPerToken));
  row(`full context (${T} tokens)`, formatBytes(p.kvCache.bytesFullContext));
  if (p.batchSize > 1) row(`full context × batch ${p.batchSize}`, formatBytes(p.kvCache.bytesFullContextBatch));

  head('Compute-optimal training (Chinchilla: ≈ 20 tokens per parameter)');
  row('tokens (20·N)', formatCount(p.chinchilla.tokens));
  row('compute (6·N·D)', formatFlops(p.chinchilla.flops), `${formatFlops(p.chinchilla.flopsWithAttention)} counting attention`);
  if (p.budget) {
    head(`Your budget: ${formatCount(p.budget.tokens)} tokens`);
    row('tokens per parameter', p.budget.tokensPerParameter.toFixed(2), p.budget.tokensPerParameter < CHINCHILLA_TOKENS_PER_PARAM ? 'under Chinchilla-optimal' : 'at or past Chinchilla-optimal');
    row('compute (6·N·tokens)', formatFlops(p.budget.flops), `${formatFlops(p.budget.flopsWithAttention)} counting attention`);
  }
  rows.push('', 'Formulas: attn plan --help, or the "formulas" field of --json.');
  return rows.join('\n') + '\n';
}
