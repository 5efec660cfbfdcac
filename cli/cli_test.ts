// The operator CLI, run as a user would: deno run cli/privsep.ts …
import assert from "node:assert/strict";

const CLI = new URL("./privsep.ts", import.meta.url).pathname;
const FIXTURE =
  new URL("../tests/fixtures/privsep/mod.ts", import.meta.url).pathname;

async function cli(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

/** Every command of the CLI. */
const COMMANDS = [
  "install",
  "uninstall",
  "sudoers",
  "inspect",
  "doctor",
  "caps",
  "vendor",
];

Deno.test("privsep --help lists the commands; an unknown one is an error", async () => {
  const help = await cli("--help");
  assert.equal(help.code, 0);
  for (const c of COMMANDS) {
    assert.match(help.stdout, new RegExp(`\\b${c}\\b`));
  }
  const bad = await cli("frobnicate");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command "frobnicate"/);
  for (const c of COMMANDS) {
    const h = await cli(c, "--help");
    assert.equal(h.code, 0, c);
    assert.match(h.stdout, new RegExp(`usage: privsep ${c}`));
  }
});

Deno.test("privsep inspect --json lists contexts, entrypoints and broad shapes", async () => {
  const out = await cli("inspect", "--json", `${FIXTURE}#testCtx`);
  assert.equal(out.code, 0, out.stderr);
  const [ctx] = JSON.parse(out.stdout);
  assert.match(ctx.id, /#testCtx$/);
  assert.equal(ctx.user, "root");
  assert.ok(ctx.warnings.some((w: string) => w.includes("uid 0")));
  const byKey = Object.fromEntries(
    ctx.entrypoints.map((e: { key: string }) => [e.key, e]),
  );
  assert.equal(byKey["audit.ts#fileName"].validates, true);
  assert.equal(
    byKey["audit.ts#fileName"].warnings.length,
    0,
    "a path with a schema is not flagged",
  );
  assert.ok(
    byKey["ops.ts#writeAsync"].warnings[0].includes('parameter "path"'),
  );
  assert.equal(byKey["audit.ts#publicEcho"].auditArgs, true);
  assert.equal(byKey["slow.ts#quick"].timeoutMs, 200);
  // The daemon loads every module below the prefix: the other context's
  // entrypoints (in other/) too, which inspect names.
  assert.ok(
    ctx.modules.some((m: string) => m.endsWith("/privsep/other/other.ts")),
  );
  assert.ok(
    ctx.warnings.some((w: string) =>
      /entrypoint module\(s\) of context .*#otherCtx/.test(w)
    ),
    ctx.warnings.join("\n"),
  );
});

Deno.test("privsep doctor fails with a fix when the context's user is missing", async () => {
  const dir = "/var/lib/privsep-tests";
  await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  const config = `${dir}/doctor-${crypto.randomUUID()}.toml`;
  await Deno.writeTextFile(
    config,
    '[e2e]\nuser = "privsep-nobody-here"\ncapabilities = ["CAP_NET_ADMIN"]\n',
  );
  try {
    const out = await cli(
      "doctor",
      "--json",
      `--config-file=${config}`,
      `${FIXTURE}#testCtx`,
    );
    assert.equal(out.code, 1);
    const checks = JSON.parse(out.stdout);
    const user = checks.find((c: { check: string }) => c.check === "user");
    assert.equal(user.ok, false);
    assert.match(
      user.fix,
      /useradd --system --no-create-home privsep-nobody-here/,
    );
    assert.ok(checks.find((c: { check: string }) => c.check === "libcap").ok);
    assert.ok(
      checks.find((c: { check: string }) => c.check === "capabilities").ok,
    );
  } finally {
    await Deno.remove(config);
  }
});

Deno.test("privsep caps --json shows this process's sets per thread", async () => {
  const out = await cli("caps", "--json", String(Deno.pid));
  assert.equal(out.code, 0, out.stderr);
  const data = JSON.parse(out.stdout);
  assert.equal(data.pid, Deno.pid);
  assert.ok(data.threads.length >= 1);
  assert.ok(Array.isArray(data.threads[0].bounding));
  const missing = await cli("caps", "999999999");
  assert.equal(missing.code, 1);
});

Deno.test("privsep sudoers refuses without --user and prints a rule with it", async () => {
  assert.equal((await cli("sudoers", `${FIXTURE}#testCtx`)).code, 2);
  const out = await cli("sudoers", "--user=app", `${FIXTURE}#testCtx`);
  assert.equal(out.code, 0, out.stderr);
  assert.match(
    out.stdout,
    /^app ALL=\(root\) CWD=\/ NOPASSWD: sha256:[0-9a-f]{64} \/usr\/local\/libexec\/privsep\/testCtx-[0-9a-f]{12} ""$/m,
  );
  assert.doesNotMatch(out.stdout, /Cmnd_Alias|daemon\.ts/);
});

Deno.test("privsep install --dry-run prints the launcher and the rule, writes nothing", async () => {
  const out = await cli(
    "install",
    "--dry-run",
    "--user=app",
    "--sudoers-file=/etc/sudoers.d/privsep-cli-test-none",
    `${FIXTURE}#testCtx`,
  );
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^#!\/bin\/sh$/m);
  assert.match(out.stdout, /^cd \/ \|\| exit 126$/m);
  assert.match(
    out.stdout,
    /privsep-cli-test-none \(mode 440, would be written\)/,
  );
  assert.match(out.stdout, /^app ALL=\(root\) CWD=\/ NOPASSWD: sha256:/m);
  let written = true;
  try {
    Deno.statSync("/etc/sudoers.d/privsep-cli-test-none");
  } catch {
    written = false;
  }
  assert.equal(written, false);
});

Deno.test("privsep install refuses a sudoers file name that sudo would skip", async () => {
  const out = await cli(
    "install",
    "--user=app",
    "--sudoers-file=/etc/sudoers.d/app.conf",
    `${FIXTURE}#testCtx`,
  );
  assert.equal(out.code, 2);
  assert.match(out.stderr, /sudo skips names with a "\."/);
});

Deno.test("privsep install refuses a launcher directory or a sudoers file below a directory another user may write, before it makes or changes anything through it (a twenty-seventh review)", async () => {
  if (Deno.uid() !== 0) throw new Error("this test needs root (chown)");
  await Deno.mkdir("/var/lib/privsep-tests", { recursive: true, mode: 0o755 });
  const dir = await Deno.makeTempDir({
    dir: "/var/lib/privsep-tests",
    prefix: "cli-install-",
  });
  await Deno.chmod(dir, 0o755);
  // svc: the service user's state directory (here uid 65534), where it put
  // a link to a directory only root may read, and one to a root-only file.
  await Deno.mkdir(`${dir}/svc`, { mode: 0o755 });
  await Deno.chown(`${dir}/svc`, 65534, 65534);
  await Deno.mkdir(`${dir}/rootonly`, { mode: 0o700 });
  await Deno.writeTextFile(`${dir}/canary`, "secret", { mode: 0o600 });
  await Deno.symlink(`${dir}/rootonly`, `${dir}/svc/libexec`);
  const config = `${dir}/c.toml`;
  await Deno.writeTextFile(
    config,
    `[e2e]\nlauncher_dir = "${dir}/svc/libexec/privsep"\n`,
  );
  try {
    const out = await cli(
      "install",
      "--user=nobody",
      `--config-file=${config}`,
      `--sudoers-file=/etc/sudoers.d/privsep-cli-test-none`,
      `${FIXTURE}#testCtx`,
    );
    assert.equal(out.code, 1, out.stderr);
    assert.match(out.stderr, new RegExp(`${dir}/svc"? is owned by uid 65534`));
    assert.deepEqual(
      [...Deno.readDirSync(`${dir}/rootonly`)],
      [],
      "root made a directory through the service user's link",
    );
    assert.equal(Deno.statSync(`${dir}/rootonly`).mode! & 0o777, 0o700);
    // A sudoers file in that directory: the temporary file root writes,
    // chowns and chmods there could be the service user's link.
    const rules = await cli(
      "install",
      "--user=nobody",
      `--sudoers-file=${dir}/svc/rules`,
      `${FIXTURE}#testCtx`,
    );
    assert.equal(rules.code, 1, rules.stderr);
    assert.match(
      rules.stderr,
      new RegExp(
        `sudoers rules in ${dir}/svc: .*${dir}/svc"? is owned by uid 65534`,
      ),
    );
    assert.deepEqual(
      [...Deno.readDirSync(`${dir}/svc`)].map((e) => e.name),
      ["libexec"],
    );
    assert.equal(Deno.statSync(`${dir}/canary`).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove("/etc/sudoers.d/privsep-cli-test-none").catch(() => {});
  }
});

Deno.test("privsep inspect and doctor warn about allowed paths a non-root user can redirect", async () => {
  if (Deno.uid() !== 0) throw new Error("this test needs root (chown)");
  await Deno.mkdir("/var/lib/privsep-tests", { recursive: true, mode: 0o755 });
  const dir = await Deno.makeTempDir({
    dir: "/var/lib/privsep-tests",
    prefix: "cli-paths-",
  });
  await Deno.chmod(dir, 0o755);
  // svc: the service's (or the daemon user's) directory, here uid 65534.
  await Deno.mkdir(`${dir}/svc`, { mode: 0o755 });
  await Deno.chown(`${dir}/svc`, 65534, 65534);
  await Deno.mkdir(`${dir}/clean`, { mode: 0o755 });
  await Deno.mkdir(`${dir}/shared`, { mode: 0o775 });
  await Deno.chown(`${dir}/shared`, 0, 100);
  await Deno.chmod(`${dir}/shared`, 0o775);
  // A root-owned link into the service's directory.
  await Deno.symlink(`${dir}/svc`, `${dir}/link`);
  const config = `${dir}/c.toml`;
  await Deno.writeTextFile(
    config,
    `[e2e]\nuser = "root"\ncapabilities = []\n[e2e.permissions]\nwrite = ["${dir}/svc/out.log", "${dir}/clean/out.log", "${dir}/shared/x"]\nread = ["${dir}/link/in.txt", "${dir}/clean"]\n`,
  );
  try {
    const out = await cli(
      "inspect",
      "--json",
      `--config-file=${config}`,
      `${FIXTURE}#testCtx`,
    );
    assert.equal(out.code, 0, out.stderr);
    const [ctx] = JSON.parse(out.stdout);
    // (Each write path here does not exist yet, which another warning says.)
    const about = (path: string) =>
      ctx.warnings.filter((w: string) =>
        w.includes(` path ${path} `) && !w.includes("does not exist yet")
      );
    const [svc] = about(`${dir}/svc/out.log`);
    assert.match(svc, /^allowed write path/);
    assert.match(svc, new RegExp(`${dir}/svc is owned by uid 65534, not root`));
    assert.match(svc, /Deno follows symbolic links/);
    assert.match(
      about(`${dir}/shared/x`)[0],
      new RegExp(`${dir}/shared is writable by group 100`),
    );
    assert.match(
      about(`${dir}/link/in.txt`)[0],
      new RegExp(
        `^allowed read path .*${dir}/svc is owned by uid 65534, not root \\(${dir}/link is a symbolic link to ${dir}/svc\\)`,
      ),
    );
    assert.deepEqual(
      about(`${dir}/clean/out.log`),
      [],
      "root-owned: no warning",
    );
    assert.deepEqual(about(`${dir}/clean`), []);

    const doctor = await cli(
      "doctor",
      "--json",
      `--config-file=${config}`,
      `${FIXTURE}#testCtx`,
    );
    const checks = JSON.parse(doctor.stdout);
    const paths = checks.find((c: { check: string }) =>
      c.check === "allowed paths"
    );
    assert.equal(paths.ok, false);
    assert.equal(paths.warn, true);
    assert.match(paths.detail, new RegExp(`${dir}/svc is owned by uid 65534`));
    assert.match(paths.fix, /chown root:root/);
    // A uid-0 context with a write path not made yet: stage 1 refuses it.
    const writes = checks.find((c: { check: string }) =>
      c.check === "write paths"
    );
    assert.equal(writes.ok, false);
    assert.match(
      writes.detail,
      new RegExp(
        `the write path ${dir}/svc/out.log does not exist yet: .*refuses to start`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("privsep doctor and inspect print no terminal control from names another user made (a sixteenth review)", async () => {
  if (Deno.uid() !== 0) throw new Error("this test needs root (chown)");
  await Deno.mkdir("/var/lib/privsep-tests", { recursive: true, mode: 0o755 });
  const dir = await Deno.makeTempDir({
    dir: "/var/lib/privsep-tests",
    prefix: "cli-escape-",
  });
  try {
    await Deno.chmod(dir, 0o755);
    // The service's directory, and in it a name that erases a line, moves
    // up and sets the window title; a root-owned link leads there.
    await Deno.mkdir(`${dir}/svc`, { mode: 0o755 });
    await Deno.chown(`${dir}/svc`, 65534, 65534);
    const evil = "\x1b[2K\x1b[1A\x1b]0;owned\x07\u202e";
    await Deno.mkdir(`${dir}/svc/${evil}`);
    await Deno.symlink(`${dir}/svc/${evil}`, `${dir}/link`);
    const config = `${dir}/c.toml`;
    await Deno.writeTextFile(
      config,
      `[e2e]\nuser = "root"\ncapabilities = []\n[e2e.permissions]\nread = ["${dir}/link/in.txt"]\n`,
    );
    for (const command of ["doctor", "inspect"]) {
      const out = await cli(
        command,
        `--config-file=${config}`,
        `${FIXTURE}#testCtx`,
      );
      const text = out.stdout + out.stderr;
      assert.match(text, /\?\[2K\?\[1A\?\]0;owned\?\?/, `${command}: ${text}`);
      // deno-lint-ignore no-control-regex
      assert.doesNotMatch(text, /[\x1b\x07\u202e]/, command);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Deno's --allow-write follows a symbolic link at the allowed path (why inspect and doctor warn)", async () => {
  if (Deno.uid() !== 0) throw new Error("this test needs root (chown)");
  await Deno.mkdir("/var/lib/privsep-tests", { recursive: true, mode: 0o755 });
  const dir = await Deno.makeTempDir({
    dir: "/var/lib/privsep-tests",
    prefix: "cli-follow-",
  });
  try {
    await Deno.chmod(dir, 0o755);
    const secret = `${dir}/root-only`;
    await Deno.writeTextFile(secret, "original\n", { mode: 0o600 });
    // What a service user could do in a directory it owns.
    await Deno.mkdir(`${dir}/svc`);
    await Deno.symlink(secret, `${dir}/svc/out.log`);
    const script = `${dir}/write.ts`;
    await Deno.writeTextFile(
      script,
      `Deno.writeTextFileSync(${
        JSON.stringify(`${dir}/svc/out.log`)
      }, "overwritten\\n");\n`,
    );
    const write = (allowed: string) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-config",
          "--no-prompt",
          `--allow-read=${script}`,
          `--allow-write=${allowed}`,
          script,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    // The permission is real: another path is refused.
    assert.equal((await write(`${dir}/elsewhere`)).code, 1);
    assert.equal(await Deno.readTextFile(secret), "original\n");
    const out = await write(`${dir}/svc/out.log`);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(await Deno.readTextFile(secret), "overwritten\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("privsep inspect and doctor report verify = false", async () => {
  await Deno.mkdir("/var/lib/privsep-tests", { recursive: true, mode: 0o755 });
  const config = `/var/lib/privsep-tests/verify-${crypto.randomUUID()}.toml`;
  await Deno.writeTextFile(
    config,
    '[e2e]\nuser = "root"\ncapabilities = []\nverify = false\n',
  );
  try {
    const args = [`--config-file=${config}`, `${FIXTURE}#testCtx`];
    const [ctx] = JSON.parse((await cli("inspect", "--json", ...args)).stdout);
    assert.equal(ctx.verify, false);
    assert.ok(ctx.warnings.some((w: string) => w.startsWith("verify = false")));
    const checks = JSON.parse((await cli("doctor", "--json", ...args)).stdout);
    const check = checks.find((c: { check: string }) =>
      c.check === "verification"
    );
    assert.equal(check.warn, true);
    const keeper = checks.find((c: { check: string }) => c.check === "keeper");
    assert.equal(keeper.ok, true, keeper.detail);
    assert.match(keeper.detail, /\/usr\/bin\/setpriv and \/bin\/bash/);
    assert.match(check.detail, /does not check the daemon's credentials/);
  } finally {
    await Deno.remove(config);
  }
});

Deno.test("privsep vendor prints import paths relative to the application's deno.json, with every export", async () => {
  // vendor refuses, as root, a destination that others could write (/tmp).
  await Deno.mkdir("/var/lib/privsep-tests", { recursive: true, mode: 0o755 });
  const base = await Deno.makeTempDir({
    dir: "/var/lib/privsep-tests",
    prefix: "privsep-vendor-",
  });
  await Deno.chmod(base, 0o755);
  try {
    const app = `${base}/app`;
    await Deno.mkdir(`${app}/privsep`, { recursive: true });
    await Deno.writeTextFile(`${app}/deno.json`, "{}\n");
    // Run from elsewhere: the paths must not depend on the current directory.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "vendor", "app/vendor/privsep"],
      cwd: base,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(stdout, new RegExp(`Add to ${app}/deno\\.json`));
    const { imports } = JSON.parse(stdout.slice(stdout.indexOf("{")));
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(imports).filter(([k]) => k.startsWith("@privsep/")),
      ),
      {
        "@privsep/privsep": "./vendor/privsep/mod.ts",
        "@privsep/privsep/caps": "./vendor/privsep/caps/mod.ts",
        "@privsep/privsep/cli": "./vendor/privsep/cli/privsep.ts",
        "@privsep/privsep/protocol": "./vendor/privsep/protocol/mod.ts",
        "@privsep/privsep/daemon": "./vendor/privsep/daemon.ts",
        "@privsep/privsep/testing": "./vendor/privsep/testing/mod.ts",
      },
    );
    // docs/install.md: the application as it is set up there type-checks,
    // and with "nodeModulesDir": "manual" it needs @types/node for that.
    await Deno.writeTextFile(
      `${app}/deno.json`,
      JSON.stringify({ imports, nodeModulesDir: "manual" }),
    );
    await Deno.mkdir(`${app}/node_modules/@types`, { recursive: true });
    const ROOT = new URL("../", import.meta.url).pathname;
    for (const pkg of ["@logtape", "smol-toml", "undici-types"]) {
      const cp = await new Deno.Command("cp", {
        args: ["-a", `${ROOT}node_modules/${pkg}`, `${app}/node_modules/`],
      }).output();
      assert.equal(cp.code, 0, pkg);
    }
    await Deno.writeTextFile(
      `${app}/privsep/mod.ts`,
      `import { caps, PrivContext, sleep } from "@privsep/privsep";
import { CAP_NET_ADMIN } from "@privsep/privsep/caps";
export const net = new PrivContext({
  module: import.meta,
  name: "net",
  capabilities: [caps.CAP_NET_BIND_SERVICE, CAP_NET_ADMIN],
});
export const wait = net.entrypoint(import.meta, async function wait(ms: number): Promise<void> {
  await sleep(ms);
});
`,
    );
    await Deno.writeTextFile(
      `${app}/main_test.ts`,
      `import { inProcess } from "@privsep/privsep/testing";
import * as privsep from "./privsep/mod.ts";
Deno.test("wait", async () => {
  using _ = inProcess();
  await privsep.wait(1);
});
`,
    );
    const check = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["check", "main_test.ts"],
        cwd: app,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const without = await check();
    assert.notEqual(without.code, 0);
    assert.match(
      new TextDecoder().decode(without.stderr),
      /npm:@types\/node/,
    );
    const cp = await new Deno.Command("cp", {
      args: [
        "-a",
        `${ROOT}node_modules/@types/node`,
        `${app}/node_modules/@types/`,
      ],
    }).output();
    assert.equal(cp.code, 0);
    const checked = await check();
    assert.equal(checked.code, 0, new TextDecoder().decode(checked.stderr));
    const test = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "main_test.ts"],
      cwd: app,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(test.code, 0, new TextDecoder().decode(test.stderr));
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("privsep inspect warns about a write path above the code of a uid-0 context, which stage 1 refuses", async () => {
  await Deno.mkdir("/var/lib/privsep-tests", { recursive: true, mode: 0o755 });
  const config = `/var/lib/privsep-tests/above-${crypto.randomUUID()}.toml`;
  const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
  const above = root.slice(0, root.lastIndexOf("/")) || "/";
  try {
    for (const [write, warned] of [[above, true], [`${root}/tests/x`, false]]) {
      await Deno.writeTextFile(
        config,
        `[e2e]\nuser = "root"\ncapabilities = []\n[e2e.permissions]\nwrite = [${
          JSON.stringify(write)
        }]\n`,
      );
      const [ctx] = JSON.parse(
        (await cli("inspect", "--json", `--config-file=${config}`, FIXTURE))
          .stdout,
      );
      assert.equal(
        ctx.warnings.some((w: string) =>
          w.startsWith(`the write path ${write} holds ${root}`)
        ),
        warned,
        JSON.stringify(ctx.warnings),
      );
      // A write path not made yet: its directory would get the rule, so
      // this uid-0 context's daemon refuses to start.
      assert.equal(
        ctx.warnings.some((w: string) =>
          w.startsWith(`the write path ${write} does not exist yet`) &&
          w.includes("refuses to start")
        ),
        String(write).endsWith("/tests/x"),
        JSON.stringify(ctx.warnings),
      );
    }
  } finally {
    await Deno.remove(config);
  }
});
