// Copyright the privsep authors. Apache-2.0 license.

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  DAEMON_V8_FLAGS,
  daemonArgv,
  daemonCommand,
  type DaemonCommandSpec,
  findDenoConfig,
  launcherDigest,
  launcherPath,
  launcherScript,
  serveV8Flags,
  sudoersRule,
} from "./command.ts";
import {
  CACHE_CHECK_SH,
  CONFIG_CHECK_SH,
  FILES_CHECK_SH,
  RAISE_LIMITS_SH,
} from "./_launcher_check.ts";

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
    "--v8-flags=--expose-gc,--max-semi-space-size=1,--optimize-for-size,--no-turbofan",
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
    "--v8-flags=--expose-gc,--max-semi-space-size=1,--optimize-for-size,--no-turbofan",
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

const LAUNCHER = "/usr/local/libexec/privsep/sysAdmin-0123456789ab";

Deno.test("sudoersRule() allows one launcher, no arguments, in /", () => {
  assert.equal(
    sudoersRule(LAUNCHER, { user: "app" }),
    `app ALL=(root) CWD=/ NOPASSWD: ${LAUNCHER} ""\n`,
  );
});

Deno.test("sudoersRule() rejects wildcards, white space and relative paths", () => {
  for (
    const path of [
      "/opt/*",
      "/opt/a,b",
      "/opt/a:b",
      "/opt/a=b",
      "/opt/a#b",
      "/opt/a!b",
      "/opt/a\\b",
      "/opt/../x",
      "/opt/a?b",
      "/opt/[ab]",
      "/opt/a b",
      "/opt/a\tb",
      "/opt/a\nb",
      "/opt/nul\0",
      "",
      "launcher",
      "./launcher",
    ]
  ) {
    assert.throws(
      () => sudoersRule(path, { user: "app" }),
      TypeError,
      JSON.stringify(path),
    );
  }
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
      () => sudoersRule(LAUNCHER, { user }),
      /not a valid user or %group/,
      JSON.stringify(user),
    );
  }
  for (const user of ["app", "%wheel", "svc-app", "svc_app.1", "machine$"]) {
    assert.match(
      sudoersRule(LAUNCHER, { user }),
      new RegExp(
        `^${user.replace("$", "\\$")} ALL=\\(root\\) CWD=/ NOPASSWD: `,
      ),
    );
  }
});

Deno.test("sudoersRule() prefixes the launcher with its sha256 digest", () => {
  const hex = "ab".repeat(32);
  assert.equal(
    sudoersRule(LAUNCHER, { user: "app", sha256: hex }),
    `app ALL=(root) CWD=/ NOPASSWD: sha256:${hex} ${LAUNCHER} ""\n`,
  );
  const base64 = `${"A".repeat(42)}Q=`;
  assert.match(
    sudoersRule(LAUNCHER, { user: "app", sha256: base64 }),
    new RegExp(`NOPASSWD: sha256:${base64} ${LAUNCHER} ""\n`),
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
      () => sudoersRule(LAUNCHER, { user: "app", sha256 }),
      /SHA-256 digest/,
      sha256,
    );
  }
});

Deno.test("launcherPath() is unique per context id, named after the export", () => {
  const a = launcherPath("file:///opt/a/privsep/mod.ts#sysAdmin");
  const b = launcherPath("file:///opt/b/privsep/mod.ts#sysAdmin");
  assert.match(a, /^\/usr\/local\/libexec\/privsep\/sysAdmin-[0-9a-f]{12}$/);
  assert.notEqual(a, b);
  assert.equal(a, launcherPath("file:///opt/a/privsep/mod.ts#sysAdmin"));
  assert.match(
    launcherPath("file:///opt/m.ts#$ctx", "/srv/launchers/"),
    /^\/srv\/launchers\/_ctx-[0-9a-f]{12}$/,
  );
  assert.throws(() => launcherPath("file:///opt/m.ts#c", "rel"), TypeError);
  assert.throws(() => launcherPath("file:///opt/m.ts#c", "/a b"), TypeError);
});

