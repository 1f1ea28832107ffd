import { Command } from 'commander';
import { writeDirAtomic } from '../io/atomic.js';
import { hfFiles } from '../io/hf_export.js';
import { loadModel, modelFiles } from '../io/model_dir.js';
import { loadAdapter } from '../io/peft.js';
import { GPT } from '../models/gpt.js';
import { mergeLoRA } from '../nn/lora.js';
import { isQuantized } from '../nn/quantized_linear.js';
import { UserError } from '../util/errors.js';
import { checkOutDir, checkNotSource } from './out_dir.js';

/**
 * Fold a LoRA adapter into its base and write the result as an ordinary
 * model: W ← W + (alpha/r)·B·A for every adapted layer. A Hugging Face
 * GPT-2 base is written back in that layout; any other in attn's.
 * Returns what was written, for the one line the command prints.
 */
export function runMerge(o: { model: string; adapter: string; out: string }): { layers: number; layout: string } {
  checkOutDir(o.out, 'language-model');
  checkNotSource(o.out, o.model);
  const loaded = loadModel(o.model);
  if (loaded.source === 'gguf') throw new UserError(`${o.model}: a GGUF model holds block-quantized weights; merge into an fp32 model directory (attn export turns one into GGUF afterwards)`);
  // W + (alpha/r)·B·A needs the fp32 W: an int8 copy (attn quantize) would be refused as a LoRA target, with a message about training.
  if (isQuantized(loaded.model)) throw new UserError(`${o.model} is int8-quantized (attn quantize): merge into the fp32 model it was made from, then quantize the merged model`);
  const adapter = loadAdapter(loaded.model, o.adapter);
  mergeLoRA(loaded.model);
  if (loaded.source === 'hf-gpt2' && loaded.model instanceof GPT) {
    writeDirAtomic(o.out, hfFiles(loaded.model, loaded.tokenizer).files);
    return { layers: adapter.layers.size, layout: 'Hugging Face GPT-2' };
  }
  writeDirAtomic(o.out, modelFiles(loaded.model, loaded.tokenizer));
  return { layers: adapter.layers.size, layout: 'attn' };
}

export function mergeCommand(): Command {
  return new Command('merge')
    .description('fold a LoRA adapter (PEFT layout: adapter_config.json + adapter_model.safetensors) into its base model and write the merged model')
    .requiredOption('--model <dir>', 'the base model directory the adapter was trained on')
    .requiredOption('--adapter <dir>', 'the adapter directory')
    .requiredOption('--out <dir>', 'where to write the merged model (written atomically)')
    .action((o: { model: string; adapter: string; out: string }) => {
      const r = runMerge(o);
      process.stdout.write(`merged ${r.layers} layers into ${o.out} (${r.layout} layout)\n`);
    });
}
