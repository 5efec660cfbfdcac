// How the serving loop waits for the next bytes of the channel. Private: the
// read loop of serve.ts calls it.
//
// Deno reads stdin asynchronously on a thread of its blocking pool: the
// bytes reach the main thread through a wake-up across threads, which costs
// a sequential call about a third of its latency on a 2-vCPU VM (measured in
// bench/HISTORY.md). A blocking read on the main thread avoids that, but
// while it waits the event loop does not turn: a promise an entrypoint left
// waiting on I/O, a listener or a fetch makes no progress until the next
// call arrives. So it is only used when the context asks for it (`idleRead:
// "blocking"`), and even then only when the daemon has nothing else to do.

/** How an idle daemon waits for the next call (the `idle_read` setting). */
export type IdleRead = "event-loop" | "blocking";

/**
 * Reads the next bytes of stdin into `into`: with a blocking read when
 * `mode` is `"blocking"` and `idle` (no call running or queued, nothing
 * waiting to be written, no timer pending), else with an asynchronous one.
 * `null` at end of input.
 */
export function readChannel(
  into: Uint8Array,
  mode: IdleRead,
  idle: boolean,
): number | null | Promise<number | null> {
  return mode === "blocking" && idle
    ? Deno.stdin.readSync(into)
    : Deno.stdin.read(into);
}

/** The `--idle-read` argument of the serving stage, checked. */
export function parseIdleRead(value: string | undefined): IdleRead {
  if (value === undefined || value === "event-loop") return "event-loop";
  if (value === "blocking") return "blocking";
  throw new RangeError(
    `--idle-read takes "event-loop" or "blocking", got ${
      JSON.stringify(value)
    }`,
  );
}
