import assert from "node:assert/strict";
import { CAP_CHOWN, CAP_NET_ADMIN } from "../caps/table.ts";
import { ProtocolError, RemoteError } from "../errors.ts";
import { PrivContext, setClientMode } from "./priv_context.ts";
import { resolveSettings } from "../core/settings.ts";

let n = 0;
function context(
  extra: Partial<ConstructorParameters<typeof PrivContext>[0]> = {},
) {
  n++;
  return new PrivContext({
    module: `file:///virtual/app${n}/privsep/mod.ts`,
    name: "ctx",
    capabilities: [CAP_CHOWN],
    ...extra,
  });
}

Deno.test("PrivContext() requires capabilities and refuses 'all'", () => {
  assert.throws(
    () => context({ capabilities: undefined as unknown as number[] }),
    /capabilities is required/,
  );
  assert.throws(() => context({ capabilities: ["all"] }), /one by one/);
  assert.throws(() => context({ capabilities: ["CAP_NOPE"] }), TypeError);
  const empty = context({ capabilities: [] });
  assert.deepEqual(resolveSettings(empty, []).capabilities, []);
});

Deno.test("PrivContext() rejects bad names, modules and numbers", () => {
  assert.throws(() => context({ name: "not a name" }), /export name/);
  assert.throws(() => context({ module: "relative.ts" }), /import.meta/);
  assert.throws(() => context({ concurrency: 0 }), RangeError);
  assert.throws(() => context({ timeout: 1.5 }), RangeError);
});

Deno.test('PrivContext() takes a LogTape level as logLevel, "info" by default', () => {
  assert.equal(resolveSettings(context(), []).logLevel, "info");
  assert.equal(
    resolveSettings(context({ logLevel: "debug" }), []).logLevel,
    "debug",
  );
  for (const logLevel of ["warn", "DEBUG", 1]) {
    assert.throws(
      () => context({ logLevel: logLevel as "debug" }),
      (e: unknown) =>
        e instanceof TypeError &&
        e.message.includes(`got ${JSON.stringify(logLevel)}`),
    );
  }
});

Deno.test("PrivContext() refuses a second context with the same id", () => {
  const ctx = context();
  assert.throws(
    () =>
      new PrivContext({ module: ctx.moduleUrl, name: "ctx", capabilities: [] }),
    /already defined/,
  );
});

Deno.test("entrypoint() keys functions by path below the prefix", () => {
  const ctx = context();
  const base = ctx.moduleUrl.replace("mod.ts", "");
  ctx.entrypoint(`${base}motd.ts`, function updateMotd(_m: string) {});
  ctx.entrypoint(`${base}net/links.ts`, function links() {
    return [];
  });
  assert.deepEqual(ctx.entrypoints(), [
    "motd.ts#updateMotd",
    "net/links.ts#links",
  ]);
  assert.equal(ctx.prefix, base);
});

Deno.test("entrypoint() rejects a module outside the context's prefix", () => {
  const ctx = context();
  assert.throws(
    () => ctx.entrypoint("file:///virtual/elsewhere/x.ts", function f() {}),
    /outside the prefix/,
  );
});

Deno.test("entrypoint() needs a named function, once per context", () => {
  const ctx = context();
  const url = ctx.moduleUrl;
  assert.throws(() => ctx.entrypoint(url, () => 1), /named function/);
  function twice() {}
  ctx.entrypoint(url, twice);
  assert.throws(() => ctx.entrypoint(url, twice), /already an entrypoint/);
  const other = context();
  assert.throws(
    () => other.entrypoint(other.moduleUrl, twice),
    /belongs to one context/,
  );
  assert.throws(
    () => ctx.entrypoint(url, function twice() {}),
    /already has an entrypoint mod.ts#twice/,
  );
});

Deno.test("entrypointWithTimeout() checks its timeout", () => {
  const ctx = context();
  assert.throws(() => ctx.entrypointWithTimeout(0), RangeError);
  const f = ctx.entrypointWithTimeout(5_000)(
    ctx.moduleUrl,
    function timed() {},
  );
  assert.equal(f.name, "timed");
});

