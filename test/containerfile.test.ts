import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

// The image itself is not built here (no network); what can drift is checked.
describe('Containerfile', () => {
  const containerfile = readFileSync('Containerfile', 'utf8');

  it('is the one docs/deploy.md shows', () => {
    const shown = /```Dockerfile\n([\s\S]*?)```/.exec(readFileSync('docs/deploy.md', 'utf8'));
    assert.ok(shown, 'docs/deploy.md shows a Dockerfile block');
    assert.equal(shown[1], containerfile);
  });

  it('keeps local outputs out of `COPY . .`, and copies and runs paths the build makes', () => {
    const ignored = readFileSync('.dockerignore', 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['node_modules', 'build', 'dist', '.git']) assert.ok(ignored.includes(p), `.dockerignore lists ${p}`);
    const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const s of containerfile.matchAll(/npm run ([\w:-]+)/g)) assert.ok(scripts[s[1]!], `package.json has the script ${s[1]}`);
    assert.match(readFileSync('binding.gyp', 'utf8'), /"target_name": "attn_native"/, 'node-gyp writes build/Release/attn_native.node, which the native backend loads');
    assert.match(containerfile, /ENTRYPOINT \["node", "dist\/src\/cli\/main\.js", "serve"/);
    assert.ok(existsSync('dist/src/cli/main.js'));
  });
});
