// A listening socket cannot cross the msgpack channel, so the privileged
// function does not hand one out: it serves, in the daemon, for as long as
// its call lasts. The caller cancels the call (callWith({ signal }) and
// abort()) to stop it; callSignal() then aborts here, Deno.serve closes the
// socket, and the call's slot is freed.
//
// Narrow: a fixed address, a port from a fixed list, a fixed answer. It never
// returns a way to run code or reach files (the context has neither).
import { callSignal } from "../../../mod.ts";
import { bindCtx, HOSTNAME, STATUS_PORTS } from "./mod.ts";
import { portIn } from "./schemas.ts";

/** The status page's body. */
export const STATUS_TEXT = "privsep status: ok\n";

/** How a serveStatus() call ended. */
export interface ServeResult {
  /** The address it listened on. */
  hostname: string;
  /** The port it listened on. */
  port: number;
  /** Requests answered. */
  requests: number;
}

/**
 * Answers every request to http://127.0.0.1:`port`/ with STATUS_TEXT until the
 * call is cancelled. `port` must be one of STATUS_PORTS.
 */
export const serveStatus = bindCtx.entrypoint(
  import.meta,
  async function serveStatus(port: number): Promise<ServeResult> {
    const signal = callSignal();
    signal.throwIfAborted();
    let requests = 0;
    const server = Deno.serve(
      { hostname: HOSTNAME, port, signal, onListen() {} },
      () => {
        requests++;
        return new Response(STATUS_TEXT, {
          headers: { "content-type": "text/plain; charset=utf-8" },
        });
      },
    );
    await server.finished;
    return { hostname: HOSTNAME, port, requests };
  },
  { args: [portIn(STATUS_PORTS)], auditArgs: true },
);
