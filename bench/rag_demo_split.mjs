// Scores an `attn rag demo --out DIR` run by kind of question (docs/rag.md): named (the question holds the
// town's name, from its document's `# heading`) and described (it names the town by two facts), on the test
// and the development questions. BM25 and dense only (hybrid's setting is the demo's to choose).
// Usage: node bench/rag_demo_split.mjs DIR   (after `npx tsc`; run from the repository root)
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node bench/rag_demo_split.mjs DEMO_OUT_DIR');
  process.exit(2);
}
const name = (file) => readFileSync(file, 'utf8').trimStart().split('\n', 1)[0].replace(/^#\s*/, '').trim();
for (const set of ['queries', 'dev_queries']) {
  const lines = readFileSync(join(dir, `${set}.jsonl`), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const kinds = { named: [], described: [] };
  for (const q of lines) kinds[q.query.toLowerCase().includes(name(q.relevant[0]).toLowerCase()) ? 'named' : 'described'].push(q);
  for (const [kind, qs] of Object.entries(kinds)) {
    const file = join(dir, `${set}.${kind}.jsonl`);
    writeFileSync(file, qs.map((q) => JSON.stringify(q) + '\n').join(''));
    const out = execFileSync('node', ['dist/src/cli/main.js', 'rag', 'eval', '--store', join(dir, 'store'), '--queries', file, '--json', '--modes', 'bm25,dense'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const l of out.split('\n').filter(Boolean)) {
      const s = JSON.parse(l);
      console.log(`${set === 'queries' ? 'test' : 'dev'} ${kind} (${s.queries}) ${s.mode}: recall@10 ${s['recall@10']} nDCG@10 ${s['ndcg@10']}`);
    }
  }
}
