import { Command, Option } from 'commander';
import { checkOutFile, writeDirAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import { hfFiles } from '../io/hf_export.js';
import { loadGPT, loadModel } from '../io/model_dir.js';
import { Llama } from '../models/llama.js';
import { llamaToGGUF } from '../io/gguf_llama.js';
import { dequantize } from '../nn/quantized_linear.js';
import { gpt2ToGGUF, type GGUFExportType } from '../io/gguf_gpt2.js';
import { hasGGUFMagic } from '../io/gguf.js';
import { writeGGUF } from '../io/gguf_write.js';
import { checkNotSource, checkOutDir, checkReplaceableFile } from './out_dir.js';

const GGUF_TYPES = ['f32', 'f16', 'q8_0', 'q4_0'] as const;

/** Write a model as a Hugging Face GPT-2 directory, or a GGUF file (a GPT as llama.cpp's "gpt2", a Llama-family model as "llama" or "qwen2"); returns notes for the user. */
export function runExport(o: { model: string; to: string; out: string; type?: string }): string[] {
  if (o.to === 'gguf') {
    const type = (o.type ?? 'f32') as GGUFExportType;
    if (!GGUF_TYPES.includes(type)) throw new UserError(`--type ${o.type}: GGUF export writes ${GGUF_TYPES.join(', ')}`);
    checkOutFile(o.out, '--out');
    checkNotSource(o.out, o.model);
    checkReplaceableFile(o.out, hasGGUFMagic, 'a GGUF file');
    const { model, tokenizer } = loadModel(o.model);
    dequantize(model); // GGUF's own block types replace attn's int8 rows
    const { metadata, tensors, notes } = model instanceof Llama ? llamaToGGUF(model, tokenizer, type) : gpt2ToGGUF(model, tokenizer, type);
    writeGGUF(o.out, metadata, tensors);
    return notes;
  }
  if (o.to !== 'hf') throw new UserError(`--to ${o.to}: "hf" (Hugging Face GPT-2 layout) or "gguf" (llama.cpp)`);
  if (o.type !== undefined) throw new UserError('--type applies to --to gguf only');
  checkOutDir(o.out, 'language-model');
  checkNotSource(o.out, o.model);
  const { model, tokenizer } = loadGPT(o.model, 'attn export --to hf (use --to gguf)');
  dequantize(model); // GPT-2's format holds fp32 matrices: an int8 model exports its dequantized weights
  const { files, notes } = hfFiles(model, tokenizer);
  writeDirAtomic(o.out, files);
  return notes;
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write a model as a Hugging Face GPT-2 directory (the layout GPT2LMHeadModel.from_pretrained expects) or a GGUF file for llama.cpp (GPTs as "gpt2"; Llama, Qwen2 and Mistral models, attn-llama or Hugging Face, as "llama"/"qwen2" with their tokenizer and chat template)')
    .requiredOption('--model <dir>', 'model directory to export')
    .addOption(new Option('--to <format>', 'target layout').choices(['hf', 'gguf']).default('hf'))
    .addOption(new Option('--type <type>', 'GGUF tensor type for the weight matrices (--to gguf)').choices([...GGUF_TYPES]))
    .requiredOption('--out <path>', 'directory to write (hf) or file (gguf)')
    .action((o: { model: string; to: string; out: string; type?: string }) => {
      for (const n of runExport(o)) process.stderr.write(`note: ${n}\n`);
      process.stdout.write(`wrote ${o.out}\n`);
    });
}
