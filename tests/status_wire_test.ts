// The status message (protocol v3) as a hostile caller uses it: the service
// user, through its real sudo rule and launcher, writes raw frames to a
// daemon that runs as another unprivileged user. A status is answered at
// once and changes nothing: it takes no slot and no queue place, so the
// queue's limit still refuses calls; an id of a call in flight closes the
// channel; the old magic name "$status" is an unknown entrypoint, refused
// and audited like any other. The warm-up names (WARM_UP_NAMES) run nothing
// of the application and only until its first call.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import {
  decodeMessage,
  encodeMessage,
  Kind,
  type Message,
  PROTOCOL_VERSION,
  WARM_UP_NAMES,
} from "../protocol/messages.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import {
  ensureUser,
  installLaunchers,
  removeUser,
  requireRoot,
  run,
  scratchDir,
  testSudoersFile,
  testUser,
  waitGone,
  writeConfig,
} from "./_helpers.ts";

/** This file's own users: the service account and the daemon's user. */
const CALLER = testUser(import.meta, "c");
const DAEMON = testUser(import.meta, "d");

/** A raw channel to a daemon started by `CALLER` through sudo. */
class RawChannel {
  readonly child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #decoder = new FrameDecoder(1 << 24);
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly received: Message[] = [];
  #waiters: (() => void)[] = [];
  readonly done: Promise<void>;

