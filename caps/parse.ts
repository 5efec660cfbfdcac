import {
  CAP_LAST_CAP,
  CAPABILITIES,
  type CapabilityName,
  capabilityName,
} from "./table.ts";
import { editDistance } from "../_suggest.ts";

const VALID_FORMS =
  `valid forms are a name such as "CAP_NET_ADMIN", "cap_net_admin" or "net_admin", or a number from 0 to ${CAP_LAST_CAP}`;

/**
 * Parses one capability given by name or number.
 *
 * Names are case-insensitive and the `CAP_` prefix is optional. Numbers may be
 * given as integers or decimal strings. There is deliberately no shortcut for
 * "all capabilities": a privsep context must list the capabilities it keeps
 * one by one.
 *
 * @param input A name such as `"CAP_NET_ADMIN"`, `"cap_net_admin"` or
 * `"net_admin"`, or a number from 0 to {@linkcode CAP_LAST_CAP}.
 * @returns The capability's bit number.
 * @throws {TypeError} If `input` is not a known capability name (including
 * `"all"` and `"*"`).
 * @throws {RangeError} If `input` is a number that is not an integer from 0 to
 * {@linkcode CAP_LAST_CAP}.
 *
 * @example Usage
 * ```ts
 * import { parseCapability } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseCapability("CAP_NET_ADMIN"), 12);
 * assert.equal(parseCapability("net_admin"), 12);
 * assert.equal(parseCapability("12"), 12);
 * assert.throws(() => parseCapability("all"), TypeError);
 * ```
 */
export function parseCapability(input: string | number): number {
  if (typeof input === "number") return checkNumber(input, input);
  if (typeof input !== "string") {
    throw new TypeError(
      `Cannot parse capability ${String(input)}: expected a string or number`,
    );
  }
  const text = input.trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return checkNumber(Number(text), input);
  const upper = text.toUpperCase();
  if (upper === "ALL" || upper === "CAP_ALL" || upper === "*") {
    throw new TypeError(
      `Cannot parse capability ${
        JSON.stringify(input)
      }: there is no "all" shortcut, privsep contexts must list the capabilities they keep one by one`,
    );
  }
  const name = upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
  if (Object.hasOwn(CAPABILITIES, name)) {
    return CAPABILITIES[name as CapabilityName];
  }
  const suggestion = closestName(name);
  throw new TypeError(
    `Unknown capability ${JSON.stringify(input)}${
      suggestion ? `: did you mean "${suggestion}"?` : ""
    } (${VALID_FORMS})`,
  );
}

/**
 * Parses a list of capabilities with {@linkcode parseCapability}.
 *
 * @param inputs The capabilities, by name or number.
 * @returns The capabilities' bit numbers, sorted and without duplicates.
 * @throws {TypeError} If an element is not a known capability name; the
 * message names the element's index.
 * @throws {RangeError} If an element is an out-of-range number; the message
 * names the element's index.
 *
 * @example Usage
 * ```ts
 * import { parseCapabilities } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseCapabilities(["net_admin", "CAP_CHOWN", 12]), [0, 12]);
 * ```
 */
export function parseCapabilities(
  inputs: readonly (string | number)[],
): number[] {
  if (!Array.isArray(inputs)) {
    throw new TypeError("Cannot parse capabilities: expected an array");
  }
  const values = new Set<number>();
  inputs.forEach((input, index) => {
    try {
      values.add(parseCapability(input));
    } catch (error) {
      if (!(error instanceof TypeError || error instanceof RangeError)) {
        throw error;
      }
      const ErrorClass = error instanceof RangeError ? RangeError : TypeError;
      throw new ErrorClass(
        `Invalid capability at index ${index}: ${error.message}`,
        { cause: error },
      );
    }
  });
  return [...values].sort((a, b) => a - b);
}

/**
 * Converts capability bit numbers to a 64-bit mask, as in the `CapEff` line of
 * `/proc/<pid>/status`.
 *
 * @param values The capability bits, integers from 0 to 63.
 * @returns The mask with those bits set.
 * @throws {RangeError} If a value is not an integer from 0 to 63.
 *
 * @example Usage
 * ```ts
 * import { capabilitiesToMask } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * assert.equal(capabilitiesToMask([0, 12]), 0x1001n);
 * ```
 */
export function capabilitiesToMask(values: readonly number[]): bigint {
  let mask = 0n;
  for (const value of values) {
    if (!Number.isInteger(value) || value < 0 || value > 63) {
      throw new RangeError(
        `Cannot set capability bit ${
          String(value)
        }: expected an integer from 0 to 63`,
      );
    }
    mask |= 1n << BigInt(value);
  }
  return mask;
}

/**
 * Converts a 64-bit capability mask to the bit numbers set in it.
 *
 * @param mask The mask, from 0 to 2^64 - 1.
 * @returns The capability bits set in `mask`, in ascending order.
 * @throws {RangeError} If `mask` is negative or wider than 64 bits.
 *
 * @example Usage
 * ```ts
 * import { maskToCapabilities } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(maskToCapabilities(0x1001n), [0, 12]);
 * ```
 */
export function maskToCapabilities(mask: bigint): number[] {
  if (typeof mask !== "bigint" || mask < 0n || mask >> 64n !== 0n) {
    throw new RangeError(
      `Cannot read capability mask ${
        String(mask)
      }: expected a bigint from 0 to 2^64 - 1`,
    );
  }
  const values: number[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((mask >> BigInt(bit)) & 1n) values.push(bit);
  }
  return values;
}

/**
 * Names the capabilities in a list of bit numbers or a mask.
 *
 * @param valuesOrMask Capability bits (integers from 0 to 63) or a 64-bit mask.
 * @returns The capabilities' names, in ascending bit order and without
 * duplicates.
 * @throws {RangeError} If a value or the mask is out of range.
 *
 * @example Usage
 * ```ts
 * import { formatCapabilities } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(formatCapabilities([12, 0]), ["CAP_CHOWN", "CAP_NET_ADMIN"]);
 * assert.deepEqual(formatCapabilities(0x1001n), ["CAP_CHOWN", "CAP_NET_ADMIN"]);
 * ```
 */
export function formatCapabilities(
  valuesOrMask: readonly number[] | bigint,
): string[] {
  const mask = typeof valuesOrMask === "bigint"
    ? valuesOrMask
    : capabilitiesToMask(valuesOrMask);
  return maskToCapabilities(mask).map(capabilityName);
}

function checkNumber(value: number, input: string | number): number {
  if (!Number.isInteger(value) || value < 0 || value > CAP_LAST_CAP) {
    throw new RangeError(
      `Invalid capability ${
        typeof input === "string" ? JSON.stringify(input) : String(input)
      }: expected an integer from 0 to ${CAP_LAST_CAP}`,
    );
  }
  return value;
}

/** The only known name within edit distance 2 of `name`, if there is one. */
function closestName(name: string): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  let tied = false;
  for (const known of Object.keys(CAPABILITIES)) {
    const distance = editDistance(name, known);
    if (distance < bestDistance) {
      [best, bestDistance, tied] = [known, distance, false];
    } else if (distance === bestDistance) {
      tied = true;
    }
  }
  return tied ? undefined : best;
}
