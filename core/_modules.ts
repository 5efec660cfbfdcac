// Which files below a context's prefix are its modules: the daemon loads
// every one of them at start, and the operator CLI does the same to list
// entrypoints. One definition, so the two always agree.
import { join } from "node:path";

const MODULE_FILE = /\.(ts|mts|js|mjs|tsx|jsx)$/;
const SKIP_FILE = /(_test|\.test|\.bench|_bench)\.\w+$|\.d\.ts$/;

/**
 * The module files below `dir`, sorted, without tests, benchmarks,
 * declaration files, hidden entries and `node_modules`.
 */
export function moduleFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    const entries = [...Deno.readDirSync(d)].sort((a, b) =>
      a.name < b.name ? -1 : 1
    );
    for (const e of entries) {
      if (e.name.startsWith(".") || e.name === "node_modules") continue;
      const p = join(d, e.name);
      if (e.isDirectory) walk(p);
      else if (
        e.isFile && MODULE_FILE.test(e.name) && !SKIP_FILE.test(e.name)
      ) {
        out.push(p);
      }
    }
  };
  walk(dir);
  return out;
}
