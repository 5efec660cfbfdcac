import assert from "node:assert/strict";
import { callerUmask } from "./preflight.ts";

Deno.test("callerUmask() gives the serving stage the caller's umask, never less than 022", () => {
  // As the launcher passes it (the shell's `umask` prints 4 digits).
  assert.equal(callerUmask(0o022, "0077"), 0o077);
  assert.equal(callerUmask(0o022, "0027"), 0o027);
  assert.equal(callerUmask(0o022, "0000"), 0o022);
  // No launcher (a direct start): the umask the process started with.
  assert.equal(callerUmask(0o007, ""), 0o027);
  // Anything else in the variable is ignored; set-id bits never pass.
  assert.equal(callerUmask(0o022, "077; rm -rf /"), 0o022);
  assert.equal(callerUmask(0o022, "7777"), 0o777);
  assert.equal(callerUmask(0o022, "-1"), 0o022);
});
