// Copyright the privsep authors. Apache-2.0 license.

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  daemonArgv,
  daemonCommand,
  type DaemonCommandSpec,
  findDenoConfig,
  sudoersRule,
} from "./command.ts";

const SPEC: DaemonCommandSpec = {
  denoPath: "/usr/local/bin/deno",
  daemonPath: "/opt/app/vendor/privsep/daemon.ts",
  denoConfig: "/opt/app/deno.json",
  codeRoots: ["/opt/app", "/opt/lib"],
  contextId: "file:///opt/app/privsep/mod.ts#sysAdmin",
  configFiles: ["/etc/app/privsep.toml", "/etc/app/local.toml"],
};

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("daemonArgv() pins the flags, reads, daemon path and context", () => {
  assert.deepEqual(daemonArgv(SPEC), [
    "/usr/bin/env",
    "DENO_DIR=/var/cache/privsep/deno",
    "/usr/local/bin/deno",
    "run",
    "--no-prompt",
    "--cached-only",
    "--no-lock",
    "--v8-flags=--expose-gc,--max-semi-space-size=1",
    "--config=/opt/app/deno.json",
    "--allow-ffi",
    "--allow-read=/opt/app,/opt/lib,/etc/app/privsep.toml,/etc/app/local.toml",
    "/opt/app/vendor/privsep/daemon.ts",
    "--context=file:///opt/app/privsep/mod.ts#sysAdmin",
    "--config-file=/etc/app/privsep.toml",
    "--config-file=/etc/app/local.toml",
  ]);
});

Deno.test("daemonArgv() uses --no-config without a deno config", () => {
  const argv = daemonArgv({
    denoPath: "/usr/bin/deno",
    daemonPath: "/opt/d.ts",
    codeRoots: ["/opt"],
    contextId: "file:///opt/m.ts#ctx",
  });
  assert.deepEqual(argv, [
    "/usr/bin/env",
    "DENO_DIR=/var/cache/privsep/deno",
    "/usr/bin/deno",
    "run",
    "--no-prompt",
    "--cached-only",
    "--no-lock",
    "--v8-flags=--expose-gc,--max-semi-space-size=1",
    "--no-config",
    "--allow-ffi",
    "--allow-read=/opt",
    "/opt/d.ts",
    "--context=file:///opt/m.ts#ctx",
  ]);
  assert.ok(!argv.some((w) => w.startsWith("--config")));
});

Deno.test("daemonArgv() never grants more than reads, ffi and the listed paths", () => {
  const argv = daemonArgv(SPEC);
  const permissions = argv.filter((w) => w.startsWith("--allow-"));
  assert.deepEqual(permissions.map((w) => w.split("=")[0]), [
    "--allow-ffi",
    "--allow-read",
  ]);
  assert.ok(!argv.includes("--allow-all") && !argv.includes("-A"));
  // Flags come before the script; everything after it goes to the daemon.
  const script = argv.indexOf(SPEC.daemonPath);
  assert.ok(
    argv.slice(script + 1).every((w) => /^--(context|config-file)=/.test(w)),
  );
  assert.ok(
    argv.slice(3, script).every((w) => w === "run" || w.startsWith("--")),
  );
  // DENO_DIR is set by /usr/bin/env, since sudo clears DENO_*.
  assert.deepEqual(argv.slice(0, 3), [
    "/usr/bin/env",
    "DENO_DIR=/var/cache/privsep/deno",
    SPEC.denoPath,
  ]);
  assert.equal(
    daemonArgv({ ...SPEC, denoDir: "/srv/cache" })[1],
    "DENO_DIR=/srv/cache",
  );
  assert.throws(
    () => daemonArgv({ ...SPEC, denoDir: "cache" }),
    /DENO_DIR must be an absolute path/,
  );
});

Deno.test("daemonArgv() lists each read path once", () => {
  const argv = daemonArgv({
    ...SPEC,
    codeRoots: ["/opt/app", "/etc/app/privsep.toml", "/opt/app"],
    configFiles: ["/etc/app/privsep.toml"],
  });
  assert.ok(argv.includes("--allow-read=/opt/app,/etc/app/privsep.toml"));
});

