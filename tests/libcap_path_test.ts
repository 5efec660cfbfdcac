// libcap is loaded as root by the daemon's first stage. A relative path with
// a slash ("x86_64-linux-gnu/libcap.so.2", a natural multiarch slip) would be
// resolved against the working directory the caller left it in, and an empty
// LD_LIBRARY_PATH entry searches that directory too: the caller's directory
// must never supply code that runs as root. The planted file is not a valid
// library, so dlopen fails with "invalid ELF header" exactly when it opened
// it; no compiler is needed.
import assert from "node:assert/strict";
import { DENO, requireRoot, ROOT, run, scratchDir } from "./_helpers.ts";

const RELATIVE = `${Deno.build.arch}-linux-gnu/libcap.so.2`;

/** Plants a file that is not a library at `path` below `cwd`. */
async function plant(cwd: string, path: string): Promise<void> {
  const file = `${cwd}/${path}`;
  await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(file, "not a library\n".repeat(300));
}

/** Starts fdCtx as root from `cwd` with `toml` as its config section. */
async function startFrom(
  dir: string,
  cwd: string,
  toml: string,
  env: Record<string, string> = {},
): Promise<{ uid?: number; error?: string }> {
  const config = `${dir}/privsep-${crypto.randomUUID()}.toml`;
  await Deno.writeTextFile(config, `[fds]\n${toml}\n`);
  const out = await run([
    DENO,
    "run",
    "-A",
    `--config=${ROOT}/deno.json`,
    `${ROOT}/tests/fixtures/libcap_caller.ts`,
    config,
  ], { cwd, env });
  return JSON.parse(out.stdout.trim().split("\n").at(-1)!);
}

Deno.test(
  "libcap is never loaded from the caller's working directory",
  async (t) => {
    requireRoot();
    const dir = await scratchDir();
    const cwd = `${dir}/cwd`;
    await Deno.mkdir(cwd);
    try {
      await plant(cwd, RELATIVE);
      await plant(cwd, "libcap.so.2");

      await t.step(
        "a relative libcap path in the config is refused before any load",
        async () => {
          const result = await startFrom(
            dir,
            cwd,
            `user = "root"\ncapabilities = []\nlibcap = "${RELATIVE}"`,
          );
          assert.ok(result.error, `started: ${JSON.stringify(result)}`);
          assert.doesNotMatch(result.error, /invalid ELF header/);
          assert.match(result.error, /ConfigError/);
          assert.ok(result.error.includes(RELATIVE), result.error);
          assert.match(result.error, /libcap = "libcap\.so\.2"/);
        },
      );

      await t.step(
        "stage 1's drop refuses it too, without the config parser",
        async () => {
          const code = `
            import { dropPrivileges } from "${ROOT}/caps/_drop.ts";
            let error = "";
            try {
              dropPrivileges({ keep: [], uid: 65534, gid: 65534, libcap: ${
            JSON.stringify(RELATIVE)
          } });
            } catch (e) {
              error = e.name + ": " + e.message;
            }
            const status = Deno.readTextFileSync("/proc/self/status");
            console.log(JSON.stringify({ error, uid: /^Uid:\\t(\\d+)/m.exec(status)[1] }));
          `;
          const out = await run([DENO, "eval", "--no-config", code], { cwd });
          const result = JSON.parse(out.stdout) as {
            error: string;
            uid: string;
          };
          assert.doesNotMatch(result.error, /invalid ELF header/);
          assert.match(result.error, /^TypeError: /);
          assert.ok(result.error.includes(RELATIVE), result.error);
          // Refused before anything changed.
          assert.equal(result.uid, "0");
        },
      );

      await t.step(
        "stage 1 moves to / before it loads libcap by name",
        async () => {
          // An empty LD_LIBRARY_PATH entry means the working directory; in
          // a direct start the root caller's environment reaches stage 1.
          const result = await startFrom(
            dir,
            cwd,
            `user = "root"\ncapabilities = []`,
            { LD_LIBRARY_PATH: ":" },
          );
          assert.deepEqual(result, { uid: 0 });
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
