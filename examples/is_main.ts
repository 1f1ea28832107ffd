/** The little of Node's `process` this check uses (the examples also load in a browser page, which has none). */
interface NodeProcess {
  argv?: string[];
  /** Node ≥ 20.16 / 22.3 only. */
  getBuiltinModule?(id: string): unknown;
}

/**
 * The path a file: URL names ("file:///a/b%20c.js" → "/a/b c.js"; on
 * Windows "file:///C:/x.js" → "C:\x.js"), without node:url, which a
 * browser page does not have.
 */
export function fileUrlPath(url: string): string {
  const path = decodeURIComponent(new URL(url).pathname);
  return /^\/[A-Za-z]:\//.test(path) ? path.slice(1).replace(/\//g, '\\') : path;
}

/**
 * True when the module at `url` is the program node was asked to run, so an
 * example runs its demo from the command line but only exports when a test
 * (or a playground page) imports it. Node's modules are looked up at run time
 * rather than imported, so a browser bundle loads this file too. Where Node
 * is older than 20.16 (no getBuiltinModule) the paths are compared as written:
 * the same unless the script was started through a symbolic link.
 */
export function isMain(url: string, proc: NodeProcess | undefined = (globalThis as unknown as { process?: NodeProcess }).process): boolean {
  const script = proc?.argv?.[1];
  if (!script || !url.startsWith('file:')) return false;
  const path = fileUrlPath(url);
  if (!proc?.getBuiltinModule) return script === path;
  const { realpathSync } = proc.getBuiltinModule('node:fs') as { realpathSync(p: string): string };
  try {
    return realpathSync(script) === realpathSync(path);
  } catch {
    return false;
  }
}
