// Copyright the privsep authors. Apache-2.0 license.

import assert from "node:assert/strict";
import {
  CONFIG_KEYS,
  ConfigError,
  configReferenceRows,
  type ContextSettings,
  loadConfigSection,
  parseConfigSection,
} from "./config.ts";

/** Parses `body` as the `[ctx]` section of a file named `test.toml`. */
function section(body: string): ContextSettings {
  return parseConfigSection(`[ctx]\n${body}\n`, "ctx", "test.toml");
}

/** Asserts that `fn` throws a ConfigError whose message matches every pattern. */
function assertConfigError(
  fn: () => unknown,
  expected: { key?: string; file?: string; section?: string },
  ...patterns: RegExp[]
): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(
    caught instanceof ConfigError,
    `expected a ConfigError, got ${caught}`,
  );
  assert.equal(caught.name, "ConfigError");
  for (const [field, value] of Object.entries(expected)) {
    assert.equal(
      caught[field as keyof typeof expected],
      value,
      `field ${field}`,
    );
  }
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

function withTempDir(fn: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "privsep_config_test_" });
  try {
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("parseConfigSection() returns {} for a missing section", () => {
  assert.deepEqual(parseConfigSection('[other]\nuser = "x"\n', "ctx"), {});
  assert.deepEqual(parseConfigSection("", "ctx"), {});
});

Deno.test("parseConfigSection() returns {} for an empty section", () => {
  assert.deepEqual(section(""), {});
});

Deno.test("parseConfigSection() ignores other sections, even invalid ones", () => {
  const settings = parseConfigSection(
    '[ctx]\nuser = "app"\n[other]\nbogus = 1\n',
    "ctx",
  );
  assert.deepEqual(settings, { user: "app" });
});

Deno.test("parseConfigSection() reads every key", () => {
  const settings = section(`
user = "nova"
group = "nova"
capabilities = ["CAP_CHOWN", 12]
concurrency = 4
helper_command = ["/usr/bin/sudo", "-n", "/usr/local/bin/privsep-helper"]
logger_name = "nova.privsep.daemon"
log_daemon_traceback = true
timeout_ms = 30000
deno_dir = "/var/cache/nova/deno"

[ctx.permissions]
read = ["/etc/nova"]
write = ["/var/lib/nova", "/run/nova"]
net = ["127.0.0.1:8080"]
env = ["HOME"]
sys = ["hostname"]
run = ["/usr/sbin/ip"]
ffi = ["/usr/lib/libfoo.so"]
import = ["example.com"]
`);
  assert.deepEqual(settings, {
    user: "nova",
    group: "nova",
    capabilities: ["CAP_CHOWN", 12],
    concurrency: 4,
    helperCommand: ["/usr/bin/sudo", "-n", "/usr/local/bin/privsep-helper"],
    loggerName: "nova.privsep.daemon",
    logDaemonTraceback: true,
    timeoutMs: 30000,
    denoDir: "/var/cache/nova/deno",
    permissions: {
      read: ["/etc/nova"],
      write: ["/var/lib/nova", "/run/nova"],
      net: ["127.0.0.1:8080"],
      env: ["HOME"],
      sys: ["hostname"],
      run: ["/usr/sbin/ip"],
      ffi: ["/usr/lib/libfoo.so"],
      import: ["example.com"],
    },
  });
});

Deno.test("parseConfigSection() returns plain objects and arrays", () => {
  const settings = section(`
capabilities = ["CAP_CHOWN"]
helper_command = ["a"]
permissions = { read = ["/etc"] }
`);
  assert.equal(Object.getPrototypeOf(settings), Object.prototype);
  assert.ok(Array.isArray(settings.capabilities));
  assert.equal(Object.getPrototypeOf(settings.capabilities), Array.prototype);
  assert.equal(Object.getPrototypeOf(settings.helperCommand), Array.prototype);
  const permissions = settings.permissions;
  assert.ok(typeof permissions === "object");
  assert.equal(Object.getPrototypeOf(permissions), Object.prototype);
  assert.equal(Object.getPrototypeOf(permissions.read), Array.prototype);
});

Deno.test("parseConfigSection() accepts a section name with a dot when quoted", () => {
  const settings = parseConfigSection(
    '["app.admin"]\nuser = "app"\n',
    "app.admin",
  );
  assert.deepEqual(settings, { user: "app" });
});

Deno.test("parseConfigSection() rejects a section that is not a table", () => {
  assertConfigError(
    () => parseConfigSection("ctx = 3\n", "ctx", "test.toml"),
    { file: "test.toml", section: "ctx" },
    /section \[ctx\]/,
    /must be a table, got 3 \(an integer\)/,
    /\[ctx\] header/,
  );
});

Deno.test("parseConfigSection() rejects an unknown key with a suggestion", () => {
  const error = assertConfigError(
    () => section("thread_pool = 2"),
    { key: "thread_pool", file: "test.toml", section: "ctx" },
    /"test\.toml"/,
    /unknown key "thread_pool"/,
    /did you mean "thread_pool_size"\?/,
    /valid keys are: user, group, capabilities, concurrency/,
  );
  assert.doesNotMatch(error.message, /permissions\./);
});

Deno.test("parseConfigSection() suggests the TOML spelling of a camelCase key", () => {
  assertConfigError(
    () => section("timeoutMs = 5"),
    { key: "timeoutMs" },
    /did you mean "timeout_ms"\?/,
  );
  assertConfigError(
    () => section("helper-command = 'x'"),
    { key: "helper-command" },
    /did you mean "helper_command"\?/,
  );
});

Deno.test("parseConfigSection() rejects an unknown key without a far-fetched suggestion", () => {
  const error = assertConfigError(
    () => section("colour = 'red'"),
    { key: "colour" },
    /unknown key "colour"; valid keys are:/,
  );
  assert.doesNotMatch(error.message, /did you mean/);
});

Deno.test("parseConfigSection() reads user and group as names or numeric ids", () => {
  assert.deepEqual(section('user = "nobody"\ngroup = "nogroup"'), {
    user: "nobody",
    group: "nogroup",
  });
  assert.deepEqual(section('user = "65534"\ngroup = 0'), {
    user: "65534",
    group: "0",
  });
});

Deno.test("parseConfigSection() rejects invalid users and groups", () => {
  assertConfigError(
    () => section("user = true"),
    { key: "user" },
    /"user" must be a string, got true \(a boolean\)/,
    /numeric id/,
  );
  assertConfigError(
    () => section('group = ""'),
    { key: "group" },
    /non-empty name/,
  );
  assertConfigError(() => section('user = "a b"'), { key: "user" }, /"a b"/);
  assertConfigError(() => section('user = "-root"'), { key: "user" });
  assertConfigError(() => section("user = -1"), { key: "user" }, /-1/);
  assertConfigError(
    () => section('user = "4294967295"'),
    { key: "user" },
    /from 0 to 4294967294/,
  );
});

Deno.test("parseConfigSection() keeps capabilities as given", () => {
  assert.deepEqual(section('capabilities = ["net_admin", "CAP_CHOWN", 0]'), {
    capabilities: ["net_admin", "CAP_CHOWN", 0],
  });
  assert.deepEqual(section("capabilities = []"), { capabilities: [] });
});

Deno.test("parseConfigSection() rejects capabilities that are not a list of names or numbers", () => {
  assertConfigError(
    () => section('capabilities = "CAP_CHOWN"'),
    { key: "capabilities" },
    /must be an array, got "CAP_CHOWN" \(a string\)/,
  );
  assertConfigError(
    () => section('capabilities = ["CAP_CHOWN", 1.5]'),
    { key: "capabilities[1]" },
    /1\.5 \(a float\)/,
  );
  assertConfigError(
    () => section('capabilities = [""]'),
    { key: "capabilities[0]" },
  );
});

Deno.test("parseConfigSection() reads concurrency and its alias thread_pool_size", () => {
  assert.deepEqual(section("concurrency = 8"), { concurrency: 8 });
  assert.deepEqual(section("thread_pool_size = 3"), { concurrency: 3 });
});

Deno.test("parseConfigSection() rejects an invalid concurrency", () => {
  assertConfigError(
    () => section("concurrency = 0"),
    { key: "concurrency" },
    /"concurrency" must be an integer from 1 to \d+, got 0 \(an integer\)/,
  );
  assertConfigError(
    () => section("thread_pool_size = 2.5"),
    { key: "thread_pool_size" },
    /2\.5 \(a float\)/,
  );
  assertConfigError(
    () => section('concurrency = "4"'),
    { key: "concurrency" },
    /"4" \(a string\)/,
  );
});

Deno.test("parseConfigSection() rejects both concurrency and thread_pool_size", () => {
  assertConfigError(
    () => section("concurrency = 2\nthread_pool_size = 3"),
    { key: "thread_pool_size" },
    /both "concurrency" and its alias "thread_pool_size"/,
    /keep only "concurrency"/,
  );
});

Deno.test("parseConfigSection() reads helper_command as an array or a string", () => {
  assert.deepEqual(section('helper_command = ["sudo", "-n", "helper"]'), {
    helperCommand: ["sudo", "-n", "helper"],
  });
  assert.deepEqual(
    section('helper_command = "  sudo -n\\t/usr/bin/helper --x  "'),
    { helperCommand: ["sudo", "-n", "/usr/bin/helper", "--x"] },
  );
});

Deno.test("parseConfigSection() rejects an invalid helper_command", () => {
  assertConfigError(
    () => section('helper_command = "   "'),
    { key: "helper_command" },
    /non-empty command/,
  );
  assertConfigError(
    () => section("helper_command = []"),
    { key: "helper_command" },
    /non-empty array/,
  );
  assertConfigError(
    () => section('helper_command = ["sudo", 1]'),
    { key: "helper_command[1]" },
    /must be a string, got 1 \(an integer\)/,
  );
  assertConfigError(
    () => section("helper_command = 7"),
    { key: "helper_command" },
  );
});

Deno.test("parseConfigSection() reads logger_name", () => {
  assert.deepEqual(section('logger_name = "app.privsep.daemon"'), {
    loggerName: "app.privsep.daemon",
  });
  assertConfigError(
    () => section('logger_name = ""'),
    { key: "logger_name" },
    /non-empty string/,
  );
  assertConfigError(() => section("logger_name = ['a']"), {
    key: "logger_name",
  }, /\["a"\] \(an array\)/);
});

Deno.test("parseConfigSection() reads log_daemon_traceback", () => {
  assert.deepEqual(section("log_daemon_traceback = false"), {
    logDaemonTraceback: false,
  });
  assertConfigError(
    () => section('log_daemon_traceback = "yes"'),
    { key: "log_daemon_traceback" },
    /must be a boolean, got "yes" \(a string\)/,
    /without quotes/,
  );
});

Deno.test("parseConfigSection() reads timeout_ms", () => {
  assert.deepEqual(section("timeout_ms = 1"), { timeoutMs: 1 });
  assert.deepEqual(section("timeout_ms = 2_147_483_647"), {
    timeoutMs: 2_147_483_647,
  });
});

Deno.test("parseConfigSection() rejects an invalid timeout_ms", () => {
  for (const value of ["0", "-5", "1.5", '"30s"', "2147483648"]) {
    assertConfigError(
      () => section(`timeout_ms = ${value}`),
      { key: "timeout_ms", section: "ctx", file: "test.toml" },
      /"timeout_ms" must be an integer from 1 to 2147483647/,
      /whole milliseconds/,
    );
  }
});

Deno.test("parseConfigSection() reads an absolute deno_dir", () => {
  assert.deepEqual(section('deno_dir = "/var/cache/app/deno"'), {
    denoDir: "/var/cache/app/deno",
  });
});

Deno.test("parseConfigSection() rejects a relative deno_dir", () => {
  assertConfigError(
    () => section('deno_dir = "cache/deno"'),
    { key: "deno_dir" },
    /must be an absolute path without white space, got "cache\/deno" \(a string\)/,
  );
  assertConfigError(() => section('deno_dir = "./x"'), { key: "deno_dir" });
  assertConfigError(() => section("deno_dir = 1"), { key: "deno_dir" });
});

Deno.test('parseConfigSection() reads permissions = "all"', () => {
  assert.deepEqual(section('permissions = "all"'), { permissions: "all" });
});

Deno.test("parseConfigSection() reads permission true as an unscoped (empty) list", () => {
  assert.deepEqual(
    section('[ctx.permissions]\nnet = true\nread = ["/etc"]'),
    { permissions: { net: [], read: ["/etc"] } },
  );
  assert.deepEqual(section("permissions = {}"), { permissions: {} });
});

Deno.test("parseConfigSection() rejects an unknown permission kind with a suggestion", () => {
  assertConfigError(
    () => section('[ctx.permissions]\nreed = ["/etc"]'),
    { key: "permissions.reed" },
    /unknown key "permissions\.reed" \(did you mean "permissions\.read"\?\)/,
    /valid keys of "permissions" are: read, write, net, env, sys, run, ffi, import/,
  );
  assertConfigError(
    () => section("[ctx.permissions]\nhrtime = true"),
    { key: "permissions.hrtime" },
  );
});

Deno.test("parseConfigSection() rejects invalid permission values", () => {
  assertConfigError(
    () => section('permissions = "some"'),
    { key: "permissions" },
    /must be "all" or a table, got "some" \(a string\)/,
  );
  assertConfigError(
    () => section('permissions = ["read"]'),
    { key: "permissions" },
  );
  assertConfigError(
    () => section("[ctx.permissions]\nread = false"),
    { key: "permissions.read" },
    /a non-empty array of strings or true, got false \(a boolean\)/,
    /remove "read" to grant none/,
  );
  assertConfigError(
    () => section("[ctx.permissions]\nwrite = []"),
    { key: "permissions.write" },
    /got \[\] \(an array\)/,
  );
  assertConfigError(
    () => section('[ctx.permissions]\nread = "/etc"'),
    { key: "permissions.read" },
  );
  assertConfigError(
    () => section('[ctx.permissions]\nread = ["/etc", 3]'),
    { key: "permissions.read[1]" },
  );
  assertConfigError(
    () => section('[ctx.permissions]\nread = ["/etc,/root"]'),
    { key: "permissions.read[0]" },
    /without ','/,
  );
  assertConfigError(
    () => section('[ctx.permissions]\nwrite = ["/var/lib/app/../../etc"]'),
    { key: "permissions.write[0]" },
    /without "\.\."/,
  );
  assertConfigError(
    () => section('[ctx.permissions]\nrun = ["/usr/sbin/../../bin/sh"]'),
    { key: "permissions.run[0]" },
    /without "\.\."/,
  );
});

Deno.test("parseConfigSection() reports invalid TOML with the parser's message", () => {
  assertConfigError(
    () => parseConfigSection("[ctx\nuser = 1", "ctx", "broken.toml"),
    { file: "broken.toml", section: "ctx" },
    /Cannot parse privsep config "broken\.toml" as TOML: Invalid TOML document/,
  );
  assertConfigError(
    () => parseConfigSection("x = [", "ctx"),
    { section: "ctx" },
    /Cannot parse privsep config TOML text as TOML/,
  );
});

Deno.test("parseConfigSection() names 'TOML text' when no source is given", () => {
  const error = assertConfigError(
    () => parseConfigSection("[ctx]\nuser = 1.5\n", "ctx"),
    { key: "user", section: "ctx" },
    /in TOML text, section \[ctx\]/,
  );
  assert.equal(error.file, undefined);
});

Deno.test("loadConfigSection() returns {} for no files", () => {
  assert.deepEqual(loadConfigSection([], "ctx"), {});
});

Deno.test("loadConfigSection() lets later files override earlier keys", () => {
  withTempDir((dir) => {
    const base = `${dir}/base.toml`;
    const middle = `${dir}/middle.toml`;
    const local = `${dir}/local.toml`;
    Deno.writeTextFileSync(
      base,
      `[ctx]
user = "app"
group = "app"
concurrency = 2
timeout_ms = 1000
[ctx.permissions]
read = ["/etc/app"]
write = ["/var/lib/app"]
`,
    );
    Deno.writeTextFileSync(middle, '[other]\nuser = "ignored"\n');
    Deno.writeTextFileSync(
      local,
      `[ctx]
thread_pool_size = 6
timeout_ms = 5000
permissions = { net = true }
`,
    );
    assert.deepEqual(loadConfigSection([base, middle, local], "ctx"), {
      user: "app",
      group: "app",
      concurrency: 6,
      timeoutMs: 5000,
      permissions: { net: [] },
    });
    assert.deepEqual(loadConfigSection([local, base], "ctx"), {
      user: "app",
      group: "app",
      concurrency: 2,
      timeoutMs: 1000,
      permissions: { read: ["/etc/app"], write: ["/var/lib/app"] },
    });
  });
});

Deno.test("loadConfigSection() throws naming a missing file", () => {
  withTempDir((dir) => {
    const good = `${dir}/good.toml`;
    const missing = `${dir}/missing.toml`;
    Deno.writeTextFileSync(good, '[ctx]\nuser = "app"\n');
    const error = assertConfigError(
      () => loadConfigSection([good, missing], "ctx"),
      { file: missing, section: "ctx" },
      new RegExp(`Cannot read privsep config file "${missing}"`),
      /No such file or directory/,
      /check that the file exists/,
    );
    assert.ok(error.cause instanceof Deno.errors.NotFound);
  });
});

Deno.test("loadConfigSection() throws naming a file that is a directory", () => {
  withTempDir((dir) => {
    assertConfigError(
      () => loadConfigSection([dir], "ctx"),
      { file: dir },
      new RegExp(`Cannot read privsep config file "${dir}"`),
    );
  });
});

Deno.test("loadConfigSection() throws naming a file with invalid TOML", () => {
  withTempDir((dir) => {
    const good = `${dir}/good.toml`;
    const bad = `${dir}/bad.toml`;
    Deno.writeTextFileSync(good, '[ctx]\nuser = "app"\n');
    Deno.writeTextFileSync(bad, '[other]\nkey = "unterminated\n');
    assertConfigError(
      () => loadConfigSection([good, bad], "ctx"),
      { file: bad, section: "ctx" },
      new RegExp(`Cannot parse privsep config "${bad}" as TOML: `),
      /Invalid TOML document/,
    );
  });
});

Deno.test("loadConfigSection() names the file holding an invalid value", () => {
  withTempDir((dir) => {
    const good = `${dir}/good.toml`;
    const bad = `${dir}/bad.toml`;
    Deno.writeTextFileSync(good, "[ctx]\nconcurrency = 1\n");
    Deno.writeTextFileSync(bad, "[ctx]\nconcurrency = -1\n");
    assertConfigError(
      () => loadConfigSection([good, bad], "ctx"),
      { file: bad, section: "ctx", key: "concurrency" },
      new RegExp(`"${bad}", section \\[ctx\\]: "concurrency"`),
    );
  });
});

Deno.test("ConfigError carries its name, location and cause", () => {
  const cause = new Error("inner");
  const error = new ConfigError("bad", {
    file: "f.toml",
    section: "s",
    key: "k",
    cause,
  });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "ConfigError");
  assert.equal(error.message, "bad");
  assert.equal(error.file, "f.toml");
  assert.equal(error.section, "s");
  assert.equal(error.key, "k");
  assert.equal(error.cause, cause);
  const bare = new ConfigError("bare");
  assert.equal(bare.file, undefined);
  assert.equal("cause" in bare, false);
});

