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

Deno.test("privsep --help lists the commands; an unknown one is an error", async () => {
  const help = await cli("--help");
  assert.equal(help.code, 0);
  for (
    const c of ["install", "sudoers", "inspect", "doctor", "caps", "vendor"]
  ) {
    assert.match(help.stdout, new RegExp(`\\b${c}\\b`));
  }
  const bad = await cli("frobnicate");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command "frobnicate"/);
  for (
    const c of ["install", "sudoers", "inspect", "doctor", "caps", "vendor"]
  ) {
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
