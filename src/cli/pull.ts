import { Command } from 'commander';
import { pullModel } from '../io/hf_pull.js';
import { checkOutDir } from './out_dir.js';

export function pullCommand(): Command {
  return new Command('pull')
    .description('download a GPT-2 or Llama-family model (Llama, Qwen2, Mistral; safetensors, sharded or not) from the Hugging Face hub (needs a network; everything else in attn works offline)')
    .argument('<name>', 'repository, e.g. openai-community/gpt2, HuggingFaceTB/SmolLM2-135M-Instruct or Qwen/Qwen2.5-0.5B-Instruct')
    .requiredOption('--out <dir>', 'directory to write')
    .option('--revision <rev>', 'branch, tag or commit', 'main')
    .option('--endpoint <url>', 'hub address (default: $HF_ENDPOINT or https://huggingface.co)')
    .action(async (name: string, o: { out: string; revision: string; endpoint?: string }) => {
      checkOutDir(o.out, 'language-model');
      let last = 0;
      let drawn = false;
      let files: string[];
      try {
        files = await pullModel({
          name, out: o.out, revision: o.revision, ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
          onProgress: (file, bytes, total) => {
            const now = Date.now();
            if (now - last < 500 && bytes !== total) return;
            last = now;
            drawn = true;
            process.stderr.write(`\r${file}: ${(bytes / 1e6).toFixed(1)}${total ? ` / ${(total / 1e6).toFixed(1)}` : ''} MB   `);
          },
        });
      } finally {
        // End the progress line, so that an error is a line of its own.
        if (drawn) process.stderr.write('\n');
      }
      if (!files.some((f) => f === 'tokenizer.json' || f === 'vocab.json')) process.stderr.write(`note: ${name} has no tokenizer.json: attn can run the model on token ids, but not on text\n`);
      process.stdout.write(`wrote ${o.out}: ${files.join(', ')}\n`);
    });
}
