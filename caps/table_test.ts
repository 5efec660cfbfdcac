import assert from "node:assert/strict";
import {
  CAP_BPF,
  CAP_CHECKPOINT_RESTORE,
  CAP_CHOWN,
  CAP_LAST_CAP,
  CAP_NET_ADMIN,
  CAP_SETFCAP,
  CAP_SYS_ADMIN,
  CAPABILITIES,
  capabilityName,
} from "./table.ts";

Deno.test("CAPABILITIES lists the 41 kernel capabilities with their bit numbers", () => {
  const entries = Object.entries(CAPABILITIES);
  assert.equal(entries.length, 41);
  assert.deepEqual(
    entries.map(([, value]) => value).sort((a, b) => a - b),
    Array.from({ length: 41 }, (_, i) => i),
  );
  for (const [name] of entries) assert.match(name, /^CAP_[A-Z_]+$/);
  assert.equal(CAP_CHOWN, 0);
  assert.equal(CAP_NET_ADMIN, 12);
  assert.equal(CAP_SYS_ADMIN, 21);
  assert.equal(CAP_SETFCAP, 31);
  assert.equal(CAP_BPF, 39);
  assert.equal(CAP_CHECKPOINT_RESTORE, 40);
  assert.equal(CAP_LAST_CAP, 40);
});

Deno.test("CAPABILITIES is frozen", () => {
  assert.ok(Object.isFrozen(CAPABILITIES));
});

Deno.test("capabilityName() names known and unknown bits", () => {
  assert.equal(capabilityName(0), "CAP_CHOWN");
  assert.equal(capabilityName(12), "CAP_NET_ADMIN");
  assert.equal(capabilityName(40), "CAP_CHECKPOINT_RESTORE");
  assert.equal(capabilityName(41), "CAP_41");
  assert.equal(capabilityName(63), "CAP_63");
  for (const [name, value] of Object.entries(CAPABILITIES)) {
    assert.equal(capabilityName(value), name);
  }
});

Deno.test("capabilityName() rejects a value that is not a bit number", () => {
  for (const value of [-1, 64, 1.5, NaN, Infinity]) {
    assert.throws(() => capabilityName(value), RangeError);
  }
});
