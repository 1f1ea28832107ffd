import { Command } from 'commander';
import { writeDirAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import { loadModel, modelFiles } from '../io/model_dir.js';
import { isQuantized, quantize } from '../nn/quantized_linear.js';
import { checkOutDir, checkNotSource } from './out_dir.js';

/** Quantize a model's matrices to int8 (per output channel) and save it as an attn model directory. */
export function runQuantize(o: { model: string; out: string }): { params: number; bytes: number } {
  checkOutDir(o.out, 'language-model');
  checkNotSource(o.out, o.model);
  const { model, tokenizer } = loadModel(o.model);
  if (isQuantized(model)) throw new UserError(`${o.model} is already quantized`);
  const params = model.numParameters();
  quantize(model); // every Linear (and the tied head) becomes a QuantizedLinear
  const files = modelFiles(model, tokenizer);
  writeDirAtomic(o.out, files);
  return { params, bytes: (files['model.safetensors'] as Uint8Array).length };
}

export function quantizeCommand(): Command {
  return new Command('quantize')
    .description('int8 weight-only quantization (per-output-channel scales; activations stay fp32)')
    .requiredOption('--model <dir>', 'model directory: ours (GPT or Llama family), a Hugging Face GPT-2, Llama, Qwen2 or Mistral')
    .requiredOption('--out <dir>', 'directory for the quantized model')
    .action((o: { model: string; out: string }) => {
      const r = runQuantize(o);
      process.stdout.write(`wrote ${o.out}: ${(r.params / 1e6).toFixed(2)}M parameters, ${(r.bytes / 1e6).toFixed(1)} MB\n`);
    });
}
