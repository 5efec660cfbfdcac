import assert from "node:assert/strict";
import { permissionHint } from "./_permission_hint.ts";

const ctx = { name: "netCtx", cfgSection: "app_net" };

Deno.test('permissionHint() says permissions = "all" for /proc and /sys, never --allow-read', () => {
  for (
    const message of [
      'Requires read access to "/proc/self/status", run again with the --allow-read flag',
      'Requires all access to "/proc/1/task/1/status", run again with the --allow-all flag',
      'Requires all access to "/sys/devices/virtual/net/lo/mtu", run again with the --allow-all flag',
      'Requires all access to "/dev/kmsg", run again with the --allow-all flag',
    ]
  ) {
    const info = permissionHint({ name: "NotCapable", message }, ctx);
    assert.doesNotMatch(info.message, /run again|--allow-read flag/);
    assert.match(info.message, /^Requires (read|all) access to "\//);
    assert.match(
      info.message,
      /permissions = "all" of the context netCtx \(in its TOML section \[app_net\]/,
    );
    assert.match(info.message, /context netCtx/);
  }
});

Deno.test("permissionHint() names the context's permission list for other paths and kinds", () => {
  const read = permissionHint({
    name: "NotCapable",
    message:
      'Requires read access to "/etc/hostname", run again with the --allow-read flag',
    code: "X",
  }, ctx);
  assert.equal(read.code, "X");
  assert.match(read.message, /^Requires read access to "\/etc\/hostname": /);
  assert.match(
    read.message,
    /add it to permissions\.read of the context netCtx \(in its TOML section \[app_net\]/,
  );
  assert.doesNotMatch(read.message, /run again/);
  const env = permissionHint({
    name: "NotCapable",
    message:
      'Requires env access to "HOME", run again with the --allow-env flag',
  }, { name: "c" });
  assert.match(
    env.message,
    /^Requires env access to "HOME": .*permissions\.env of the context c \(in new PrivContext\(\)\)/,
  );
});

Deno.test("permissionHint() leaves other errors alone", () => {
  for (
    const info of [
      { name: "NotFound", message: "No such file or directory (os error 2)" },
      { name: "NotCapable", message: "something else" },
      {
        name: "Error",
        message:
          'Requires read access to "/x", run again with the --allow-read flag',
      },
    ]
  ) {
    assert.equal(permissionHint(info, ctx), info);
  }
});
