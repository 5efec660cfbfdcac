import assert from "node:assert/strict";
import { openLibcap } from "./_ffi.ts";

Deno.test("openLibcap() with a missing library name says which package to install", () => {
  assert.throws(
    () => openLibcap("libcap-missing.so.9"),
    (e: unknown) => {
      assert.ok(e instanceof Error && !(e instanceof TypeError), String(e));
      assert.match(
        e.message,
        /^cannot load libcap \("libcap-missing\.so\.9"\)/,
      );
      assert.match(e.message, /apt-get install libcap2/);
      return true;
    },
  );
});

Deno.test("openLibcap() with an absolute path where no library is says to check the libcap setting, not to install", () => {
  assert.throws(
    () => openLibcap("/nonexistent/privsep/libcap.so.2"),
    (e: unknown) => {
      assert.ok(e instanceof Error, String(e));
      assert.match(
        e.message,
        /^cannot load libcap \("\/nonexistent\/privsep\/libcap\.so\.2"\)/,
      );
      assert.match(e.message, /Check the context's `libcap` setting/);
      assert.doesNotMatch(e.message, /apt-get/);
      return true;
    },
  );
});

Deno.test("openLibcap() refuses a relative path with a slash with a TypeError", () => {
  assert.throws(() => openLibcap("lib/libcap.so.2"), TypeError);
});
