import assert from "node:assert/strict";
import { concat } from "../protocol/_test_util.ts";
import {
  type ChildHandlers,
  DaemonProcess,
  type ExitStatus,
} from "./_child.ts";

/** Spawns `sh -c script`, collecting stdout, stderr and spawn errors. */
function sh(
  script: string,
  args: string[] = [],
  env: Record<string, string> = { PATH: "/usr/bin:/bin" },
  takeOver = true,
) {
  const out: Uint8Array[] = [];
  const buffers = new Set<ArrayBufferLike>();
  let stderr = "";
  let failed: Error | undefined;
  let ended!: () => void;
  const outputEnded = new Promise<void>((resolve) => ended = resolve);
  const handlers: ChildHandlers = {
    // A copy: the view is into a buffer that is read into again.
    data: (chunk, n = chunk.length) => {
      buffers.add(chunk.buffer);
      out.push(chunk.slice(0, n));
    },
    end: () => ended(),
    stderr: (chunk) => stderr += new TextDecoder().decode(chunk),
    spawnFailed: (error) => failed = error,
  };
  const child = new DaemonProcess(
    "/bin/sh",
    ["-c", script, "sh", ...args],
    env,
    handlers,
    takeOver,
  );
  const stdout = async () => {
    await outputEnded;
    return new TextDecoder().decode(concat(...out));
  };
  return {
    child,
    stdout,
    stderr: () => stderr,
    failed: () => failed,
    out,
    buffers,
  };
}

/** Waits until `child` has printed `line` (its first line). */
async function ready(
  run: ReturnType<typeof sh>,
  line = "ready",
): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (new TextDecoder().decode(concat(...run.out)).includes(line)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`the child never printed "${line}"`);
}

Deno.test("DaemonProcess passes argv and env through unchanged, Deno's own path and its flags included", async () => {
  // node:child_process in Deno rewrites the arguments that follow its own
  // path when it takes them for a Deno command line: the daemon's argv
  // (env DENO_DIR=… <deno> run --no-prompt … daemon.ts) must reach it as is.
  const args = [
    "DENO_DIR=/var/cache/privsep/deno",
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--cached-only",
    "--v8-flags=--expose-gc,--max-semi-space-size=1,--optimize-for-size,--no-turbofan",
    "--no-config",
    "--allow-ffi",
    "--allow-read=/opt/app,/etc/app/privsep.toml",
    "/opt/app/vendor/privsep/daemon.ts",
    "--context=file:///opt/app/privsep/mod.ts#sysAdmin",
  ];
  const run = sh('printf "%s\\n" "$@"; echo "--"; env', args, {
    PATH: "/usr/bin:/bin",
    ONLY_THIS: "1",
  });
  const [argv, env] = (await run.stdout()).split("--\n");
  assert.deepEqual(argv.trimEnd().split("\n"), args);
  const vars = env.trim().split("\n").filter((l) => !l.startsWith("PWD="));
  assert.ok(vars.includes("ONLY_THIS=1"), env);
  assert.ok(vars.includes("PATH=/usr/bin:/bin"), env);
  await run.child.exited;
});

for (const takeOver of [true, false]) {
  Deno.test(
    `DaemonProcess delivers a large output byte for byte ${
      takeOver
        ? "through its reused read buffer"
        : "through the pipe's data events (the fallback)"
    }`,
    async () => {
      // 3 MB in reads of at most 64 KiB into one buffer: each read is handed
      // over before the next one overwrites it.
      const pattern = sh(
        "yes 0123456789abcdef | head -c 3000000",
        [],
        undefined,
        takeOver,
      );
      const text = await pattern.stdout();
      assert.equal(text.length, 3_000_000);
      // The takeover reads into one buffer (if Deno's internals change, it
      // falls back to a buffer per read, and this says so).
      if (takeOver) assert.equal(pattern.buffers.size, 1);
      else assert.ok(pattern.buffers.size > 1);
      assert.equal(
        text,
        "0123456789abcdef\n".repeat(176_471).slice(0, 3_000_000),
      );
      await pattern.child.exited;
    },
  );
}