Deno.test("parseConfigSection() reads libcap as a bare name or an absolute path", () => {
  assert.deepEqual(section('libcap = "libcap.so.2"'), {
    libcap: "libcap.so.2",
  });
  assert.deepEqual(
    section('libcap = "/usr/lib/x86_64-linux-gnu/libcap.so.2"'),
    { libcap: "/usr/lib/x86_64-linux-gnu/libcap.so.2" },
  );
});

Deno.test("parseConfigSection() rejects a relative libcap path, which root would load from its working directory", () => {
  for (
    const value of [
      "x86_64-linux-gnu/libcap.so.2",
      "./libcap.so.2",
      "lib/../libcap.so.2",
    ]
  ) {
    const error = assertConfigError(
      () => section(`libcap = "${value}"`),
      { key: "libcap", section: "ctx", file: "test.toml" },
      /"libcap" must be a library name without a slash such as "libcap\.so\.2", or a normalised absolute path/,
      /loaded, as root, from the directory the daemon was started in/,
      /write libcap = "libcap\.so\.2"/,
    );
    assert.ok(error.message.includes(`got "${value}"`), error.message);
    assert.ok(error.message.includes(`"/usr/lib/${value}"`), error.message);
  }
  assertConfigError(
    () => section('libcap = "x86_64-linux-gnu/libcap.so.2"'),
    {},
    /an absolute path such as libcap = "\/usr\/lib\/x86_64-linux-gnu\/libcap\.so\.2"/,
  );
});

