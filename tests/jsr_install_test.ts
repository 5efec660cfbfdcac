// From "the application imports @privsep/privsep from a registry" to a
// privileged call in production, with no checkout of privsep: the package's
// published file set (what `deno publish --dry-run` lists) is served over
// HTTP on 127.0.0.1, standing in for jsr.io; an application outside this
// repository imports it by URL; the one install command runs from that URL as
// root; the service calls through real sudo as its own unprivileged user.
// Then an upgrade: a changed version is served, install runs again, the
// daemon runs the new code and the old version's files are gone.
//
// No step reads this repository's files, except the server (the registry)
// and `deno install` (npm packages from the machine's npm cache or registry).
import assert from "node:assert/strict";
import {
  DENO,
  ensureUser,
  removeUser,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  testSudoersFile,
  testUser,
} from "./_helpers.ts";

/** This file's own users: the service's, and its daemon's. */
const SERVICE = testUser(import.meta, "svc");
const DAEMON = testUser(import.meta, "d");

/** The files `deno publish` would publish, by path relative to the package. */
async function publishedFiles(): Promise<Map<string, Uint8Array>> {
  const out = await run([DENO, "publish", "--dry-run", "--allow-dirty"], {
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  });
  const prefix = `file://${ROOT}/`;
  const files = new Map<string, Uint8Array>();
  for (
    const m of (out.stdout + out.stderr).matchAll(/^\s+(file:\/\/\S+) \(/gm)
  ) {
    const name = m[1].slice(prefix.length);
    if (name === ".git") continue; // a git worktree's pointer file
    files.set(name, await Deno.readFile(`${ROOT}/${name}`));
  }
  assert.ok(files.has("mod.ts") && files.has("cli/privsep.ts"), out.stderr);
  return files;
}

/** Serves versions of the package at /<version>/<file>, like a registry. */
function serve(versions: Map<string, Map<string, Uint8Array>>) {
  const types: Record<string, string> = {
    ts: "application/typescript; charset=utf-8",
    json: "application/json",
    md: "text/markdown",
  };
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const path = decodeURIComponent(new URL(request.url).pathname);
      const [, version, ...rest] = path.split("/");
      const body = versions.get(version)?.get(rest.join("/"));
      if (!body) return new Response("not found", { status: 404 });
      const ext = path.slice(path.lastIndexOf(".") + 1);
      return new Response(body.slice(), {
        headers: { "content-type": types[ext] ?? "text/plain" },
      });
    },
  );
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A copy of the file set with `edit` applied to some files. */
function edited(
  files: Map<string, Uint8Array>,
  edit: Record<string, (text: string) => string>,
): Map<string, Uint8Array> {
  const copy = new Map(files);
  for (const [name, f] of Object.entries(edit)) {
    copy.set(
      name,
      encoder.encode(f(decoder.decode(files.get(name) ?? new Uint8Array()))),
    );
  }
  return copy;
}