Deno.test("DaemonProcess.kill() sends SIGKILL after an ignored SIGTERM", async () => {
  // Deno's ChildProcess.kill() sends one signal only unless told again: a
  // daemon that ignores SIGTERM must still go.
  const run = sh('trap "" TERM; echo ready; exec sleep 30 </dev/null');
  await ready(run);
  run.child.kill("SIGTERM");
  const early = await Promise.race([
    run.child.exited,
    new Promise((r) => setTimeout(() => r("running"), 300)),
  ]);
  assert.equal(early, "running");
  run.child.kill("SIGKILL");
  const status: ExitStatus = await run.child.exited;
  assert.equal(status.signal, "SIGKILL");
});

Deno.test("DaemonProcess reports the exit code of a process that handles SIGTERM itself", async () => {
  const run = sh(
    'trap "exit 3" TERM; echo ready; while :; do sleep 0.05; done',
  );
  await ready(run);
  run.child.kill("SIGTERM");
  const status = await run.child.exited;
  assert.deepEqual(status, { code: 3, signal: null });
});

Deno.test("DaemonProcess reports a program that does not exist through spawnFailed", async () => {
  let failed: Error | undefined;
  const child = new DaemonProcess("/nonexistent/privsep/helper", [], {}, {
    data: () => {},
    end: () => {},
    stderr: () => {},
    spawnFailed: (error) => failed = error,
  });
  const status = await child.exited;
  assert.equal(status.code, 127);
  assert.equal((failed as { code?: string })?.code, "ENOENT");
  // Writing to it and closing it are harmless.
  await new Promise<void>((resolve) =>
    child.write(new Uint8Array(4), () => resolve())
  );
  child.endInput();
  child.kill("SIGTERM");
});

Deno.test("DaemonProcess.closeOutput() makes a writer blocked on a full pipe fail at once", async () => {
  // The caller's way out of a daemon stuck writing a large reply: EPIPE.
  const run = sh("exec yes privsep");
  await ready(run, "privsep");
  run.child.closeOutput();
  const status = await Promise.race([
    run.child.exited,
    new Promise<ExitStatus>((_, reject) =>
      setTimeout(() => reject(new Error("the writer did not fail")), 5000)
    ),
  ]);
  assert.equal(status.signal, "SIGPIPE");
});

Deno.test("DaemonProcess writes through the pipe's handle: in order, the bytes as they were when handed over, EOF after the last", async () => {
  const run = sh("exec cat");
  // Deno's internals that the direct write uses are still there (if they
  // change, writes fall back to the Writable, and this says so).
  assert.equal(run.child.writesParts, true);
  const big = new Uint8Array(4 * 1024 * 1024).fill(0x42);
  const written: string[] = [];
  const done = (name: string) => (error?: Error | null) => {
    assert.ifError(error);
    written.push(name);
  };
  run.child.write(new TextEncoder().encode("A"), done("A"));
  // More than the pipe holds: the rest is written from Deno's event loop.
  run.child.write(
    [new TextEncoder().encode("<"), big, new TextEncoder().encode(">")],
    done("parts"),
  );
  big.fill(0x43); // after the hand-over: not what is sent
  run.child.write(new TextEncoder().encode("C"), done("C"));
  run.child.endInput(); // shuts stdin only after the pending writes
  const text = await run.stdout();
  assert.equal(text.length, big.length + 4);
  assert.equal(text, "A<" + "B".repeat(big.length) + ">C");
  assert.deepEqual(written, ["A", "parts", "C"]);
  assert.deepEqual(await run.child.exited, { code: 0, signal: null });
});

Deno.test("DaemonProcess.write() reports EPIPE once the daemon has closed its stdin", async () => {
  const run = sh("exec 0<&-; echo ready; exec sleep 30");
  await ready(run);
  const error = await new Promise<Error | null | undefined>((resolve) =>
    run.child.write(new Uint8Array(16), resolve)
  );
  assert.equal((error as { code?: string } | undefined)?.code, "EPIPE");
  run.child.kill("SIGKILL");
  await run.child.exited;
});

Deno.test("DaemonProcess.write() reports a write finished at once only after the code that made it, so that calls made together go out together", async () => {
  // DaemonClient keeps frames in its outbox while a write is being reported,
  // and writes them as one: reported synchronously, every call made in one
  // tick would be a write, and a wake-up of the daemon, of its own.
  const run = sh("exec cat");
  let reported = false;
  run.child.write(new TextEncoder().encode("x"), () => reported = true);
  assert.equal(reported, false);
  await Promise.resolve();
  assert.equal(reported, true);
  run.child.endInput();
  assert.equal(await run.stdout(), "x");
  await run.child.exited;
});
