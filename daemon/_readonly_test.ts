// onlyWritable() on a kernel without mount_setattr (before Linux 5.12),
// played by a seccomp filter that answers ENOSYS to it: nothing changes and
// it says why. Runs in a child process (the filter and the mount namespace
// stay there). Needs root.
import assert from "node:assert/strict";

const CHILD = `
import { onlyWritable, protectTrustedPaths } from "${
  new URL("./_readonly.ts", import.meta.url).href
}";
const libc = Deno.dlopen("libc.so.6", {
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
}).symbols;
// ld nr; jeq 442 (mount_setattr) -> ret ERRNO(ENOSYS); ret ALLOW
const prog = new Uint8Array(32);
const v = new DataView(prog.buffer);
[[0x20, 0, 0, 0], [0x15, 0, 1, 442], [0x06, 0, 0, 0x00050000 | 38],
  [0x06, 0, 0, 0x7fff0000]].forEach(([c, t, f, k], i) => {
  v.setUint16(i * 8, c, true); v.setUint8(i * 8 + 2, t);
  v.setUint8(i * 8 + 3, f); v.setUint32(i * 8 + 4, k >>> 0, true);
});
const fprog = new BigUint64Array([4n,
  BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(prog)))]);
protectTrustedPaths([]);
if (libc.prctl(38, 1n, 0n, 0n, 0n) < 0) throw new Error("no_new_privs");
if (libc.prctl(22, 2n,
  BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(fprog))), 0n, 0n) < 0
) throw new Error("seccomp");
const dir = Deno.args[0];
const result = onlyWritable([dir + "/w"], []);
// Nothing was made read-only: outside the write path is writable still.
Deno.writeTextFileSync(dir + "/outside", "x");
console.log(JSON.stringify(result));
`;

Deno.test("onlyWritable() on a kernel without mount_setattr changes nothing and says why", async () => {
  assert.equal(Deno.uid(), 0, "this test needs root: run it as root");
  const dir = await Deno.makeTempDir({ dir: "/var/tmp" });
  try {
    await Deno.mkdir(`${dir}/w`);
    const script = `${dir}/child.ts`;
    await Deno.writeTextFile(script, CHILD);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-lock", script, dir],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const result = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(result.writable, []);
    assert.match(result.unsupported, /^mount_setattr\(2\) is missing/);
    assert.equal(await Deno.readTextFile(`${dir}/outside`), "x");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
