// `deno task example:web_service`: a Deno.serve web service that makes one
// privileged call per request (recording the visit in a root-only log). The
// service itself needs no privilege; many requests at once become many calls
// in flight on one daemon, which runs 4 at a time (the context's
// `concurrency`) and queues the rest.
import { PrivsepQueueFull, RemoteError } from "../../mod.ts";
import { VISITS_LOG, visitsCtx } from "./privsep/mod.ts";
import * as visits from "./privsep/visits.ts";

/** The service's request handler. */
export async function handler(req: Request): Promise<Response> {
  if (req.method !== "GET") {
    return new Response("method not allowed\n", { status: 405 });
  }
  const path = new URL(req.url).pathname;
  try {
    await visits.recordVisit(path);
  } catch (error) {
    // The same in-process (unit tests) and through the daemon.
    if (
      error instanceof RemoteError && error.remoteName === "InvalidArgument"
    ) {
      return new Response("bad path\n", { status: 400 });
    }
    if (error instanceof PrivsepQueueFull) {
      return new Response("busy, try again\n", { status: 503 });
    }
    console.error(`recordVisit(${path}) failed:`, error);
    return new Response("internal error\n", { status: 500 });
  }
  return new Response(`visit to ${path} recorded\n`);
}

/** Starts the service on 127.0.0.1:`port` (0: any free port). */
export function startWebService(port: number): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, handler);
}

if (import.meta.main) {
  if (Deno.uid() === 0) {
    const { prepareVisitsLog } = await import("./setup.ts");
    await prepareVisitsLog();
  }
  const port = Number(Deno.args[0] ?? 8089);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = startWebService(port);
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    console.error(
      `127.0.0.1:${port} is in use; pass another port (0 for any free one)`,
    );
    Deno.exit(1);
  }
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    console.log(`serving on ${base}; sending 20 requests at once`);
    const codes = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const res = await fetch(`${base}/demo/${i}`);
        await res.body?.cancel();
        return res.status;
      }),
    );
    console.log(`answers: ${codes.join(" ")}`);
    const stats = await visits.concurrencyStats();
    const status = await visitsCtx.status();
    console.log(
      `daemon pid ${status.pid}: ${status.completed} calls completed, at most ${stats.maxRunning} recordVisit() at once (concurrency ${status.concurrency}), ${status.stuck} stuck`,
    );
    if (Deno.uid() === 0) {
      const lines = (await Deno.readTextFile(VISITS_LOG)).trimEnd().split("\n");
      console.log(
        `${VISITS_LOG} (0600, root) ends with:\n  ${
          lines.slice(-3).join("\n  ")
        }`,
      );
    }
  } finally {
    await server.shutdown();
    await visitsCtx.stop();
  }
}