Deno.test("daemonArgv() rejects relative paths", () => {
  const cases: Partial<DaemonCommandSpec>[] = [
    { denoPath: "deno" },
    { denoPath: "./bin/deno" },
    { daemonPath: "daemon.ts" },
    { denoConfig: "deno.json" },
    { codeRoots: ["/opt/app", "lib"] },
    { configFiles: ["privsep.toml"] },
  ];
  for (const override of cases) {
    assert.throws(
      () => daemonArgv({ ...SPEC, ...override }),
      (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /must be an absolute path/);
        return true;
      },
      JSON.stringify(override),
    );
  }
});

Deno.test("daemonArgv() rejects paths with white space or NUL", () => {
  for (
    const bad of [
      "/opt/my app",
      "/opt/tab\there",
      "/opt/line\nbreak",
      "/opt/nul\0",
    ]
  ) {
    const cases: Partial<DaemonCommandSpec>[] = [
      { denoPath: bad },
      { daemonPath: bad },
      { denoConfig: bad },
      { codeRoots: [bad] },
      { configFiles: [bad] },
    ];
    for (const override of cases) {
      assert.throws(
        () => daemonArgv({ ...SPEC, ...override }),
        /must not contain white space/,
        JSON.stringify(override),
      );
    }
  }
});

Deno.test("daemonArgv() rejects a comma in a read path, which --allow-read would split", () => {
  // "--allow-read=/opt/a,b" grants /opt/a and a path relative to the cwd.
  assert.throws(
    () => daemonArgv({ ...SPEC, codeRoots: ["/opt/a,b"] }),
    /comma/,
  );
  assert.throws(
    () => daemonArgv({ ...SPEC, configFiles: ["/etc/app,x.toml"] }),
    /comma/,
  );
  // Elsewhere a comma is only a character of a path.
  assert.ok(
    daemonArgv({ ...SPEC, daemonPath: "/opt/a,b/daemon.ts" }).includes(
      "/opt/a,b/daemon.ts",
    ),
  );
});

Deno.test("daemonArgv() rejects a malformed context id", () => {
  for (
    const contextId of [
      "",
      "sysAdmin",
      "/opt/m.ts#sysAdmin",
      "file:///opt/m.ts",
      "file:///opt/m.ts#",
      "file:///#sysAdmin",
      "file://host/opt/m.ts#sysAdmin",
      "https://example.com/m.ts#sysAdmin",
      "file:///opt/m.ts#1st",
      "file:///opt/m.ts#sys-admin",
      "file:///opt/m.ts#sys.admin",
      "file:///opt/my m.ts#sysAdmin",
      "file:///opt/m.ts#sysAdmin\n",
      "file:///opt/m.ts#sysAdmin --allow-all",
    ]
  ) {
    assert.throws(
      () => daemonArgv({ ...SPEC, contextId }),
      /the context id must look like/,
      JSON.stringify(contextId),
    );
  }
  for (
    const contextId of [
      "file:///opt/m.ts#_private",
      "file:///opt/m.ts#$ctx",
      "file:///opt/m.ts#ctx2",
    ]
  ) {
    assert.ok(
      daemonArgv({ ...SPEC, contextId }).includes(`--context=${contextId}`),
    );
  }
});

Deno.test("daemonCommand() prepends the helper command", () => {
  const argv = daemonCommand({ ...SPEC, helperCommand: ["sudo", "-n"] });
  assert.deepEqual(argv, ["sudo", "-n", ...daemonArgv(SPEC)]);
  assert.deepEqual(daemonCommand(SPEC), daemonArgv(SPEC));
  assert.deepEqual(
    daemonCommand({ ...SPEC, helperCommand: [] }),
    daemonArgv(SPEC),
  );
});

Deno.test("daemonCommand() validates like daemonArgv()", () => {
  assert.throws(
    () => daemonCommand({ ...SPEC, denoPath: "deno", helperCommand: ["sudo"] }),
    TypeError,
  );
});