/** The words a POSIX shell makes of a launcher's exec line. */
async function shellWords(script: string): Promise<string[]> {
  // As if the caller's umask were 027 (the script passes it on).
  const body = script.replace("#!/bin/sh\n", "#!/bin/sh\numask 0027\n")
    .replace("exec /usr/bin/env -i", "printf '%s\\0'")
    .replace(/\nprivsep_check_(cache|files|config|above) [^\n]*\n/g, "\n");
  const out = await new Deno.Command("/bin/sh", {
    args: ["-c", body],
    env: { SUDO_UID: "1000", SUDO_GID: "1001", SUDO_USER: "svc" },
    clearEnv: true,
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
}

Deno.test("launcherScript() runs exactly daemonArgv(), in /, with a fixed environment", async () => {
  const script = launcherScript({
    ...SPEC,
    configFiles: ["/etc/app/it's.toml"],
    contextId: "file:///opt/app/privsep/mod.ts#sysAdmin",
  });
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.ok(script.includes("\nunset IFS\ncd / || exit 126\n"));
  assert.match(
    script,
    /\nprivsep_check_cache \/var\/cache\/privsep\/deno \|\| exit 126\n/,
  );
  // Before deno: the binary, the deno.json and the first stage's modules.
  assert.match(
    script,
    /\nprivsep_check_files \/usr\/local\/bin\/deno \/opt\/app\/deno\.json \/opt\/app\/vendor\/privsep\/daemon\.ts \/opt\/app\/vendor\/privsep\/daemon\/preflight\.ts [^\n]* \|\| exit 126\n/,
  );
  // The deno.json a workspace root, above which Deno reads nothing.
  assert.match(
    script,
    /\nprivsep_check_config \/opt\/app\/deno\.json \|\| exit 126\n/,
  );
  // Nothing that Deno reads on its way up above the code.
  assert.match(
    script,
    /\nprivsep_check_above \/opt \/ \|\| exit 126\nexec \/usr\/bin\/env -i /,
  );
  // Only the checks' functions have parameters; the script uses none.
  assert.doesNotMatch(
    script.replace(CACHE_CHECK_SH, "").replace(FILES_CHECK_SH, "")
      .replace(CONFIG_CHECK_SH, "").replace(RAISE_LIMITS_SH.trimEnd(), ""),
    /\$[@*0-9#]/,
    "uses no argument",
  );
  const argv = daemonArgv({
    ...SPEC,
    configFiles: ["/etc/app/it's.toml"],
  });
  assert.deepEqual(await shellWords(script), [
    "SUDO_UID=1000",
    "SUDO_GID=1001",
    "SUDO_USER=svc",
    "PRIVSEP_UMASK=0027",
    ...argv.slice(1),
  ]);
  // deno and stage 1 run with 022, whatever the caller's.
  assert.match(script, /\nprivsep_umask=\$\(umask\)\numask 022\n/);
});

Deno.test("launcherScript() never starts the unprivileged daemon", () => {
  assert.ok(
    !launcherScript({ ...SPEC, unprivileged: true }).includes(
      "--unprivileged",
    ),
  );
});

Deno.test("launcherDigest() is the SHA-256 of the script", () => {
  assert.equal(
    launcherDigest(""),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});

const VISUDO = "/usr/sbin/visudo";

Deno.test({
  name: "sudoersRule() output is accepted by visudo -c",
  ignore: !exists(VISUDO),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "privsep_sudoers_" });
    try {
      const rules = [
        sudoersRule(LAUNCHER, { user: "app" }),
        sudoersRule("/opt/x_y/a.b+c@d-e", {
          user: "%wheel",
          sha256: "ab".repeat(32),
        }),
        sudoersRule(LAUNCHER, {
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
  name:
    "sudoersRule() output lets sudo run the launcher with no argument, and nothing else",
  ignore: !canAskSudo(),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "privsep_sudo_" });
    const launcher = join(dir, "sysAdmin-0123456789ab");
    const script = launcherScript(SPEC);
    await Deno.writeTextFile(launcher, script, { mode: 0o755 });
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
      for (const sha256 of [undefined, launcherDigest(script)]) {
        const rule = sudoersRule(launcher, { user: "nobody", sha256 });
        assert.ok(await allowed(rule, [launcher]), rule);
        // Any argument, however it is split or merged, is refused.
        for (
          const args of [
            ["run --no-prompt"],
            ["run", "--no-prompt"],
            ["--allow-all"],
            ["x"],
            ["-c", "id"],
            [""],
            [" "],
          ]
        ) {
          assert.equal(
            await allowed(rule, [launcher, ...args]),
            false,
            args.join(" "),
          );
        }
        for (const other of ["/usr/bin/env", "/bin/sh", `${launcher}x`]) {
          assert.equal(await allowed(rule, [other]), false, other);
        }
      }
      const wrongDigest = sudoersRule(launcher, {
        user: "nobody",
        sha256: "00".repeat(32),
      });
      assert.equal(await allowed(wrongDigest, [launcher]), false);
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

Deno.test("serveV8Flags() is predictable mode with a random, non-zero seed", () => {
  const a = serveV8Flags();
  const b = serveV8Flags();
  for (const flags of [a, b]) {
    assert.match(flags, /^--predictable,--random-seed=-?[1-9]\d*$/);
    const seed = Number(flags.slice(flags.lastIndexOf("=") + 1));
    assert.ok(seed === (seed | 0));
  }
  assert.notEqual(a, b);
  assert.equal(serveV8Flags(7), "--predictable,--random-seed=7");
  assert.notEqual(serveV8Flags(0), "--predictable,--random-seed=0");
  // Stage 1 and the sudoers rule keep the flags without them.
  assert.ok(!DAEMON_V8_FLAGS.includes("predictable"));
});

Deno.test("serveV8Flags() refuses a seed that is not a 32-bit integer", () => {
  assert.throws(() => serveV8Flags(2 ** 31), RangeError);
  assert.throws(() => serveV8Flags(1.5), RangeError);
});
