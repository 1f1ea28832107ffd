import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';

/**
 * Layers point down: a folder of src/ may import from its own folder and
 * from the folders below it, never from one above. The order, bottom to top
 * (DESIGN.md): util < backend < tensor < nn < optim < tokenizers < chat < data <
 * models < io < generate < eval < train < rag < reference < plan < serve < bench < cli.
 */
const ORDER = ['util', 'backend', 'tensor', 'nn', 'optim', 'tokenizers', 'chat', 'data', 'models', 'io', 'generate', 'eval', 'train', 'rag', 'reference', 'plan', 'serve', 'bench', 'cli'];

/** Known upward edges, each to be removed by the work that fixes it (`from → to`). None today. */
const ALLOWED = new Set<string>();

const SRC = resolve('src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Relative module specifiers of every import and export-from (static and dynamic). */
function relativeImports(text: string): string[] {
  const out: string[] = [];
  const re = /(?:import|export)\s[^'";]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\s*\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|import\s+['"](\.{1,2}\/[^'"]+)['"]/g;
  for (const m of text.matchAll(re)) out.push((m[1] ?? m[2] ?? m[3])!);
  return out;
}

/** The top folder under src/ ("" for files directly in src/, such as index.ts). */
const layerOf = (path: string): string => {
  const rel = relative(SRC, path).split(sep);
  return rel.length > 1 ? rel[0]! : '';
};

describe('layers point down', () => {
  it('every folder of src/ is in the order', () => {
    const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    for (const f of folders) assert.ok(ORDER.includes(f), `src/${f} is not in the layer order: add it to ORDER (and DESIGN.md)`);
  });

  it('no folder imports from a folder above it', () => {
    const bad: string[] = [];
    const seenAllowed = new Set<string>();
    for (const file of sourceFiles(SRC)) {
      const from = layerOf(file);
      if (from === '') continue; // src/index.ts is the package's entry: it may re-export every layer
      for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
        const target = resolve(dirname(file), spec);
        if (!target.startsWith(SRC + sep)) continue;
        const to = layerOf(target);
        if (to === from || to === '') continue;
        if (ORDER.indexOf(to) < ORDER.indexOf(from)) continue;
        const edge = `${relative(SRC, file).split(sep).join('/')} → ${to}`;
        if (ALLOWED.has(edge)) seenAllowed.add(edge);
        else bad.push(`${edge} (${spec})`);
      }
    }
    assert.deepEqual(bad, [], `imports from a higher layer:\n${bad.join('\n')}`);
    for (const edge of ALLOWED) assert.ok(seenAllowed.has(edge), `the allowed edge "${edge}" is gone: delete it from ALLOWED`);
  });

  it('the import parser sees each form', () => {
    const text = "import a from '../a.js';\nimport type { B } from './b.js';\nexport * from '../c/d.js';\nconst e = await import('../e.js');\nimport '../f.js';\nimport x, {\n  y,\n} from '../g.js';";
    assert.deepEqual(relativeImports(text), ['../a.js', './b.js', '../c/d.js', '../e.js', '../f.js', '../g.js']);
  });
});