Deno.test("the returned function keeps the name and types, and runs in-process when client mode is off", async () => {
  const ctx = context();
  const add = ctx.entrypoint(
    ctx.moduleUrl,
    function add(a: number, b: number): number {
      return a + b;
    },
  );
  const bytes = ctx.entrypoint(ctx.moduleUrl, function bytes(b: Uint8Array) {
    return b;
  });
  assert.equal(add.name, "add");
  setClientMode(false);
  try {
    const sum: number = await add(2, 3);
    assert.equal(sum, 5);
    // Values go through the codec, as on the wire.
    const input = new Uint8Array([1, 2, 3]);
    const output = await bytes(input);
    assert.deepEqual(output, input);
    assert.notEqual(output, input);
  } finally {
    setClientMode(true);
  }
});

Deno.test("settings() applies the TOML section over the options", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/p.toml`;
    await Deno.writeTextFile(
      file,
      `[app_net]\nuser = "nobody"\ncapabilities = ["net_admin"]\nconcurrency = 3\nlogger_name = "app.priv"\ntimeout_ms = 250\nhelper_command = ["doas"]\n[app_net.permissions]\nwrite = ["/run/app"]\n`,
    );
    const ctx = context({
      cfgSection: "app_net",
      concurrency: 9,
      configFiles: [file],
    });
    const s = ctx.settings();
    assert.equal(s.user, "nobody");
    assert.deepEqual(s.capabilities, [CAP_NET_ADMIN]);
    assert.equal(s.concurrency, 3);
    assert.deepEqual(s.loggerName, ["app", "priv"]);
    assert.equal(s.timeoutMs, 250);
    assert.deepEqual(s.helperCommand, ["doas"]);
    assert.deepEqual(s.permissions, { write: ["/run/app"] });
    const plain = context();
    const d = plain.settings();
    assert.equal(d.user, "root");
    assert.deepEqual(d.permissions, {});
    assert.deepEqual(d.loggerName, ["privsep", "daemon"]);
    assert.deepEqual(d.helperCommand, ["sudo", "-n"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("in-process mode honours timeouts, per-call signals and callSignal()", async () => {
  const { callSignal, callWith } = await import("../core/call_scope.ts");
  const { PrivsepTimeout } = await import("../errors.ts");
  const ctx = context({ timeout: 50 });
  let sawAbort = false;
  const wait = ctx.entrypoint(
    ctx.moduleUrl,
    function wait(ms: number): Promise<string> {
      const signal = callSignal();
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve("done"), ms);
        signal.addEventListener("abort", () => {
          sawAbort = true;
          clearTimeout(timer);
          resolve("aborted");
        });
      });
    },
  );
  setClientMode(false);
  try {
    await assert.rejects(wait(1_000), PrivsepTimeout);
    assert.equal(sawAbort, true);
    assert.equal(await callWith({ timeout: 500 }, () => wait(10)), "done");
    const controller = new AbortController();
    const pending = callWith({ signal: controller.signal }, () => wait(1_000));
    controller.abort(new Error("stop"));
    await assert.rejects(pending, /stop/);
    assert.throws(() => callWith({ timeout: 0 }, () => 1), RangeError);
  } finally {
    setClientMode(true);
  }
});

Deno.test("in-process mode answers as a daemon would: frame limits, error envelopes, the same classes", async () => {
  const ctx = context({ maxFrameBytes: 16_384 });
  const base = ctx.moduleUrl.replace("mod.ts", "");
  const big = ctx.entrypoint(`${base}big.ts`, function big(n: number) {
    return "x".repeat(n);
  });
  const fail = ctx.entrypoint(`${base}big.ts`, function fail() {
    throw Object.assign(new Error("m".repeat(50_000)), { code: "EBIG" });
  });
  setClientMode(false);
  try {
    assert.equal(await big(10), "x".repeat(10));
    // A result above maxFrameBytes cannot leave the daemon: it does not here.
    await assert.rejects(big(20_000), (e: unknown) => {
      assert.ok(e instanceof RemoteError, String(e));
      assert.equal(e.remoteName, "ProtocolError");
      assert.equal(e.entrypoint, "big.ts#big");
      return true;
    });
    // Neither can an argument above it.
    await assert.rejects(big("y".repeat(20_000) as never), ProtocolError);
    // An error envelope above it is cut as the daemon cuts it.
    await assert.rejects(fail(), (e: unknown) => {
      assert.ok(e instanceof RemoteError, String(e));
      assert.equal(e.code, "EBIG");
      assert.match(
        e.message,
        /error reply cut: it was larger than maxFrameBytes 16384\)$/,
      );
      return true;
    });
  } finally {
    setClientMode(true);
  }
});
