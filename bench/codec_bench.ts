// `deno task bench:codec` (writes bench/results/codec.txt) or
// `deno bench --allow-all bench/codec_bench.ts`: our msgpack codec
// (protocol/codec.ts) against msgpackr, encode then decode, on the shapes
// the channel carries most. msgpackr runs as Packr/Unpackr with
// `useRecords: false`; its decoder then returns bin as a view into the input,
// so "msgpackr copyBuffers" adds the copy our decoder always makes (bin never
// aliases the frame), as the codec before ours was configured.
import { Packr } from "msgpackr/pack";
import { Unpackr } from "msgpackr/unpack";
import { decodeValue, encodeValue } from "../protocol/codec.ts";

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });
const unpackrCopying = new Unpackr({ useRecords: false, copyBuffers: true });

const cases: [string, unknown][] = [
  ["small call", [1, 17, "ops.ts#echo", [null]]],
  ["small result", [2, 17, { ok: true, path: "/etc/motd", size: 1234 }]],
  [
    "64-key object",
    [
      2,
      17,
      Object.fromEntries(
        Array.from({ length: 64 }, (_, i) => [`key${i}`, i % 2 ? i : `v${i}`]),
      ),
    ],
  ],
  [
    "1 MiB Uint8Array",
    [2, 17, new Uint8Array(1 << 20).map((_, i) => i & 0xff)],
  ],
];

for (const [name, value] of cases) {
  // Both must agree before their speed means anything. (msgpackr returns a
  // Buffer for bin: re-encoding both compares the data, not the class.)
  const ours = encodeValue(decodeValue(encodeValue(value)));
  const theirs = encodeValue(unpackr.unpack(packr.pack(value)));
  if (String(ours) !== String(theirs)) {
    throw new Error(`${name}: the codecs disagree`);
  }
  Deno.bench({
    name: `${name}: ours`,
    group: name,
    baseline: true,
    fn() {
      decodeValue(encodeValue(value));
    },
  });
  Deno.bench({
    name: `${name}: msgpackr`,
    group: name,
    fn() {
      unpackr.unpack(packr.pack(value));
    },
  });
  Deno.bench({
    name: `${name}: msgpackr copyBuffers`,
    group: name,
    fn() {
      unpackrCopying.unpack(packr.pack(value));
    },
  });
}
