// Shared by the Deno callers of `deno task bench` (run as the unprivileged
// bench user): the per-round parameters and the figures each caller prints.
import process from "node:process";

/** What one round of one system measures, sent by bench.ts as JSON. */
export interface RoundParams {
  /** Daemon starts measured (for sudo: first calls timed separately). */
  coldStarts: number;
  /** Untimed calls before the sequential run. */
  warmup: number;
  /** Sequential no-op calls. */
  seq: number;
  /** Total calls for 8 and 64 in flight. */
  inflight: { "8": number; "64": number };
  /** 1 MiB echoes. */
  mib: number;
  /** chown calls (alternately to the bench user and back to root). */
  chown: number;
  /** The root-owned file in a 0700 root directory. */
  target: string;
  /** The bench user's uid and gid. */
  uid: number;
  gid: number;
}

/** The figures of one round (times in the unit of their name). */
export interface RoundResult {
  coldStartMs: number[];
  seqP50Us: number;
  seqP99Us: number;
  seqCallsPerSec: number;
  callerCpuUsPerCall: number;
  inFlight8CallsPerSec: number;
  inFlight8P50Us: number;
  inFlight8P99Us: number;
  inFlight64CallsPerSec: number;
  inFlight64P50Us: number;
  inFlight64P99Us: number;
  echo1MiBMs: number;
  /**
   * The mean of the first five 1 MiB echoes of a daemon started for them
   * (after one no-op call that starts it): what a service that makes an
   * occasional large call sees. For sudo, the first five echoes of the round.
   */
  echo1MiBFresh5Ms?: number;
  chownP50Ms: number;
  chownP99Ms: number;
  daemonPeakRssMiB?: number;
  /** The daemon's anonymous resident memory (no shared binary pages), at the end. */
  daemonRssAnonMiB?: number;
  /** CPU of reaped children (sudo and its command) per sequential call. */
  childCpuUsPerCall?: number;
  /** What the caller saw of its daemon, for bench.ts to check. */
  daemon?: unknown;
}

/** Large calls timed on a fresh daemon (echo1MiBFresh5Ms). */
export const FRESH_LARGE_CALLS = 5;

/** The arithmetic mean of `xs`. */
export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The p-quantile (0..1) of `xs`, nearest rank. */
export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

/** User + system CPU time of this process so far, in µs (getrusage). */
export function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** The CPU time of reaped children so far, in µs (/proc/self/stat). */
export function childCpuUs(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 16 and 17 (cutime, cstime), in clock ticks of 1/100 s.
  return (Number(f[13]) + Number(f[14])) * 10_000;
}

/** Runs `call` `total` times from `inFlight` concurrent loops. */
export async function inFlight(
  total: number,
  inFlight: number,
  call: () => Promise<unknown>,
): Promise<{ callsPerSec: number; p50Us: number; p99Us: number }> {
  const per = Math.floor(total / inFlight);
  const lat: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let i = 0; i < per; i++) {
        const s = performance.now();
        await call();
        lat.push(performance.now() - s);
      }
    }),
  );
  const wallMs = performance.now() - t0;
  return {
    callsPerSec: lat.length / (wallMs / 1000),
    p50Us: pct(lat, 0.5) * 1000,
    p99Us: pct(lat, 0.99) * 1000,
  };
}

/** Times `n` sequential calls; also the caller's CPU per call. */
export async function sequential(
  n: number,
  call: () => Promise<unknown>,
): Promise<
  {
    p50Us: number;
    p99Us: number;
    callsPerSec: number;
    cpuUsPerCall: number;
    childCpuUsPerCall: number;
  }
> {
  const lat: number[] = [];
  const c0 = cpuUs();
  const k0 = childCpuUs();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await call();
    lat.push(performance.now() - s);
  }
  const wallMs = performance.now() - t0;
  return {
    p50Us: pct(lat, 0.5) * 1000,
    p99Us: pct(lat, 0.99) * 1000,
    callsPerSec: n / (wallMs / 1000),
    cpuUsPerCall: (cpuUs() - c0) / n,
    childCpuUsPerCall: (childCpuUs() - k0) / n,
  };
}

/** Times `n` calls one after the other; returns the samples in ms. */
export async function timed(
  n: number,
  call: (i: number) => Promise<unknown>,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await call(i);
    out.push(performance.now() - s);
  }
  return out;
}

/** The VmHWM (peak RSS) of a process, in MiB. */
export function peakRssMiB(pid: number): number {
  return statusKiB(pid, "VmHWM") / 1024;
}

/** The RssAnon (resident memory not backed by a file) of a process, in MiB. */
export function rssAnonMiB(pid: number): number {
  return statusKiB(pid, "RssAnon") / 1024;
}

function statusKiB(pid: number, field: string): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
}

/** What every caller measures in a round, for its RoundResult. */
export function roundFigures(m: {
  coldStartMs: number[];
  seq: Awaited<ReturnType<typeof sequential>>;
  f8: Awaited<ReturnType<typeof inFlight>>;
  f64: Awaited<ReturnType<typeof inFlight>>;
  big: number[];
  ch: number[];
}): RoundResult {
  return {
    coldStartMs: m.coldStartMs,
    seqP50Us: m.seq.p50Us,
    seqP99Us: m.seq.p99Us,
    seqCallsPerSec: m.seq.callsPerSec,
    callerCpuUsPerCall: m.seq.cpuUsPerCall,
    inFlight8CallsPerSec: m.f8.callsPerSec,
    inFlight8P50Us: m.f8.p50Us,
    inFlight8P99Us: m.f8.p99Us,
    inFlight64CallsPerSec: m.f64.callsPerSec,
    inFlight64P50Us: m.f64.p50Us,
    inFlight64P99Us: m.f64.p99Us,
    echo1MiBMs: pct(m.big, 0.5),
    chownP50Ms: pct(m.ch, 0.5),
    chownP99Ms: pct(m.ch, 0.99),
  };
}

/** The last CPU this process may run on (the one-CPU rounds use it). */
export function lastAllowedCpu(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  const list = /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1] ?? "0";
  return Math.max(...list.split(/[,-]/).map(Number));
}

/** The haltpoll cpuidle governor's polling time (a KVM guest's), in ns. */
export const HALT_POLL = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";

/** The cpuidle driver, with guest_halt_poll_ns where there is one. */
export function cpuidle(): string {
  const read = (path: string) => {
    try {
      return Deno.readTextFileSync(path).trim();
    } catch {
      return undefined;
    }
  };
  const driver = read("/sys/devices/system/cpu/cpuidle/current_driver");
  const poll = read(HALT_POLL);
  return `cpuidle ${driver ?? "none"}${
    poll === undefined ? "" : `, guest_halt_poll_ns ${poll}`
  }`;
}
