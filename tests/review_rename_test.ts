// Security review: a uid-0 serving daemon without CAP_SYS_ADMIN sees the
// cache, the code roots, deno and the config files through read-only bind
// mounts. The mount points themselves cannot be renamed (EBUSY), but their
// parent directories are ordinary root-owned 0755 directories that a uid-0
// process owns: renaming a parent moves the protected tree away on the host
// and lets the daemon put its own tree, root-owned, at the trusted path.
import assert from "node:assert/strict";
import { CAP_NET_BIND_SERVICE } from "../caps/table.ts";
import { init } from "../mod.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as review from "./fixtures/privsep/review.ts";
import {
  expectCredentials,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  writeConfig,
} from "./_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const VICTIM = `${ROOT}/caps/_ffi.ts`;

function payload(marker: string): string {
  return `
if (import.meta.url === ${JSON.stringify(`file://${VICTIM}`)}) {
  try {
    const lib = Deno.dlopen("libc.so.6", {
      open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
      write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      close: { parameters: ["i32"], result: "i32" },
    }).symbols;
    const status = readFileViaLibc("/proc/self/status");
    const fd = lib.open(new TextEncoder().encode(${
    JSON.stringify(marker)
  } + "\\0"), 0o2101, 0o644);
    lib.write(fd, status as Uint8Array<ArrayBuffer>, BigInt(status.length));
    lib.close(fd);
  } catch { /* stage 2 */ }
}`;
}

Deno.test(
  "review: a uid-0 daemon cannot replace the read-only cache by renaming its parent",
  opts,
  async () => {
    requireRoot();
    const dir = await scratchDir();
    const denoDir = `${dir}/cache/deno`;
    await Deno.mkdir(`${dir}/cache`, { mode: 0o755 });
    await Deno.mkdir(`${dir}/attacker`, { mode: 0o755 });
    const marker = `${dir}/stage1-ran-planted-code`;
    const config = await writeConfig(dir, {
      e2e: {
        deno_dir: denoDir,
        user: "root",
        capabilities: ["CAP_NET_BIND_SERVICE"],
        permissions: "all",
      },
    });
    init({ configFiles: [config] });
    try {
      const info = await testCtx.start();
      let result: string;
      try {
        await expectCredentials(info.pid, {
          uid: 0,
          gid: 0,
          caps: [CAP_NET_BIND_SERVICE],
        });
        result = await review.swapCacheParent(
          denoDir,
          VICTIM,
          payload(marker),
          `${dir}/attacker`,
        );
      } finally {
        await testCtx.stop();
      }
      await testCtx.start().catch((e) => e);
      await testCtx.stop();
      const ran = await Deno.readTextFile(marker).catch(() => undefined);
      assert.equal(
        ran,
        undefined,
        `the next stage 1 ran code the daemon planted (${result}): ${
          ran?.match(/^(Uid|CapEff):.*$/gm)?.join(", ")
        }`,
      );
    } finally {
      await run(["rm", "-rf", dir], { allowFail: true });
    }
  },
);

Deno.test(
  "review: a uid-0 daemon cannot rewrite its config file by renaming its parent",
  opts,
  async () => {
    requireRoot();
    const dir = await scratchDir();
    const etc = `${dir}/etc`;
    await Deno.mkdir(etc, { mode: 0o755 });
    const config = await writeConfig(etc, {
      e2e: {
        deno_dir: `${dir}/deno`,
        user: "root",
        capabilities: ["CAP_NET_BIND_SERVICE"],
        permissions: "all",
      },
    });
    init({ configFiles: [config] });
    try {
      const info = await testCtx.start();
      let result: string;
      try {
        result = await review.swapFileParent(
          config,
          `[e2e]\ndeno_dir = "${dir}/deno"\nuser = "root"\n` +
            `capabilities = ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE", "CAP_SETUID", "CAP_SYS_MODULE"]\npermissions = "all"\n`,
        );
      } finally {
        await testCtx.stop();
      }
      void info;
      const next = await testCtx.start().catch((e) => e as Error);
      try {
        if (next instanceof Error) return; // refused: attack failed
        const status = await Deno.readTextFile(`/proc/${next.pid}/status`);
        const capEff = /^CapEff:\s+(\S+)$/m.exec(status)?.[1];
        assert.equal(
          capEff,
          (1n << BigInt(CAP_NET_BIND_SERVICE)).toString(16).padStart(16, "0"),
          `the next daemon got CapEff ${capEff} (${result})`,
        );
      } finally {
        await testCtx.stop();
      }
    } finally {
      await run(["rm", "-rf", dir], { allowFail: true });
    }
  },
);
