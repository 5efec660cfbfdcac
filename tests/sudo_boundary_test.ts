// The sudo boundary, attacked as the service user who holds the sudoers rule
// that `privsep install` writes. sudo compares a rule's arguments with the
// user's arguments joined by spaces, so argv words may be merged or split
// freely: with a rule naming the daemon's command line, "run --no-prompt" as
// one word made Deno run a file of that name from the caller's cwd as full
// root. The rule now names a root-owned launcher with no arguments (""):
// nothing the user passes may change what root runs.
import assert from "node:assert/strict";
import {
  DENO,
  ensureUser,
  installLaunchers,
  removeUser,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  testSudoersFile,
  testUser,
  writeConfig,
} from "./_helpers.ts";

/** This file's own users: the service's (the caller), and its daemon's. */
const CALLER = testUser(import.meta, "c");
const DAEMON = testUser(import.meta, "d");
const SPEC = `${ROOT}/tests/fixtures/privsep/mod.ts#testCtx`;

Deno.test(
  "sudo boundary: nothing the service user passes changes what root runs",
  async (t) => {
    requireRoot();
    const dir = await scratchDir();
    const home = `${dir}/home`;
    const sudoers = testSudoersFile(import.meta);
    try {
      const caller = await ensureUser(CALLER, home);
      await ensureUser(DAEMON);
      const config = await writeConfig(dir, {
        e2e: {
          user: DAEMON,
          capabilities: ["CAP_NET_BIND_SERVICE"],
          launcher_dir: `${dir}/libexec`,
        },
      });
      const script = (mode: string) => [
        DENO,
        "run",
        "-A",
        `--config=${ROOT}/deno.json`,
        `${ROOT}/tests/fixtures/caller.ts`,
        config,
        mode,
      ];
      // A root-only secret: a static text import reads it without any permission
      // flag, so attacker code that runs as root prints it.
      const secret = `${dir}/secret`;
      const token = crypto.randomUUID();
      await Deno.writeTextFile(secret, token, { mode: 0o600 });
      const evil = `import s from ${
        JSON.stringify(secret)
      } with { type: "text" };\nconsole.log(s);\n`;
      /** Runs sudo as the caller in `cwd`; fails if root printed the secret. */
      const sudoAs = async (what: string, args: string[], cwd = home) => {
        const out = await run([
          "setpriv",
          `--reuid=${caller.uid}`,
          `--regid=${caller.gid}`,
          "--init-groups",
          "--",
          "sudo",
          "-n",
          ...args,
        ], { allowFail: true, cwd });
        assert.ok(
          !out.stdout.includes(token) && !out.stderr.includes(token),
          `${what}: the caller's code ran as root and printed the secret`,
        );
        return out;
      };
      /** A cwd owned by the caller holding `name` as attacker code. */
      const plant = async (name: string) => {
        const cwd = `${home}/w-${crypto.randomUUID()}`;
        await Deno.mkdir(cwd, { recursive: true });
        if (!name.includes("/") && name !== "") {
          await Deno.writeTextFile(`${cwd}/${name}`, evil);
        }
        await Deno.writeTextFile(`${cwd}/evil.ts`, evil);
        await run(["chown", "-R", `${caller.uid}:${caller.gid}`, home]);
        return cwd;
      };
      await installLaunchers({
        user: CALLER,
        configFiles: [config],
        specs: [SPEC],
        sudoersFile: sudoers,
      });
      const launcher = (await run(script("launcher"))).stdout.trim();
      const argv: string[] = JSON.parse((await run(script("command"))).stdout);
      // What a rule naming the daemon's command line allowed (caller is root
      // here, so command() is the direct argv).
      const daemonArgv = argv.slice(argv.indexOf("/usr/bin/env"));
      const rules = await Deno.readTextFile(sudoers);

      await t.step(
        "the rule names the launcher, no arguments, no alias",
        () => {
          assert.ok(rules.includes(` ${launcher} ""\n`), rules);
          assert.doesNotMatch(rules, /Cmnd_Alias/);
          assert.match(rules, /CWD=\/ NOPASSWD: sha256:[0-9a-f]{64} /);
        },
      );

      await t.step(
        "the launcher with no arguments starts the daemon",
        async () => {
          const out = await sudoAs("launcher", [launcher]);
          // stdin is empty: the daemon says hello, sees EOF and exits 0.
          assert.equal(out.code, 0, out.stderr);
        },
      );

      await t.step(
        "every merge of two words of the daemon's command line is refused",
        async () => {
          for (let i = 0; i + 1 < daemonArgv.length; i++) {
            const merged = [
              ...daemonArgv.slice(0, i),
              `${daemonArgv[i]} ${daemonArgv[i + 1]}`,
              ...daemonArgv.slice(i + 2),
            ];
            const out = await sudoAs(
              `merging ${JSON.stringify(merged[i])}`,
              merged,
              await plant(merged[i]),
            );
            assert.notEqual(out.code, 0, `merge ${i} was allowed`);
            assert.match(out.stderr, /a password is required|not allowed/);
          }
          // And the unmerged command line itself.
          const out = await sudoAs("the daemon's command", daemonArgv);
          assert.match(out.stderr, /a password is required|not allowed/);
        },
      );

      await t.step("the launcher with any argument is refused", async () => {
        for (
          const args of [
            ["run --no-prompt"],
            ["run", "--no-prompt"],
            ["evil.ts"],
            [""],
            ["-A", "evil.ts"],
            [`--context=${SPEC.replace("#testCtx", "#otherCtx")}`],
          ]
        ) {
          const out = await sudoAs(
            JSON.stringify(args),
            [launcher, ...args],
            await plant(args[0]),
          );
          assert.notEqual(out.code, 0, `${JSON.stringify(args)} was allowed`);
          assert.match(out.stderr, /a password is required|not allowed/);
        }
      });

      await t.step(
        "sudo options cannot change its directory, environment or descriptors",
        async () => {
          const cwd = await plant("run --no-prompt");
          for (
            const [what, args] of [
              ["-C", ["-C", "5", launcher]],
              ["another group", ["-g", "root", launcher]],
              ["another user", ["-u", DAEMON, launcher]],
            ] as const
          ) {
            const out = await sudoAs(what, [...args], cwd);
            assert.notEqual(out.code, 0, `${what} was allowed: ${out.stderr}`);
          }
          // What sudo may pass on from the caller's environment, the
          // launcher drops (env -i); -D is overridden by the rule's CWD=/.
          // The daemon starts as usual and nothing planted runs.
          for (
            const [what, args] of [
              ["an assignment", [`DENO_DIR=${cwd}`, launcher]],
              ["-E", ["-E", launcher]],
              ["--preserve-env", ["--preserve-env=DENO_DIR,PATH", launcher]],
              ["-D", ["-D", cwd, launcher]],
            ] as const
          ) {
            const out = await sudoAs(what, [...args], cwd);
            assert.ok(
              out.code === 0 ||
                /not allowed|password is required/.test(out.stderr),
              `${what}: ${out.stderr}`,
            );
          }
        },
      );

      await t.step(
        "the launcher uses none of its environment and runs in /",
        async () => {
          // Root checks what runs: a launcher started with a hostile
          // environment and cwd (as root could, or a looser sudoers) still runs
          // exactly the daemon, in /.
          const cwd = await plant("run --no-prompt");
          await Deno.writeTextFile(
            `${cwd}/deno.json`,
            JSON.stringify({ imports: { "@logtape/logtape": "./evil.ts" } }),
          );
          const out = await run([launcher], {
            allowFail: true,
            cwd,
            env: {
              DENO_DIR: cwd,
              DENO_CERT: `${cwd}/evil.ts`,
              NODE_OPTIONS: `--require=${cwd}/evil.ts`,
              LD_PRELOAD: `${cwd}/lib.so`,
              PATH: cwd,
              IFS: "/",
            },
          });
          assert.equal(out.code, 0, out.stderr);
          assert.ok(!out.stdout.includes(token), "planted code ran");
        },
      );
    } finally {
      await Deno.remove(sudoers).catch(() => {});
      await removeUser(CALLER);
      await removeUser(DAEMON);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