Deno.test("parseConfigSection() rejects other invalid libcap values", () => {
  for (
    const value of [
      '""',
      '"."',
      '".."',
      '"/"',
      '"/usr/lib/"',
      '"/usr/lib/../tmp/libcap.so.2"',
      '"/usr//lib/libcap.so.2"',
      '"lib cap.so"',
      "2",
    ]
  ) {
    assertConfigError(
      () => section(`libcap = ${value}`),
      { key: "libcap" },
      /"libcap" must be a library name without a slash/,
      /write libcap = "libcap\.so\.2"/,
    );
  }
});

Deno.test("docs/configuration.md's table of keys is CONFIG_KEYS, row by row", async () => {
  const doc = await Deno.readTextFile(
    new URL("../docs/configuration.md", import.meta.url),
  );
  const lines = doc.split("\n");
  const header = lines.findIndex((l) => /^\|\s*key\s*\|/.test(l));
  assert.ok(header >= 0, "docs/configuration.md has no table of keys");
  const cells = (line: string) =>
    line.slice(1, -1).split("|").map((c) => c.trim().replace(/\s+/g, " "));
  const rows: string[][] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(cells(line));
  }
  const expected = configReferenceRows();
  const table = [
    "| key | value | option in code | default |",
    "| --- | --- | --- | --- |",
    ...expected.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
  assert.deepEqual(
    cells(lines[header]),
    ["key", "value", "option in code", "default"],
  );
  assert.deepEqual(
    rows,
    expected,
    `docs/configuration.md's table of keys differs from CONFIG_KEYS in core/config.ts; paste this table (deno fmt aligns it):\n${table}`,
  );
});