  constructor(uid: number, gid: number) {
    this.child = new Deno.Command("setpriv", {
      args: [
        `--reuid=${uid}`,
        `--regid=${gid}`,
        "--init-groups",
        "--",
        "sudo",
        "-n",
        testCtx.launcher(),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
      cwd: "/",
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    this.#reader = this.child.stdout.getReader();
    this.done = this.#read();
  }

  async #read(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        for (const body of this.#decoder.push(value)) {
          this.received.push(decodeMessage(body));
        }
        for (const wake of this.#waiters.splice(0)) wake();
      }
    } finally {
      for (const wake of this.#waiters.splice(0)) wake();
    }
  }

  async send(...messages: unknown[][]): Promise<void> {
    for (const m of messages) await this.#writer.write(encodeMessage(m));
  }

  /** Waits until `test` holds for what was received, or the channel ends. */
  async until(test: (ms: Message[]) => boolean): Promise<void> {
    let ended = false;
    this.done.then(() => ended = true);
    while (!test(this.received) && !ended) {
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    assert.ok(test(this.received), "the channel ended before the reply");
  }

  /** Replies (results and errors) for `id`. */
  replies(id: number): Message[] {
    return this.received.filter((m) =>
      (m.kind === Kind.Result || m.kind === Kind.Error) && m.id === id
    );
  }

  audits(): Record<string, unknown>[] {
    return this.received.flatMap((m) =>
      m.kind === Kind.Log && m.record.category.join(".") === "privsep.audit"
        ? [m.record.properties ?? {}]
        : []
    );
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await this.done.catch(() => {});
    await this.child.status;
  }
}

Deno.test(
  "status message: a hostile caller through sudo gains no slot, no queue place and no unaudited call",
  async (t) => {
    requireRoot();
    const sudo = await run(["sh", "-c", "command -v sudo"], {
      allowFail: true,
    });
    if (sudo.code !== 0) {
      throw new Error('this test needs sudo: "apt-get install -y sudo"');
    }
    const dir = await scratchDir();
    const caller = await ensureUser(CALLER, `${dir}/home`);
    const daemonUser = await ensureUser(DAEMON);
    const sudoers = testSudoersFile(import.meta);
    const channels: RawChannel[] = [];
    const open = async (): Promise<RawChannel> => {
      const ch = new RawChannel(caller.uid, caller.gid);
      channels.push(ch);
      await ch.send([Kind.Hello, { v: PROTOCOL_VERSION, pid: Deno.pid }]);
      await ch.until((ms) => ms.some((m) => m.kind === Kind.Hello));
      const hello = ch.received.find((m) => m.kind === Kind.Hello)!;
      assert.equal(
        hello.kind === Kind.Hello && hello.hello.uid,
        daemonUser.uid,
      );
      return ch;
    };
    try {
      const config = await writeConfig(dir, {
        e2e: {
          user: DAEMON,
          capabilities: [],
          concurrency: 1,
          queue_limit: 1,
          launcher_dir: `${dir}/libexec`,
        },
      });
      init({ configFiles: [config] });
      await installLaunchers({
        user: CALLER,
        configFiles: [config],
        specs: [testCtx.id.replace("file://", "")],
        sudoersFile: sudoers,
      });

      await t.step(
        "statuses take no slot and no queue place: the queue still refuses the next call",
        async () => {
          const ch = await open();
          // One call runs, one waits: the queue (limit 1) is full.
          await ch.send(
            [Kind.Call, 1, "ops.ts#sleep", [1500]],
            [Kind.Call, 2, "ops.ts#sleep", [0]],
          );
          const statuses = Array.from({ length: 200 }, (_, i) => 100 + i);
          await ch.send(...statuses.map((id) => [Kind.Status, id]));
          await ch.send([Kind.Call, 3, "ops.ts#echo", ["x"]]);
          await ch.until((ms) =>
            statuses.every((id) =>
              ms.some((m) => m.kind === Kind.Result && m.id === id)
            ) && ms.some((m) => m.kind === Kind.Error && m.id === 3)
          );
          for (const id of statuses) {
            const [reply] = ch.replies(id);
            assert.equal(reply.kind, Kind.Result);
            const value = (reply as { value: Record<string, number> }).value;
            assert.equal(value.running, 1);
            assert.equal(value.queued, 1);
            assert.equal(value.queueLimit, 1);
            // Nothing has completed yet: the daemon's own warm-up
            // (daemon/_warm_session.ts) counts in a session of its own,
            // and a caller's warm-up calls do not count.
            assert.equal(value.completed, 0);
          }
          const [refused] = ch.replies(3);
          assert.equal(
            refused.kind === Kind.Error && refused.error.name,
            "PrivsepQueueFull",
          );
          // The two calls still complete; nothing ran for the statuses.
          await ch.until((ms) =>
            ms.some((m) => m.kind === Kind.Result && m.id === 1) &&
            ms.some((m) => m.kind === Kind.Result && m.id === 2)
          );
          const audited = ch.audits().map((a) => `${a.entrypoint} ${a.outcome}`)
            .sort();
          assert.deepEqual(audited, [
            "ops.ts#echo refused",
            "ops.ts#sleep ok",
            "ops.ts#sleep ok",
          ]);
          for (const a of ch.audits()) assert.equal(a.callerUid, caller.uid);
          await ch.close();
        },
      );

      await t.step(
        '"$status" is an unknown entrypoint: refused, and audited',
        async () => {
          const ch = await open();
          await ch.send([Kind.Call, 1, "$status", []]);
          await ch.until((ms) => ch.replies(1).length > 0 && ms.length > 0);
          const [reply] = ch.replies(1);
          assert.equal(
            reply.kind === Kind.Error && reply.error.name,
            "NotAnEntrypoint",
          );
          await ch.until(() => ch.audits().length > 0);
          const [audit] = ch.audits();
          assert.equal(audit.entrypoint, "$status");
          assert.equal(audit.outcome, "refused");
          assert.equal(audit.callerUid, caller.uid);
          await ch.close();
        },
      );

      await t.step(
        "warm-up calls echo their argument until the application's first call, unaudited and uncounted; then they are refused and audited",
        async () => {
          const ch = await open();
          const [first, second] = WARM_UP_NAMES;
          await ch.send(
            [Kind.Call, 1, first, [42]],
            [Kind.Call, 2, second, [{ x: [1] }]],
            [Kind.Status, 3],
          );
          await ch.until(() => [1, 2, 3].every((id) => ch.replies(id).length));
          const value = (id: number) => {
            const [reply] = ch.replies(id);
            assert.equal(reply.kind, Kind.Result, JSON.stringify(reply));
            return (reply as { value: unknown }).value;
          };
          assert.equal(value(1), 42);
          assert.deepEqual(value(2), { x: [1] });
          assert.equal((value(3) as { completed: number }).completed, 0);
          await ch.send([Kind.Call, 4, "ops.ts#echo", ["y"]]);
          await ch.until(() => ch.replies(4).length > 0);
          assert.equal(value(4), "y");
          await ch.send([Kind.Call, 5, first, [1]], [Kind.Status, 6]);
          await ch.until(() => ch.replies(6).length > 0);
          const [refused] = ch.replies(5);
          assert.equal(
            refused.kind === Kind.Error && refused.error.name,
            "NotAnEntrypoint",
          );
          assert.equal((value(6) as { completed: number }).completed, 1);
          await ch.until(() => ch.audits().length >= 2);
          assert.deepEqual(
            ch.audits().map((a) => `${a.entrypoint} ${a.outcome}`).sort(),
            [`${first} refused`, "ops.ts#echo ok"],
          );
          await ch.close();
        },
      );

      await t.step(
        "a status with the id of a call in flight closes the channel, and the daemon leaves",
        async () => {
          const ch = await open();
          const hello = ch.received.find((m) => m.kind === Kind.Hello)!;
          const pid = hello.kind === Kind.Hello ? hello.hello.pid : 0;
          await ch.send(
            [Kind.Call, 7, "ops.ts#sleep", [5000]],
            [Kind.Status, 7],
          );
          // A fatal message, or (the bug) a reply to the status.
          await ch.until((ms) =>
            ms.some((m) => m.kind === Kind.Fatal || m.kind === Kind.Result)
          );
          assert.equal(ch.replies(7).length, 0, "no reply for id 7");
          const fatal = ch.received.find((m) => m.kind === Kind.Fatal);
          assert.ok(fatal && fatal.kind === Kind.Fatal, "a fatal message");
          assert.match(fatal.error.message, /status id 7 is a call in flight/);
          await ch.done;
          await waitGone(pid, 5000); // throws if the daemon stays
          await ch.close();
        },
      );

      await t.step(
        "a status before the hello closes the channel",
        async () => {
          const ch = new RawChannel(caller.uid, caller.gid);
          channels.push(ch);
          await ch.send([Kind.Status, 1]);
          await ch.until((ms) =>
            ms.some((m) => m.kind === Kind.Fatal || m.kind === Kind.Result)
          );
          const fatal = ch.received.find((m) => m.kind === Kind.Fatal);
          assert.ok(fatal && fatal.kind === Kind.Fatal, "a fatal message");
          assert.match(fatal.error.message, /first message must be a hello/);
          assert.equal(ch.replies(1).length, 0);
          await ch.close();
        },
      );
    } finally {
      for (const ch of channels) {
        try {
          ch.child.kill("SIGKILL");
        } catch { /* gone */ }
        await ch.close().catch(() => {});
      }
      init({ configFiles: [] });
      await Deno.remove(sudoers).catch(() => {});
      await removeUser(CALLER);
      await removeUser(DAEMON);
      await Deno.remove(dir, { recursive: true });
    }
  },
);
