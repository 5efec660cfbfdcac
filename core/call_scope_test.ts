import assert from "node:assert/strict";
import {
  callWith,
  currentCallOptions,
  outsideCallScope,
} from "./call_scope.ts";

Deno.test("outsideCallScope() leaves the caller's options out, after awaits too", async () => {
  const options = { timeout: 5 };
  await callWith(options, async () => {
    assert.equal(currentCallOptions(), options);
    await outsideCallScope(async () => {
      assert.equal(currentCallOptions(), undefined);
      await null;
      // Deno's AsyncLocalStorage#exit() would bring the scope back here.
      assert.equal(currentCallOptions(), undefined);
      await new Promise((r) => setTimeout(r, 1));
      assert.equal(currentCallOptions(), undefined);
    });
    assert.equal(currentCallOptions(), options);
  });
});