Deno.test("sudoersRule() escapes sudoers special characters", () => {
  const argv = [
    "/usr/bin/deno",
    "run",
    "--allow-read=/opt/app,/etc/app.toml",
    "/opt/d.ts",
    "--context=file:///opt/m.ts#sysAdmin",
    "--x=a\\b",
    'c!d(e)"f',
  ];
  assert.equal(
    sudoersRule(argv, { user: "app" }),
    "Cmnd_Alias PRIVSEP_SYS_ADMIN = /usr/bin/deno run " +
      "--allow-read\\=/opt/app\\,/etc/app.toml /opt/d.ts " +
      "--context\\=file\\:///opt/m.ts\\#sysAdmin " +
      // sudoers strips one backslash and fnmatch(3) another.
      "--x\\=a\\\\\\\\b " +
      // `(`, `)` and `"` need no escape; a backslash before them is a
      // syntax error for sudoers.
      'c\\!d(e)"f\n' +
      "app ALL=(root) NOPASSWD: PRIVSEP_SYS_ADMIN\n",
  );
});

Deno.test("sudoersRule() escapes # so that it cannot start a comment", () => {
  const rule = sudoersRule(daemonArgv(SPEC), { user: "app" });
  const [line] = rule.split("\n");
  assert.ok(line.includes("\\#sysAdmin"), line);
  assert.ok(!/[^\\]#/.test(line), line);
});

Deno.test("sudoersRule() rejects wildcards, white space and empty words", () => {
  for (
    const word of [
      "*",
      "/opt/*.ts",
      "a?b",
      "[ab]",
      "x]",
      "a b",
      "a\tb",
      "a\nb",
      "nul\0",
      "",
    ]
  ) {
    assert.throws(
      () => sudoersRule(["/usr/bin/deno", "run", word], { user: "app" }),
      /cannot be empty or contain white space or wildcards/,
      JSON.stringify(word),
    );
  }
  assert.throws(
    () => sudoersRule(["/usr/bin/de*"], { user: "app" }),
    TypeError,
  );
});

Deno.test("sudoersRule() rejects a bad user", () => {
  for (
    const user of [
      "",
      "ALL, root",
      "app ALL",
      "app\nroot ALL=(ALL) ALL",
      "1app",
      "#0",
      "%",
      "a:b",
      "app=",
      "!app",
    ]
  ) {
    assert.throws(
      () => sudoersRule(["/usr/bin/deno"], { user }),
      /not a valid user or %group/,
      JSON.stringify(user),
    );
  }
  for (const user of ["app", "%wheel", "svc-app", "svc_app.1", "machine$"]) {
    assert.match(
      sudoersRule(["/usr/bin/deno"], { user }),
      new RegExp(`^${user.replace("$", "\\$")} ALL=\\(root\\) NOPASSWD: `, "m"),
    );
  }
});

Deno.test("sudoersRule() rejects a relative or missing program", () => {
  assert.throws(
    () => sudoersRule([], { user: "app" }),
    /absolute program path/,
  );
  assert.throws(
    () => sudoersRule(["deno", "run"], { user: "app" }),
    /absolute program path/,
  );
  assert.throws(
    () => sudoersRule(["./deno", "run"], { user: "app" }),
    /absolute program path/,
  );
});

Deno.test("sudoersRule() derives the alias from the context export name", () => {
  const alias = (exportName: string) =>
    sudoersRule(
      daemonArgv({ ...SPEC, contextId: `file:///opt/m.ts#${exportName}` }),
      { user: "app" },
    ).split(" ")[1];
  assert.equal(alias("sysAdmin"), "PRIVSEP_SYS_ADMIN");
  assert.equal(alias("netNsAdmin"), "PRIVSEP_NET_NS_ADMIN");
  assert.equal(alias("motd"), "PRIVSEP_MOTD");
  assert.equal(alias("ctx2"), "PRIVSEP_CTX2");
  assert.equal(alias("$ctx"), "PRIVSEP__CTX");
  assert.equal(
    sudoersRule(["/usr/bin/true"], { user: "app" }).split(" ")[1],
    "PRIVSEP_DAEMON",
  );
});

Deno.test("sudoersRule() takes an explicit alias and checks it", () => {
  const rule = sudoersRule(["/usr/bin/true"], {
    user: "app",
    alias: "MY_DAEMON2",
  });
  assert.equal(
    rule,
    "Cmnd_Alias MY_DAEMON2 = /usr/bin/true\napp ALL=(root) NOPASSWD: MY_DAEMON2\n",
  );
  for (const alias of ["lower", "1ABC", "A-B", "A B", "ALL, B"]) {
    assert.throws(
      () => sudoersRule(["/usr/bin/true"], { user: "app", alias }),
      /Cmnd_Alias name/,
      alias,
    );
  }
});

Deno.test("sudoersRule() prefixes the command with the sha256 digest", () => {
  const hex = "ab".repeat(32);
  assert.equal(
    sudoersRule(["/usr/bin/true", "x"], { user: "app", sha256: hex }),
    `Cmnd_Alias PRIVSEP_DAEMON = sha256:${hex} /usr/bin/true x\n` +
      "app ALL=(root) NOPASSWD: PRIVSEP_DAEMON\n",
  );
  const base64 = `${"A".repeat(42)}Q=`;
  assert.match(
    sudoersRule(["/usr/bin/true"], { user: "app", sha256: base64 }),
    new RegExp(`= sha256:${base64} /usr/bin/true\n`),
  );
});

Deno.test("sudoersRule() rejects a sha256 digest that is not hex or base64", () => {
  for (
    const sha256 of [
      "ab".repeat(31),
      "zz".repeat(32),
      `${"ab".repeat(32)}\napp ALL=(ALL) NOPASSWD: ALL`,
      `${"ab".repeat(32)} /bin/sh`,
      "sha256:" + "ab".repeat(32),
    ]
  ) {
    assert.throws(
      () => sudoersRule(["/usr/bin/true"], { user: "app", sha256 }),
      /sha256/,
      JSON.stringify(sha256),
    );
  }
});

/** A daemon command whose words use every character sudoers escapes. */
function awkwardSpec(denoPath: string): DaemonCommandSpec {
  return {
    denoPath,
    daemonPath: '/opt/privsep(1)/d=a:e#m!o"n\\.ts',
    denoConfig: "/opt/app:1/deno.json",
    codeRoots: ["/opt/app:1", "/opt/lib#2!"],
    contextId: "file:///opt/app:1/m(x).ts#sysAdmin",
    configFiles: ["/etc/app=1/privsep\\x.toml"],
  };
}

const VISUDO = "/usr/sbin/visudo";

Deno.test({
  name: "sudoersRule() output is accepted by visudo -c",
  ignore: !exists(VISUDO),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "privsep_sudoers_" });
    try {
      const rules = [
        sudoersRule(daemonArgv(SPEC), { user: "app" }),
        sudoersRule(daemonArgv(awkwardSpec("/usr/local/bin/deno")), {
          user: "%wheel",
          sha256: "ab".repeat(32),
        }),
        sudoersRule(["/usr/bin/true"], {
          user: "app",
          sha256: btoa(String.fromCharCode(...new Uint8Array(32).fill(7))),
        }),
      ];
      for (const [i, rule] of rules.entries()) {
        const file = join(dir, `rule${i}`);
        await Deno.writeTextFile(file, rule);
        const out = await new Deno.Command(VISUDO, {
          args: ["-c", "-f", file],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout) +
          new TextDecoder().decode(out.stderr);
        assert.equal(out.code, 0, `${rule}\n${text}`);
        assert.match(text, /parsed OK/);
      }
      assert.ok(rules[1].split("\n")[0].includes("\\#sysAdmin"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * Whether sudo can be asked, as root in a private mount namespace, about a
 * sudoers file bind-mounted over /etc/sudoers (the real file is untouched).
 */
function canAskSudo(): boolean {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return false;
  if (!exists("/usr/bin/sudo") || !exists("/etc/sudoers")) return false;
  try {
    return new Deno.Command("unshare", {
      args: ["-m", "true"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "sudoersRule() output lets sudo run exactly that argv",
  ignore: !canAskSudo(),
  async fn() {
    const program = "/usr/bin/true";
    // The command sudo runs is /usr/bin/env, so that is what the digest pins.
    const digest = Array.from(
      new Uint8Array(
        await crypto.subtle.digest(
          "SHA-256",
          await Deno.readFile("/usr/bin/env"),
        ),
      ),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    const argv = daemonArgv(awkwardSpec(program));
    const dir = await Deno.makeTempDir({ prefix: "privsep_sudo_" });
    const allowed = async (rule: string, command: string[]) => {
      const file = join(dir, "sudoers");
      await Deno.writeTextFile(file, rule);
      await Deno.chmod(file, 0o440);
      const out = await new Deno.Command("unshare", {
        args: [
          "-m",
          "sh",
          "-c",
          'f=$1; shift; mount --bind "$f" /etc/sudoers && exec sudo -l -U nobody "$@"',
          "sh",
          file,
          ...command,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      return out.code === 0;
    };
    try {
      for (const sha256 of [undefined, digest]) {
        const rule = sudoersRule(argv, { user: "nobody", sha256 });
        assert.ok(await allowed(rule, argv), rule);
        // Any change to the command line is refused.
        const changed = [
          argv.filter((w) => w !== "--no-lock"),
          [...argv, "--allow-all"],
          argv.map((w) => w.replace("\\", "")),
          argv.map((w) => w.replace("#sysAdmin", "#other")),
        ];
        for (const other of changed) {
          assert.equal(await allowed(rule, other), false, other.join(" "));
        }
      }
      const wrongDigest = sudoersRule(argv, {
        user: "nobody",
        sha256: "00".repeat(32),
      });
      assert.equal(await allowed(wrongDigest, argv), false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("findDenoConfig() finds the nearest deno.json above a file", () => {
  const here = new URL("./command.ts", import.meta.url);
  const expected = join(dirname(dirname(fileURLToPath(here))), "deno.json");
  assert.ok(exists(expected));
  assert.equal(findDenoConfig(here), expected);
  assert.equal(findDenoConfig(new URL("../mod.ts", import.meta.url)), expected);
});

Deno.test("findDenoConfig() returns undefined with no deno.json above", async () => {
  for (const path of ["/deno.json", "/deno.jsonc"]) {
    assert.ok(!exists(path), path);
  }
  const dir = await Deno.makeTempDir({ prefix: "privsep_noconfig_" });
  try {
    for (let d = dir; d !== dirname(d); d = dirname(d)) {
      for (const name of ["deno.json", "deno.jsonc"]) {
        assert.ok(!exists(join(d, name)), `precondition: ${join(d, name)}`);
      }
    }
    const file = join(dir, "a", "b", "mod.ts");
    assert.equal(findDenoConfig(pathToFileURL(file)), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("findDenoConfig() prefers deno.json, accepts deno.jsonc and skips directories", async () => {
  const dir = await Deno.makeTempDir({ prefix: "privsep_config_" });
  try {
    const nested = join(dir, "a", "b", "c");
    await Deno.mkdir(nested, { recursive: true });
    const fileUrl = pathToFileURL(join(nested, "mod.ts"));
    await Deno.writeTextFile(join(dir, "deno.jsonc"), "{}");
    assert.equal(findDenoConfig(fileUrl), join(dir, "deno.jsonc"));
    await Deno.writeTextFile(join(dir, "deno.json"), "{}");
    assert.equal(findDenoConfig(fileUrl), join(dir, "deno.json"));
    // A directory named deno.json is not a config file.
    await Deno.mkdir(join(dir, "a", "b", "deno.json"));
    assert.equal(findDenoConfig(fileUrl), join(dir, "deno.json"));
    await Deno.writeTextFile(join(dir, "a", "deno.jsonc"), "{}");
    assert.equal(findDenoConfig(fileUrl), join(dir, "a", "deno.jsonc"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("layoutProblems() refuses a layout below a sticky world-writable directory", async () => {
  const { layoutProblems } = await import("./command.ts");
  const dir = await Deno.makeTempDir({
    dir: "/tmp",
    prefix: "privsep_layout_",
  });
  try {
    await Deno.writeTextFile(`${dir}/daemon.ts`, "");
    const problems = layoutProblems({
      denoPath: Deno.execPath(),
      daemonPath: `${dir}/daemon.ts`,
      codeRoots: [dir],
      contextId: `file://${dir}/m.ts#ctx`,
    });
    assert.ok(
      problems.some((p) => p.includes('"/tmp" is writable by')),
      problems.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