Deno.test("CONFIG_KEYS: every key parses, and every unknown key lists them all", () => {
  for (const k of CONFIG_KEYS) {
    assert.throws(
      () => parseConfigSection(`[s]\n${k.key} = 1.5\n`, "s"),
      (error: unknown) =>
        error instanceof ConfigError && error.key === k.key &&
        error.message.includes(`"${k.key}" must be`),
    );
  }
  assert.throws(
    () => parseConfigSection("[s]\nnope = 1\n", "s"),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message.endsWith(
        `valid keys are: ${
          CONFIG_KEYS.flatMap((k) => k.alias ? [k.key, k.alias] : [k.key])
            .join(", ")
        }`,
      ),
  );
});

Deno.test('parseConfigSection() reads idle_read "event-loop" or "blocking"', () => {
  assert.equal(section('idle_read = "blocking"').idleRead, "blocking");
  assert.equal(section('idle_read = "event-loop"').idleRead, "event-loop");
});

Deno.test("parseConfigSection() rejects any other idle_read", () => {
  for (const value of ['"sync"', "true", '"Blocking"']) {
    assertConfigError(
      () => section(`idle_read = ${value}`),
      { key: "idle_read" },
      /"event-loop" or "blocking"/,
    );
  }
});

Deno.test("parseConfigSection() reads log_level, one of LogTape's levels", () => {
  for (const level of ["trace", "debug", "info", "warning", "error", "fatal"]) {
    assert.equal(section(`log_level = "${level}"`).logLevel, level);
  }
});

Deno.test("parseConfigSection() rejects any other log_level", () => {
  for (const value of ['"warn"', '"DEBUG"', "1", "true"]) {
    assertConfigError(
      () => section(`log_level = ${value}`),
      { key: "log_level" },
      /"trace", "debug", "info", "warning", "error" or "fatal"/,
    );
  }
});
