// Copyright the privsep authors. Apache-2.0 license.

// Helpers shared by the codec's unit tests (not published: deno.json's
// publish.exclude).

import { decodeValue } from "./decode.ts";
import { encodeValue } from "./encode.ts";

/** Encodes `value` and decodes it again. */
export function roundTrip(value: unknown): unknown {
  return decodeValue(encodeValue(value));
}

/** Bytes from a string of hex pairs, spaces ignored. */
export function h(hex: string): Uint8Array {
  const clean = hex.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

/** Bytes as hex pairs separated by spaces. */
export function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** The parts (arrays of bytes or byte values) one after the other. */
export function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A string's UTF-8 bytes. */
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
