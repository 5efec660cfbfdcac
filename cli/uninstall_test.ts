import assert from "node:assert/strict";
import { withoutRules } from "./uninstall.ts";

const FILE = [
  "# Written by privsep install for app. Each rule lets it run one",
  "# context's launcher as root with no arguments; the launcher starts the",
  "# daemon. Run privsep install again rather than editing this file.",
  "# privsep context file:///opt/app/privsep/mod.ts#a",
  'app ALL=(root) CWD=/ NOPASSWD: sha256:00 /usr/local/libexec/privsep/a-0 ""',
  "# privsep context file:///opt/app/privsep/mod.ts#b",
  'app ALL=(root) CWD=/ NOPASSWD: sha256:11 /usr/local/libexec/privsep/b-1 ""',
].join("\n");

Deno.test("withoutRules() removes the named contexts' rules and keeps the others", () => {
  const r = withoutRules(FILE, new Set(["file:///opt/app/privsep/mod.ts#a"]));
  assert.equal(r.removed, 1);
  assert.equal(r.left, 1);
  assert.doesNotMatch(r.text, /a-0|#a$/m);
  assert.match(
    r.text,
    /^# privsep context file:\/\/\/opt\/app\/privsep\/mod\.ts#b\napp .*\/b-1 ""$/m,
  );
});

Deno.test("withoutRules() counts what is left when every rule goes, and ignores other ids", () => {
  const all = withoutRules(
    FILE,
    new Set([
      "file:///opt/app/privsep/mod.ts#a",
      "file:///opt/app/privsep/mod.ts#b",
    ]),
  );
  assert.deepEqual([all.removed, all.left], [2, 0]);
  const none = withoutRules(FILE, new Set(["file:///opt/other/mod.ts#a"]));
  assert.deepEqual([none.removed, none.left, none.text], [0, 2, FILE]);
});

Deno.test("withoutRules() returns the launcher each removed rule names", () => {
  const r = withoutRules(FILE, new Set(["file:///opt/app/privsep/mod.ts#b"]));
  assert.deepEqual(
    [...r.launchers],
    [["file:///opt/app/privsep/mod.ts#b", "/usr/local/libexec/privsep/b-1"]],
  );
});
