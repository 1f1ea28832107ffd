import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { runReferenceCheck, TOLERANCE, type ReferenceReport } from '../reference/check.js';
import { runLoRAReferenceCheck } from '../reference/lora_check.js';
import { UserError } from '../util/errors.js';
import { useBackendAsync, withBackendFlags } from './backend_flags.js';

export function referenceCommand(): Command {
  return withBackendFlags(new Command('reference'), { webgpu: true })
    .description('check logits, loss, gradients, one AdamW step and greedy ids against PyTorch\'s numbers in DIR/expected.safetensors')
    .argument('<dir>', 'Hugging Face GPT-2, Llama or Qwen2 directory with expected.safetensors')
    .option('--lora <dir>', 'also check a PEFT LoRA adapter for DIR with its expected.safetensors: logits with the adapter, DPO log-probabilities, loss and adapter gradients, merged weights')
    .action(async (dir: string, opts: { backend?: string; threads?: number; lora?: string }) => {
      if (opts.lora !== undefined && !existsSync(join(opts.lora, 'expected.safetensors'))) {
        throw new UserError(`--lora ${opts.lora}: ${existsSync(opts.lora) && statSync(opts.lora).isDirectory() ? 'has no expected.safetensors' : 'is not a directory'} (give the adapter directory the reference numbers were made with)`);
      }
      console.log(`backend: ${(await useBackendAsync(opts)).description}`);
      const reports: ReferenceReport[] = [await runReferenceCheck(dir)];
      if (opts.lora) reports.push(runLoRAReferenceCheck(dir, opts.lora));
      const close = `≤ ${TOLERANCE.gradAbs} abs or ${TOLERANCE.gradRel} rel`;
      const limits: Record<string, string> = {
        logits: `≤ ${TOLERANCE.logits} abs`,
        loss: `≤ ${TOLERANCE.loss} abs`,
        gradients: close,
        adamw: close,
        greedy: 'all ids equal',
        'lora-logits': `≤ ${TOLERANCE.logits} abs`,
        'dpo-logps': `≤ ${TOLERANCE.loss} abs`,
        'dpo-loss': `≤ ${TOLERANCE.loss} abs`,
        'lora-grads': close,
        merged: close,
      };
      for (const g of reports.flatMap((r) => r.groups)) {
        const worst = g.group === 'greedy' ? g.worstAt : `worst ${g.worstAbs.toExponential(2)} (${g.worstAt})`;
        console.log(`${g.pass ? 'ok  ' : 'FAIL'} ${g.group.padEnd(11)} ${worst}  [${limits[g.group] ?? ''}]`);
      }
      const pass = reports.every((r) => r.pass);
      const what = opts.lora ? `${dir} + ${opts.lora}` : dir;
      console.log(pass ? `reference check passed: ${what}` : `reference check FAILED: ${what}`);
      if (!pass) process.exitCode = 1;
    });
}