Deno.test(
  "jsr install: served by URL, installed by one command as root, called through sudo, upgraded",
  async () => {
    requireRoot();
    const published = await publishedFiles();
    // Version 1 has a file version 2 no longer has.
    const v1 = edited(published, {
      "cli/_files.json": (t) => {
        const m = JSON.parse(t);
        m.files.push("old_only.ts");
        return JSON.stringify(m);
      },
      "old_only.ts": () => "export const OLD = 1;\n",
    });
    const v2 = edited(published, {
      "deno.json": (t) =>
        JSON.stringify({ ...JSON.parse(t), version: "9.9.9" }),
      "mod.ts": (t) =>
        `${t}\n/** The e2e test's mark. */\nexport const E2E_MARK = "v2";\n`,
    });
    const base = await scratchDir();
    const app = `${base}/app`;
    const data = `${base}/data`;
    const sudoers = testSudoersFile(import.meta);
    const server = serve(new Map([["v1", v1], ["v2", v2]]));
    const url = `http://127.0.0.1:${server.addr.port}`;
    try {
      const service = await ensureUser(SERVICE, `${base}/home`);
      const daemon = await ensureUser(DAEMON);
      // 1. The application, as its developer writes it: privsep by URL.
      await Deno.mkdir(`${app}/privsep`, { recursive: true });
      await Deno.writeTextFile(
        `${app}/deno.json`,
        JSON.stringify(
          {
            nodeModulesDir: "manual",
            imports: {
              "@privsep/privsep": `${url}/v1/mod.ts`,
              "@privsep/privsep/testing": `${url}/v1/testing/mod.ts`,
              "@logtape/logtape": "npm:@logtape/logtape@^2.4.2",
              "smol-toml": "npm:smol-toml@^1.9.1",
            },
          },
          null,
          2,
        ),
      );
      await Deno.writeTextFile(
        `${app}/privsep/mod.ts`,
        `import { caps, PrivContext } from "@privsep/privsep";
export const appCtx = new PrivContext({
  module: import.meta,
  name: "appCtx",
  cfgSection: "app",
  capabilities: [caps.CAP_DAC_OVERRIDE],
  permissions: { write: [${JSON.stringify(data)}] },
});
`,
      );
      await Deno.writeTextFile(
        `${app}/privsep/status.ts`,
        `import * as privsep from "@privsep/privsep";
import { appCtx } from "./mod.ts";
export const writeStatus = appCtx.entrypoint(import.meta, async function writeStatus(text: string): Promise<{ uid: number; mark: string }> {
  await Deno.writeTextFile(${JSON.stringify(`${data}/status`)}, text);
  return { uid: Deno.uid(), mark: String((privsep as Record<string, unknown>).E2E_MARK ?? "v1") };
});
`,
      );
      await Deno.writeTextFile(
        `${app}/main.ts`,
        `import { init } from "@privsep/privsep";
import * as status from "./privsep/status.ts";
import { appCtx } from "./privsep/mod.ts";
init({ configFiles: [Deno.args[0]] });
console.log(JSON.stringify({ ...(await status.writeStatus("deployed")), daemon: appCtx.daemon }));
await appCtx.stop();
`,
      );
      // The developer's unit test with the testing kit, by URL.
      await Deno.writeTextFile(
        `${app}/status_test.ts`,
        `import { inProcess } from "@privsep/privsep/testing";
import { writeStatus } from "./privsep/status.ts";
Deno.test("writeStatus in process", async () => {
  using _p = inProcess();
  await Deno.mkdir(${JSON.stringify(data)}, { recursive: true });
  const r = await writeStatus("unit");
  if (r.mark !== "v1") throw new Error(r.mark);
});
`,
      );
      await run([DENO, "install", "--allow-import"], { cwd: app });
      const unit = await run([
        DENO,
        "test",
        "-A",
        "--no-check",
        "status_test.ts",
      ], {
        cwd: app,
        allowFail: true,
      });
      assert.equal(unit.code, 0, unit.stdout + unit.stderr);
      await Deno.remove(data, { recursive: true });

      const config = `${base}/app.toml`;
      await Deno.writeTextFile(
        config,
        `[app]\nuser = "${DAEMON}"\nlauncher_dir = "${base}/libexec"\n`,
      );
      await Deno.mkdir(data, { mode: 0o700 });
      await Deno.chmod(data, 0o700);
      // 2. Deployed root-owned, then the one install command, from the URL.
      await run(["chown", "-R", "root:root", app]);
      await run(["chmod", "-R", "go-w", app]);
      const install = (version: string, extra: string[] = []) => [
        DENO,
        "run",
        "-A",
        `--config=${app}/deno.json`,
        `${url}/${version}/cli/privsep.ts`,
        "install",
        `--user=${SERVICE}`,
        `--vendor-dir=${app}/vendor/privsep`,
        `--sudoers-file=${sudoers}`,
        `--config-file=${config}`,
        ...extra,
        `${app}/privsep/mod.ts#appCtx`,
      ];
      const dry = await run(install("v1", ["--dry-run"]), { cwd: app });
      assert.match(dry.stdout, /would vendor privsep/);
      await assert.rejects(Deno.stat(`${app}/vendor`), Deno.errors.NotFound);
      await assert.rejects(Deno.stat(sudoers), Deno.errors.NotFound);

      const first = await run(install("v1"), { cwd: app, allowFail: true });
      assert.equal(first.code, 0, first.stdout + first.stderr);
      assert.match(first.stdout, /vendored privsep 0\.1\.0 \(\d+ files\)/);
      assert.ok((await Deno.stat(`${app}/vendor/privsep/old_only.ts`)).isFile);
      const appConfig = JSON.parse(await Deno.readTextFile(`${app}/deno.json`));
      assert.equal(
        appConfig.imports["@privsep/privsep"],
        "./vendor/privsep/mod.ts",
      );
      assert.equal(
        appConfig.imports["@privsep/privsep/testing"],
        "./vendor/privsep/testing/mod.ts",
      );
      const launcher = /wrote (\S+\/libexec\/appCtx-[0-9a-f]{12})\n/.exec(
        first.stdout,
      )?.[1];
      assert.ok(launcher, first.stdout);
      assert.match(
        await Deno.readTextFile(launcher),
        new RegExp(`${app}/vendor/privsep/daemon\\.ts`),
      );
      assert.match(
        await Deno.readTextFile(sudoers),
        new RegExp(
          `^${SERVICE} ALL=\\(root\\) CWD=/ NOPASSWD: sha256:[0-9a-f]{64} ${launcher} ""$`,
          "m",
        ),
      );
      // Every file of the vendored copy is root-owned and not writable by others.
      for (
        const line
          of (await run(["find", `${app}/vendor`, "-printf", "%U %m %p\n"]))
            .stdout.trim().split("\n")
      ) {
        const [uid, mode] = line.split(" ");
        assert.equal(uid, "0", line);
        assert.equal(Number.parseInt(mode, 8) & 0o022, 0, line);
      }
      // Idempotent.
      const again = await run(install("v1"), { cwd: app });
      assert.match(again.stdout, /unchanged .*deno\.json/);
      assert.doesNotMatch(again.stdout, /^wrote /m);

      // 3. The service, as its own user, through sudo.
      const env = {
        HOME: `${base}/home`,
        USER: SERVICE,
        PATH: "/usr/bin:/bin",
        DENO_DIR: `${base}/home/.cache/deno`,
      };
      const callAsService = async () => {
        const out = await run([
          "setpriv",
          `--reuid=${service.uid}`,
          `--regid=${service.gid}`,
          "--init-groups",
          "--",
          DENO,
          "run",
          "-A",
          `--config=${app}/deno.json`,
          `${app}/main.ts`,
          config,
        ], { allowFail: true, env, cwd: `${base}/home` });
        assert.equal(out.code, 0, out.stderr);
        return JSON.parse(out.stdout);
      };
      const called = await callAsService();
      assert.equal(called.uid, daemon.uid);
      assert.equal(called.mark, "v1");
      assert.equal(called.daemon.verified, true);
      assert.equal(await Deno.readTextFile(`${data}/status`), "deployed");

      // 4. Upgrade: version 2 served, the same command from its URL.
      const upgrade = await run(install("v2"), { cwd: app, allowFail: true });
      assert.equal(upgrade.code, 0, upgrade.stdout + upgrade.stderr);
      assert.match(
        upgrade.stdout,
        /vendored privsep 9\.9\.9 .*replacing the previous copy/,
      );
      await assert.rejects(
        Deno.stat(`${app}/vendor/privsep/old_only.ts`),
        Deno.errors.NotFound,
      );
      assert.deepEqual(
        [...Deno.readDirSync(`${app}/vendor`)].map((e) => e.name),
        ["privsep"],
      );
      const upgraded = await callAsService();
      assert.equal(upgraded.mark, "v2");
      assert.equal(upgraded.uid, daemon.uid);
    } finally {
      await server.shutdown();
      await Deno.remove(sudoers).catch(() => {});
      await removeUser(SERVICE);
      await removeUser(DAEMON);
      await Deno.remove(base, { recursive: true }).catch(() => {});
    }
  },
);
