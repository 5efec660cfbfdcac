import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { checkLayers, type Edge, importGraph, unitOf } from "./check_layers.ts";

const layers = [["low"], ["left", "right"], ["top"]];
const outside = ["tests", "examples"];
const e = (from: string, to: string): Edge => ({ from, to });

Deno.test("unitOf() is the first folder, or the file itself at the root", () => {
  assert.equal(unitOf("core/config.ts"), "core");
  assert.equal(unitOf("core/sub/x.ts"), "core");
  assert.equal(unitOf("mod.ts"), "mod.ts");
});

Deno.test("checkLayers() accepts imports down the layers and inside a folder", () => {
  assert.deepEqual(
    checkLayers(
      [
        e("top/a.ts", "left/b.ts"),
        e("left/b.ts", "low/c.ts"),
        e("right/d.ts", "low/c.ts"),
        e("low/c.ts", "low/_e.ts"),
        e("tests/t.ts", "top/a.ts"),
        e("tests/t.ts", "examples/x.ts"),
      ],
      layers,
      outside,
    ),
    [],
  );
});

Deno.test("checkLayers() names the file edges of a cycle between two folders", () => {
  const problems = checkLayers(
    [
      e("left/command.ts", "right/trust.ts"),
      e("right/serve.ts", "left/schema.ts"),
      e("right/start.ts", "left/config.ts"),
    ],
    layers,
    outside,
  );
  const cycle = problems.find((p) => p.startsWith("import cycle"));
  assert.equal(
    cycle,
    "import cycle between top-level folders left -> right -> left:\n" +
      "  left -> right: left/command.ts -> right/trust.ts\n" +
      "  right -> left: right/serve.ts -> left/schema.ts, right/start.ts -> left/config.ts",
  );
  // Each edge of the cycle also breaks the layering (same layer).
  assert.equal(problems.filter((p) => p.startsWith("layering:")).length, 3);
});

Deno.test("checkLayers() finds a cycle through three folders outside the layers", () => {
  const problems = checkLayers(
    [
      e("tests/a.ts", "examples/b.ts"),
      e("examples/b.ts", "bench/c.ts"),
      e("bench/c.ts", "tests/d.ts"),
    ],
    layers,
    [...outside, "bench"],
  );
  assert.deepEqual(problems, [
    "import cycle between top-level folders bench -> tests -> examples -> bench:\n" +
    "  bench -> tests: bench/c.ts -> tests/d.ts\n" +
    "  tests -> examples: tests/a.ts -> examples/b.ts\n" +
    "  examples -> bench: examples/b.ts -> bench/c.ts",
  ]);
});

Deno.test("checkLayers() rejects an import up a layer, naming both files", () => {
  assert.deepEqual(
    checkLayers([e("low/c.ts", "top/a.ts")], layers, outside),
    [
      "layering: low/c.ts imports top/a.ts, but low (layer 0) is below top (layer 2) and may only import lower layers",
    ],
  );
  assert.match(
    checkLayers([e("top/a.ts", "tests/t.ts")], layers, outside)[0],
    /^layering: top\/a\.ts imports tests\/t\.ts/,
  );
});

Deno.test("checkLayers() exempts unit tests beside the code, but nothing imports one", () => {
  assert.deepEqual(
    checkLayers([e("low/c_test.ts", "top/a.ts")], layers, outside),
    [],
  );
  assert.deepEqual(
    checkLayers([e("top/a.ts", "low/c_test.ts")], layers, outside),
    ["top/a.ts imports the unit test low/c_test.ts: nothing imports a test"],
  );
});

Deno.test("checkLayers() reports a folder that is in no layer", () => {
  assert.deepEqual(
    checkLayers([e("extra/x.ts", "low/c.ts")], layers, outside),
    [
      "extra is in no layer (imported or importing: extra/x.ts -> low/c.ts); add it to LAYERS or OUTSIDE in .ci/check_layers.ts",
    ],
  );
});

Deno.test("importGraph() sees static, dynamic and type-only imports, not comments", async () => {
  const root = await Deno.makeTempDir({ prefix: "check_layers_" });
  try {
    const write = async (path: string, text: string) => {
      await Deno.mkdir(`${root}/${path.replace(/\/[^/]*$/, "")}`, {
        recursive: true,
      });
      await Deno.writeTextFile(`${root}/${path}`, text);
    };
    await write("low/c.ts", "export type C = number;\nexport const c = 1;\n");
    await write(
      "top/a.ts",
      [
        'import { c } from "../low/c.ts";',
        "/** ```ts",
        ' * import { b } from "../left/b.ts";',
        " * ``` */",
        "// import { d } from '../right/d.ts';",
        "export const a = c;",
      ].join("\n"),
    );
    await write(
      "left/b.ts",
      'import type { C } from "../low/c.ts";\nexport const b: C = 2;\n',
    );
    await write(
      "right/d.ts",
      'export const d = async () => (await import("../left/b.ts")).b;\n',
    );
    // A cycle: low imports top.
    await write("low/e.ts", 'export { a } from "../top/a.ts";\n');
    const edges = await importGraph(root);
    assert.deepEqual(
      edges.map((x) => `${x.from} -> ${x.to}`).sort(),
      [
        "left/b.ts -> low/c.ts",
        "low/e.ts -> top/a.ts",
        "right/d.ts -> left/b.ts",
        "top/a.ts -> low/c.ts",
      ],
    );
    const problems = checkLayers(edges, layers, outside);
    assert.deepEqual(problems, [
      "layering: low/e.ts imports top/a.ts, but low (layer 0) is below top (layer 2) and may only import lower layers",
      "layering: right/d.ts imports left/b.ts, but right and left share layer 1 and never import each other; move what both need to a lower layer",
      "import cycle between top-level folders low -> top -> low:\n" +
      "  low -> top: low/e.ts -> top/a.ts\n" +
      "  top -> low: top/a.ts -> low/c.ts",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the repository's own import graph has no cycle and keeps its layers", async () => {
  const root = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
  const edges = await importGraph(root);
  // The graph really is there: the daemon imports the registry in core/.
  assert.ok(
    edges.some((x) =>
      x.from === "daemon/serve.ts" && x.to === "core/_registry.ts"
    ),
  );
  assert.deepEqual(checkLayers(edges), []);
});
