import { Command } from 'commander';
import { runReferenceCheck, TOLERANCE } from '../reference/check.js';
import { useBackend, withBackendFlags } from './backend_flags.js';

export function referenceCommand(): Command {
  return withBackendFlags(new Command('reference'))
    .description('check logits, loss, gradients, one AdamW step and greedy ids against PyTorch\'s numbers in DIR/expected.safetensors')
    .argument('<dir>', 'Hugging Face GPT-2, Llama or Qwen2 directory with expected.safetensors')
    .action((dir: string, opts: { backend?: string; threads?: number }) => {
      console.log(`backend: ${useBackend(opts).description}`);
      const report = runReferenceCheck(dir);
      const limits: Record<string, string> = {
        logits: `≤ ${TOLERANCE.logits} abs`,
        loss: `≤ ${TOLERANCE.loss} abs`,
        gradients: `≤ ${TOLERANCE.gradAbs} abs or ${TOLERANCE.gradRel} rel`,
        adamw: `≤ ${TOLERANCE.gradAbs} abs or ${TOLERANCE.gradRel} rel`,
        greedy: 'all ids equal',
      };
      for (const g of report.groups) {
        const worst = g.group === 'greedy' ? g.worstAt : `worst ${g.worstAbs.toExponential(2)} (${g.worstAt})`;
        console.log(`${g.pass ? 'ok  ' : 'FAIL'} ${g.group.padEnd(9)} ${worst}  [${limits[g.group] ?? ''}]`);
      }
      console.log(report.pass ? `reference check passed: ${dir}` : `reference check FAILED: ${dir}`);
      if (!report.pass) process.exitCode = 1;
    });
}
