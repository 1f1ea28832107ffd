// How long an `attn` command takes to start, against another build in the same run:
//   node bench/cli_startup.mjs [RUNS=9] [OTHER_ROOT] -- [ARGS…]   (ARGS default: --help)
// Runs `node dist/src/cli/main.js ARGS` of this checkout and, if given, of OTHER_ROOT (another
// checkout, built), alternating, RUNS times each; prints each one's median wall time. Commands
// that exit with an error are fine to time (that is most of what the CLI tests spawn).
// `npm run build` first.
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const [runs = '9', other] = dash < 0 ? argv : argv.slice(0, dash);
const args = dash < 0 || dash === argv.length - 1 ? ['--help'] : argv.slice(dash + 1);
const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const roots = other ? [here, resolve(other)] : [here];
const times = roots.map(() => []);
for (let i = 0; i < Number(runs); i++) {
  roots.forEach((root, r) => {
    const t = performance.now();
    spawnSync(process.execPath, [join(root, 'dist/src/cli/main.js'), ...args], { stdio: 'ignore' });
    times[r].push(performance.now() - t);
  });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
roots.forEach((root, r) => console.log(`${median(times[r]).toFixed(0)} ms  ${root}  attn ${args.join(' ')}`));
if (other) console.log(`ratio ${(median(times[1]) / median(times[0])).toFixed(2)}× (other / this)`);
