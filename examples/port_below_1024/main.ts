// `deno task example:port_below_1024`: serve a status page on port 81 from a
// daemon that runs as "nobody" with CAP_NET_BIND_SERVICE only, fetch it, and
// stop it.
//
// The calling side: serveStatus(port) runs for as long as the page is up, so
// it is started inside callWith({ signal }) and stopped by aborting the signal.
import { callWith } from "../../mod.ts";
import { bindCtx, HOSTNAME } from "./privsep/mod.ts";
import * as status from "./privsep/status.ts";

/** A status page being served by the daemon. */
export interface StatusPage {
  /** Where it answers. */
  url: string;
  /** Stops serving; resolves once the port is closed. */
  stop(): Promise<void>;
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
export async function isListening(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: HOSTNAME, port });
    conn.close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return false;
    // Accepted, then dropped: a server that is shutting down.
    if (error instanceof Deno.errors.ConnectionReset) return true;
    throw error;
  }
}

async function until(
  what: string,
  check: () => Promise<boolean>,
  limitMs = 5_000,
): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!(await check())) {
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${limitMs} ms waiting until ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts serving the status page on `port` (through the daemon) and resolves
 * once it answers. Refuses a port that something else already listens on.
 */
export async function startStatusPage(port: number): Promise<StatusPage> {
  if (await isListening(port)) {
    throw new Error(
      `${HOSTNAME}:${port} is already in use by another program; stop it or pick another port`,
    );
  }
  const url = `http://${HOSTNAME}:${port}/`;
  const controller = new AbortController();
  const serving = callWith(
    { signal: controller.signal },
    () => status.serveStatus(port),
  );
  let failure: unknown;
  const failed = serving.then(() => false, (e) => {
    failure = e;
    return true;
  });
  await until(`${url} answers`, async () => {
    if (failure !== undefined) throw failure;
    try {
      const res = await fetch(url);
      const text = await res.text();
      if (text !== status.STATUS_TEXT) {
        throw new Error(`${url} answers, but not with the status page`);
      }
      return true;
    } catch (error) {
      if (error instanceof TypeError) return false; // not listening yet
      throw error;
    }
  });
  return {
    url,
    async stop() {
      controller.abort();
      await failed;
      if (failure !== controller.signal.reason) throw failure;
      // The caller's promise rejects at once; the daemon closes the socket
      // when serveStatus() sees its signal.
      await until(
        `port ${port} is closed`,
        async () => !(await isListening(port)),
      );
    },
  };
}

if (import.meta.main) {
  const port = Number(Deno.args[0] ?? 81);
  try {
    const info = await bindCtx.start();
    console.log(
      `daemon pid ${info.pid}: uid ${info.uid}, capabilities [${info.capabilities}] (CAP_NET_BIND_SERVICE = 10)`,
    );
    const page = await startStatusPage(port);
    const res = await fetch(page.url);
    console.log(
      `GET ${page.url} -> ${res.status} ${(await res.text()).trim()}`,
    );
    await page.stop();
    console.log(`stopped; ${HOSTNAME}:${port} is free again`);
  } finally {
    await bindCtx.stop();
  }
}
