import assert from "node:assert/strict";
import { ancestry, parseStatParent, readParent } from "./_verify.ts";

Deno.test("parseStatParent reads past a command name with spaces and parentheses", () => {
  assert.equal(parseStatParent("42 (a) b (c) S 7 42 42 0 -1"), 7);
  assert.equal(parseStatParent("1 (systemd) S 0 1 1 0 -1"), 0);
});

Deno.test("ancestry walks parents up to the ancestor, and only to it", async () => {
  const parents = new Map([[30, 20], [20, 10], [10, 1], [99, 1]]);
  const parentOf = (pid: number) => {
    const p = parents.get(pid);
    return p === undefined
      ? Promise.reject(new Error("gone"))
      : Promise.resolve(p);
  };
  assert.deepEqual(await ancestry(30, 10, parentOf), [30, 20, 10]);
  assert.deepEqual(await ancestry(10, 10, parentOf), [10]);
  assert.equal(await ancestry(99, 10, parentOf), undefined);
  assert.equal(await ancestry(31, 10, parentOf), undefined);
});

Deno.test("ancestry of a real child process", async () => {
  const child = new Deno.Command("sh", {
    args: ["-c", "sleep 5 & wait"],
    stdout: "null",
  }).spawn();
  try {
    let grandchild: number | undefined;
    for (let i = 0; i < 100 && grandchild === undefined; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const children = await Deno.readTextFile(
        `/proc/${child.pid}/task/${child.pid}/children`,
      ).catch(() => "");
      grandchild = Number(children.trim().split(" ")[0]) || undefined;
    }
    assert.ok(grandchild, "sh started no child");
    assert.equal(await readParent(grandchild), child.pid);
    assert.deepEqual(await ancestry(grandchild, Deno.pid), [
      grandchild,
      child.pid,
      Deno.pid,
    ]);
    assert.equal(await ancestry(Deno.pid, child.pid), undefined);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});
