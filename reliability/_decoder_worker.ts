// The in-process decoder fuzzer, run in a Worker so that the main thread can
// see a hang (no progress) and stop it. Feeds frames, chunked at random,
// through FrameDecoder (push, or in place through bodyTail/commit) and
// decodeMessage. Invariants: nothing but
// ProtocolError is ever thrown; a body that decodes re-encodes to the same
// value; no input takes long.
/// <reference lib="deno.worker" />
import { isDeepStrictEqual } from "node:util";
import { ProtocolError } from "../errors.ts";
import { decodeValue, encodeValue } from "../protocol/codec.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import { decodeMessage } from "../protocol/messages.ts";
import {
  concat,
  frame,
  hostileBody,
  mutate,
  Rng,
  u32,
  validBody,
} from "./_gen.ts";

export interface DecoderJob {
  seed: number;
  from: number;
  iterations: number;
}

export interface DecoderProgress {
  type: "progress" | "done";
  done: number;
  frames: number;
  bytes: number;
  decoded: number;
  rejected: number;
  maxMs: number;
  maxAt: number;
  rssPeak: number;
  failures: { i: number; what: string; input: string }[];
}

function input(r: Rng): { wire: Uint8Array; max: number } {
  const max = r.pick([16 << 20, 16 << 20, 1 << 16, 300, 64]);
  const kind = r.int(100);
  if (kind < 30) return { wire: frame(mutate(r, validBody(r))), max };
  if (kind < 50) return { wire: frame(hostileBody(r)), max };
  if (kind < 60) return { wire: r.bytes(r.range(0, 300)), max };
  if (kind < 75) {
    const n = r.range(1, 4);
    return {
      wire: concat(...Array.from({ length: n }, () => frame(validBody(r)))),
      max,
    };
  }
  // Frame-level: wrong lengths (0, huge, off by one), truncation.
  const body = validBody(r);
  const len = r.pick([
    0,
    1,
    body.length - 1,
    body.length + 1,
    max,
    max + 1,
    0xffffffff,
    0x80000000,
  ]);
  let wire = concat(u32(len), body, frame(validBody(r)));
  if (r.chance(0.3)) wire = wire.subarray(0, r.int(wire.length));
  return { wire, max };
}

function hex(b: Uint8Array): string {
  const s = [...b.subarray(0, 96)].map((x) => x.toString(16).padStart(2, "0"))
    .join("");
  return b.length > 96 ? `${s}… (${b.length} bytes)` : s;
}

self.onmessage = (e: MessageEvent<DecoderJob>) => {
  const { seed, from, iterations } = e.data;
  const p: DecoderProgress = {
    type: "progress",
    done: 0,
    frames: 0,
    bytes: 0,
    decoded: 0,
    rejected: 0,
    maxMs: 0,
    maxAt: -1,
    rssPeak: 0,
    failures: [],
  };
  let last = performance.now();
  for (let i = from; i < from + iterations; i++) {
    const r = Rng.at(seed, i);
    const { wire, max } = input(r);
    const t0 = performance.now();
    try {
      const decoder = new FrameDecoder(max);
      let off = 0;
      while (off < wire.length) {
        let n = r.chance(0.5) ? wire.length - off : r.range(1, 64);
        // Half the time a pending body is filled in place, as both ends of
        // the channel read large bodies (bodyTail/commit).
        const tail = r.chance(0.5) ? decoder.bodyTail(1) : undefined;
        let bodies: Uint8Array[];
        if (tail) {
          n = Math.min(n, tail.length);
          tail.set(wire.subarray(off, off + n));
          bodies = decoder.commit(n);
        } else {
          bodies = decoder.push(wire.slice(off, off + n));
        }
        off += n;
        for (const body of bodies) {
          p.frames++;
          decodeMessage(body);
          p.decoded++;
          // A body that decodes must survive a round trip unchanged.
          const v = decodeValue(body);
          const again = decodeValue(encodeValue(v));
          if (!isDeepStrictEqual(v, again)) {
            p.failures.push({
              i,
              what: "round trip changed the value",
              input: hex(body),
            });
          }
        }
      }
    } catch (error) {
      if (error instanceof ProtocolError) p.rejected++;
      else {
        p.failures.push({
          i,
          what: `threw ${(error as Error)?.name}: ${(error as Error)?.message}`,
          input: hex(wire),
        });
      }
    }
    const ms = performance.now() - t0;
    p.bytes += wire.length;
    if (ms > p.maxMs) {
      p.maxMs = ms;
      p.maxAt = i;
    }
    p.done++;
    if (p.done % 256 === 0 || performance.now() - last > 500) {
      p.rssPeak = Math.max(p.rssPeak, Deno.memoryUsage().rss);
      self.postMessage({ ...p, failures: p.failures.splice(0) });
      last = performance.now();
    }
  }
  p.rssPeak = Math.max(p.rssPeak, Deno.memoryUsage().rss);
  self.postMessage({ ...p, type: "done" });
};
