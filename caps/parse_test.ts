import assert from "node:assert/strict";
import {
  capabilitiesToMask,
  formatCapabilities,
  maskToCapabilities,
  parseCapabilities,
  parseCapability,
} from "./parse.ts";
import { CAP_LAST_CAP, CAPABILITIES } from "./table.ts";

Deno.test("parseCapability() accepts names in every spelling", () => {
  for (
    const input of [
      "CAP_NET_ADMIN",
      "cap_net_admin",
      "net_admin",
      "NET_ADMIN",
      "Cap_Net_Admin",
      " net_admin ",
    ]
  ) {
    assert.equal(parseCapability(input), 12, input);
  }
  for (const [name, value] of Object.entries(CAPABILITIES)) {
    assert.equal(parseCapability(name), value);
    assert.equal(parseCapability(name.slice(4).toLowerCase()), value);
  }
});

Deno.test("parseCapability() accepts numbers and decimal strings", () => {
  assert.equal(parseCapability(0), 0);
  assert.equal(parseCapability(CAP_LAST_CAP), CAP_LAST_CAP);
  assert.equal(parseCapability("12"), 12);
  assert.equal(parseCapability("40"), 40);
});

Deno.test("parseCapability() rejects an out-of-range or non-integer number", () => {
  for (const input of [-1, 41, 63, 1.5, NaN, Infinity, "41", "-1", "1.5"]) {
    assert.throws(() => parseCapability(input), RangeError, String(input));
  }
  assert.throws(() => parseCapability(41), /integer from 0 to 40/);
});

Deno.test("parseCapability() rejects an unknown name with a suggestion", () => {
  assert.throws(
    () => parseCapability("cap_net_admn"),
    (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /"cap_net_admn"/);
      assert.match(error.message, /did you mean "CAP_NET_ADMIN"\?/);
      assert.match(error.message, /"net_admin"/);
      assert.match(error.message, /0 to 40/);
      return true;
    },
  );
  assert.throws(
    () => parseCapability("sys_admn"),
    /did you mean "CAP_SYS_ADMIN"/,
  );
  assert.throws(() => parseCapability("CAP_KIL"), /did you mean "CAP_KILL"/);
});

Deno.test("parseCapability() rejects an unknown name without a far-fetched suggestion", () => {
  for (const input of ["frobnicate", "", "CAP_41", "0x0c", "+12"]) {
    assert.throws(
      () => parseCapability(input),
      (error: unknown) => {
        assert.ok(error instanceof TypeError, input);
        assert.doesNotMatch(error.message, /did you mean/);
        assert.match(error.message, /Unknown capability/);
        return true;
      },
    );
  }
});

Deno.test("parseCapability() has no shortcut for all capabilities", () => {
  for (const input of ["all", "ALL", "*", "cap_all"]) {
    assert.throws(
      () => parseCapability(input),
      (error: unknown) => {
        assert.ok(error instanceof TypeError, input);
        assert.match(error.message, /no "all" shortcut/);
        assert.match(error.message, /one by one/);
        return true;
      },
    );
  }
});

Deno.test("parseCapability() rejects a value of the wrong type", () => {
  assert.throws(() => parseCapability(null as unknown as string), TypeError);
});

Deno.test("parseCapabilities() returns sorted unique values", () => {
  assert.deepEqual(
    parseCapabilities(["net_admin", "CAP_CHOWN", 12, "0", "cap_net_raw"]),
    [0, 12, 13],
  );
  assert.deepEqual(parseCapabilities([]), []);
});

Deno.test("parseCapabilities() says which element failed", () => {
  assert.throws(
    () => parseCapabilities(["chown", "net_admn"]),
    (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /^Invalid capability at index 1: /);
      assert.match(error.message, /did you mean "CAP_NET_ADMIN"/);
      assert.ok(error.cause instanceof TypeError);
      return true;
    },
  );
  assert.throws(
    () => parseCapabilities([0, 99]),
    (error: unknown) => {
      assert.ok(error instanceof RangeError);
      assert.match(error.message, /^Invalid capability at index 1: /);
      return true;
    },
  );
  assert.throws(() => parseCapabilities(["all"]), /index 0: .*one by one/);
});

Deno.test("capabilitiesToMask() sets one bit per capability", () => {
  assert.equal(capabilitiesToMask([]), 0n);
  assert.equal(capabilitiesToMask([0, 12, 12]), 0x1001n);
  assert.equal(capabilitiesToMask([63]), 1n << 63n);
  for (const value of [-1, 64, 0.5]) {
    assert.throws(() => capabilitiesToMask([value]), RangeError);
  }
});

Deno.test("maskToCapabilities() lists the bits set in a mask", () => {
  assert.deepEqual(maskToCapabilities(0n), []);
  assert.deepEqual(maskToCapabilities(0x1001n), [0, 12]);
  assert.deepEqual(
    maskToCapabilities(0x1fffeffffffn),
    Array.from({ length: 41 }, (_, i) => i).filter((i) => i !== 24),
  );
  assert.deepEqual(maskToCapabilities((1n << 64n) - 1n).length, 64);
  assert.throws(() => maskToCapabilities(-1n), RangeError);
  assert.throws(() => maskToCapabilities(1n << 64n), RangeError);
});

Deno.test("maskToCapabilities() inverts capabilitiesToMask()", () => {
  const values = [1, 7, 21, 40, 41, 63];
  assert.deepEqual(maskToCapabilities(capabilitiesToMask(values)), values);
});

Deno.test("formatCapabilities() names values or a mask", () => {
  assert.deepEqual(formatCapabilities([12, 0, 12]), [
    "CAP_CHOWN",
    "CAP_NET_ADMIN",
  ]);
  assert.deepEqual(formatCapabilities(0x1001n | (1n << 41n)), [
    "CAP_CHOWN",
    "CAP_NET_ADMIN",
    "CAP_41",
  ]);
  assert.deepEqual(formatCapabilities([]), []);
  assert.throws(() => formatCapabilities([64]), RangeError);
});
