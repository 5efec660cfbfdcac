// Copyright the privsep authors. Apache-2.0 license.

import assert from "node:assert/strict";
import { SETTING_DEFAULTS } from "./config.ts";
import { globals, init, resolveSettings } from "./settings.ts";

const bare = {
  options: {
    module: "file:///virtual/settings/mod.ts",
    name: "bare",
    capabilities: [],
  },
};

Deno.test("resolveSettings() takes SETTING_DEFAULTS for what neither options nor a section set", () => {
  const s = resolveSettings(bare, []);
  for (const [field, value] of Object.entries(SETTING_DEFAULTS)) {
    assert.deepEqual(
      field === "loggerName"
        ? s.loggerName.join(".")
        : s[field as keyof typeof s],
      value,
      field,
    );
  }
  assert.deepEqual(s.permissions, {});
  assert.deepEqual(s.syscallFilter, []);
  assert.equal(s.timeoutMs, undefined);
  assert.equal(s.denoDir, undefined);
});

Deno.test("resolveSettings() lets a section override the options, and the options the defaults", async () => {
  const file = await Deno.makeTempFile({ suffix: ".toml" });
  try {
    await Deno.writeTextFile(
      file,
      '[sec]\nqueue_limit = 7\nlogger_name = "a.b"\n',
    );
    const s = resolveSettings({
      cfgSection: "sec",
      options: {
        ...bare.options,
        queueLimit: 3,
        onStuck: "report",
        timeout: 50,
      },
    }, [file]);
    assert.equal(s.queueLimit, 7);
    assert.deepEqual(s.loggerName, ["a", "b"]);
    assert.equal(s.onStuck, "report");
    assert.equal(s.timeoutMs, 50);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("init() sets the helper command every context without one resolves to", () => {
  const saved = [...globals.helperCommand];
  try {
    init({ helperCommand: ["/usr/bin/sudo", "-n"] });
    assert.deepEqual(resolveSettings(bare, []).helperCommand, [
      "/usr/bin/sudo",
      "-n",
    ]);
    assert.deepEqual(
      resolveSettings(
        { options: { ...bare.options, helperCommand: ["doas"] } },
        [],
      )
        .helperCommand,
      ["doas"],
    );
  } finally {
    init({ helperCommand: saved });
  }
});

Deno.test('resolveSettings() refuses ".." in permission paths given in code, as the config file does', () => {
  for (const kind of ["read", "write", "run"] as const) {
    assert.throws(
      () =>
        resolveSettings({
          options: {
            ...bare.options,
            permissions: { [kind]: ["/var/lib/app/../../etc"] },
          },
        }, []),
      (e: unknown) =>
        e instanceof TypeError &&
        e.message.includes(
          `permissions.${kind}[0] is "/var/lib/app/../../etc"`,
        ),
    );
  }
  // Elsewhere ".." is not a path.
  assert.deepEqual(
    resolveSettings({
      options: { ...bare.options, permissions: { env: [".."] } },
    }, [])
      .permissions,
    { env: [".."] },
  );
});
