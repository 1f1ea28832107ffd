import { readAdapter } from '../io/peft.js';
import { LoRABank } from '../nn/lora_bank.js';
import { UserError } from '../util/errors.js';
import type { ServedEmbedder, ServedModel } from './served_model.js';

/**
 * LoRA adapters served over a base model (`attn serve --model base=DIR
 * --adapter name=ADAPTER_DIR …`). Each adapter is a model of its own to
 * clients — requests choose it by `model`, /v1/models lists it — but it
 * shares the base's weights, tokenizer and scheduler: sequences of the base
 * and of every adapter decode in one continuous batch, each row with its
 * own adapter (nn/lora_bank.ts). An adapter adds only its A and B matrices
 * to memory.
 */

/** `NAME=DIR`, or `NAME@BASE=DIR` when several language models are served. */
export function parseAdapterSpec(spec: string): { name: string; base: string | null; dir: string } {
  const eq = spec.indexOf('=');
  if (eq <= 0 || eq === spec.length - 1) throw new UserError(`--adapter ${spec}: expected NAME=DIR (or NAME@BASE=DIR)`);
  const [left, dir] = [spec.slice(0, eq), spec.slice(eq + 1)];
  const at = left.indexOf('@');
  const [name, base] = at >= 0 ? [left.slice(0, at), left.slice(at + 1)] : [left, null];
  if (!/^[A-Za-z0-9_.:/-]+$/.test(name)) throw new UserError(`--adapter ${spec}: the name "${name}" may only use letters, digits and _.:/-`);
  if (name === 'auto') throw new UserError('--adapter: "auto" is reserved for tiered routing; give the adapter another name');
  if (base === '') throw new UserError(`--adapter ${spec}: no base model name after "@"`);
  return { name, base, dir };
}

/**
 * Load every `--adapter` spec onto its base (named, or the only language
 * model served) and add it to `models` under its own name. An adapter that
 * does not fit its base, or a name already taken, is a UserError.
 */
export function loadServedAdapters(specs: readonly string[], models: Map<string, ServedModel>, embedders: ReadonlyMap<string, ServedEmbedder>): void {
  const bases = [...models.values()].filter((m) => !m.adapter);
  for (const spec of specs) {
    const { name, base: baseName, dir } = parseAdapterSpec(spec);
    if (models.has(name) || embedders.has(name)) throw new UserError(`--adapter ${spec}: a model named "${name}" is already served`);
    let base: ServedModel | undefined;
    if (baseName !== null) {
      base = models.get(baseName);
      if (!base || base.adapter) throw new UserError(`--adapter ${spec}: "${baseName}" is not a served language model (served: ${bases.map((m) => m.name).join(', ')})`);
    } else {
      if (bases.length !== 1) throw new UserError(`--adapter ${spec}: ${bases.length === 0 ? 'no language model is served' : `${bases.length} language models are served; say which with NAME@BASE=DIR`}`);
      base = bases[0]!;
    }
    const adapter = readAdapter(dir, base.model);
    const id = LoRABank.of(base.model).add(name, adapter.layers, adapter.r, adapter.scaling);
    models.set(name, { ...base, name, adapter: { base: base.name, id }, created: Math.floor(Date.now() / 1000) });
  }
}
