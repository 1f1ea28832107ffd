/** The little of Node's `process` this check uses (the examples also load in a browser page, which has none). */
interface NodeProcess {
  argv?: string[];
  getBuiltinModule?(id: string): unknown;
}

/**
 * True when the module at `url` is the program node was asked to run, so an
 * example runs its demo from the command line but only exports when a test
 * (or a playground page) imports it. Node's modules are looked up at run time
 * rather than imported, so a browser bundle loads this file too.
 */
export function isMain(url: string): boolean {
  const proc = (globalThis as unknown as { process?: NodeProcess }).process;
  const script = proc?.argv?.[1];
  if (!script || !proc?.getBuiltinModule) return false;
  const { realpathSync } = proc.getBuiltinModule('node:fs') as { realpathSync(p: string): string };
  const { fileURLToPath } = proc.getBuiltinModule('node:url') as { fileURLToPath(u: string): string };
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(url));
  } catch {
    return false;
  }
}
