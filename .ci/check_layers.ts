// Fails when the import graph between the repository's top-level folders has
// a cycle, or when a folder imports one that is not below it in LAYERS.
//
//   deno run --allow-run --allow-read .ci/check_layers.ts [dir]
//
// The graph is Deno's own (`deno info --json`): static, dynamic and type-only
// imports, resolved as `deno check` resolves them; imports inside comments
// and JSDoc examples do not count. Files are grouped by their top-level
// folder; a file at the root is its own unit (`mod.ts`, `errors.ts`). A unit
// test (`*_test.ts`) sits beside its code but belongs to no layer: it may
// import anything, and nothing imports it.
import { relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * The package's layers, lowest first. A unit may import only units of a
 * lower layer; units of one layer never import each other. `contexts/` (the
 * client) and `daemon/` share a layer: what both need lives in `core/`.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ["errors.ts", "_suggest.ts"],
  ["protocol", "caps"],
  ["core"],
  ["contexts", "daemon"],
  ["mod.ts", "daemon.ts", "testing"],
  ["cli"],
];

/**
 * Folders outside the published package (tests, examples, tools): above
 * every layer, free to import each other, but never in a cycle.
 */
export const OUTSIDE: readonly string[] = [
  ".ci",
  "bench",
  "examples",
  "reliability",
  "tests",
];

/** One import: `from` imports `to`, both relative to the checked root. */
export interface Edge {
  from: string;
  to: string;
}

/** The top-level unit of a path: its first folder, or the file at the root. */
export function unitOf(path: string): string {
  const slash = path.indexOf("/");
  return slash === -1 ? path : path.slice(0, slash);
}

function isTest(path: string): boolean {
  return /_test\.[mc]?[jt]sx?$/.test(path);
}

/**
 * The problems with `edges`: units in no layer, imports that go sideways or
 * up a layer, and every cycle between units (each named by the file edges
 * that form it). Empty when the graph is layered.
 */
export function checkLayers(
  edges: readonly Edge[],
  layers: readonly (readonly string[])[] = LAYERS,
  outside: readonly string[] = OUTSIDE,
): string[] {
  const rank = new Map<string, number>();
  layers.forEach((units, i) => units.forEach((u) => rank.set(u, i)));
  const top = layers.length;
  for (const u of outside) rank.set(u, top);
  const problems: string[] = [];
  const unknown = new Set<string>();
  // unit -> unit -> the file edges between them
  const graph = new Map<string, Map<string, Edge[]>>();
  for (const edge of edges) {
    if (isTest(edge.from)) continue;
    const a = unitOf(edge.from);
    const b = unitOf(edge.to);
    for (const u of [a, b]) {
      if (!rank.has(u) && !unknown.has(u)) {
        unknown.add(u);
        problems.push(
          `${u} is in no layer (imported or importing: ${edge.from} -> ${edge.to}); add it to LAYERS or OUTSIDE in .ci/check_layers.ts`,
        );
      }
    }
    if (a === b) continue;
    let out = graph.get(a);
    if (!out) graph.set(a, out = new Map());
    let list = out.get(b);
    if (!list) out.set(b, list = []);
    list.push(edge);
    const ra = rank.get(a), rb = rank.get(b);
    if (ra === undefined || rb === undefined) continue;
    if (isTest(edge.to)) {
      problems.push(
        `${edge.from} imports the unit test ${edge.to}: nothing imports a test`,
      );
    } else if (ra === rb && ra !== top) {
      problems.push(
        `layering: ${edge.from} imports ${edge.to}, but ${a} and ${b} share layer ${ra} and never import each other; move what both need to a lower layer`,
      );
    } else if (ra < rb) {
      problems.push(
        `layering: ${edge.from} imports ${edge.to}, but ${a} (layer ${ra}) is below ${b} (layer ${rb}) and may only import lower layers`,
      );
    }
  }
  for (const cycle of cyclesOf(graph)) {
    const steps = cycle.map((u, i) => {
      const v = cycle[(i + 1) % cycle.length];
      const files = graph.get(u)!.get(v)!
        .map((e) => `${e.from} -> ${e.to}`).join(", ");
      return `  ${u} -> ${v}: ${files}`;
    });
    problems.push(
      `import cycle between top-level folders ${
        [...cycle, cycle[0]].join(" -> ")
      }:\n${steps.join("\n")}`,
    );
  }
  return problems;
}

/**
 * One cycle per strongly connected component of more than one unit
 * (Tarjan's algorithm), as the units in import order.
 */
function cyclesOf(graph: Map<string, Map<string, Edge[]>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const nodes = [
    ...new Set([
      ...graph.keys(),
      ...[...graph.values()].flatMap((m) => [...m.keys()]),
    ]),
  ].sort();
  const visit = (u: string) => {
    index.set(u, index.size);
    low.set(u, index.get(u)!);
    stack.push(u);
    onStack.add(u);
    for (const v of [...(graph.get(u)?.keys() ?? [])].sort()) {
      if (!index.has(v)) {
        visit(v);
        low.set(u, Math.min(low.get(u)!, low.get(v)!));
      } else if (onStack.has(v)) {
        low.set(u, Math.min(low.get(u)!, index.get(v)!));
      }
    }
    if (low.get(u) === index.get(u)) {
      const component: string[] = [];
      let v: string;
      do {
        v = stack.pop()!;
        onStack.delete(v);
        component.push(v);
      } while (v !== u);
      if (component.length > 1) components.push(component);
    }
  };
  for (const u of nodes) if (!index.has(u)) visit(u);
  // Within a component, walk from its first unit back to it (breadth first,
  // so the cycle shown is a shortest one through that unit).
  return components.map((component) => {
    const members = new Set(component);
    const start = [...component].sort()[0];
    const parent = new Map<string, string>();
    const queue = [start];
    while (queue.length) {
      const u = queue.shift()!;
      for (const v of [...(graph.get(u)?.keys() ?? [])].sort()) {
        if (!members.has(v)) continue;
        if (v === start) {
          const path = [u];
          while (path[0] !== start) path.unshift(parent.get(path[0])!);
          return path;
        }
        if (!parent.has(v)) {
          parent.set(v, u);
          queue.push(v);
        }
      }
    }
    return component;
  });
}

/** The .ts files below `root`, relative to it, without node_modules. */
export function sourceFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      if (e.name === "node_modules" || e.name === ".git") continue;
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path);
      else if (e.isFile && /\.[mc]?tsx?$/.test(e.name)) {
        out.push(relative(root, path));
      }
    }
  };
  walk(root);
  return out.sort();
}

/** The import edges between the files below `root`, by `deno info --json`. */
export async function importGraph(root: string): Promise<Edge[]> {
  const files = sourceFiles(root);
  const source = files
    .map((f) => `import ${JSON.stringify(pathToFileURL(`${root}/${f}`).href)};`)
    .join("\n");
  let config: string[] = ["--no-config"];
  try {
    Deno.statSync(`${root}/deno.json`);
    config = [`--config=${root}/deno.json`];
  } catch { /* no config: plain resolution */ }
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "info",
      "--json",
      ...config,
      `data:application/typescript;base64,${btoa(source)}`,
    ],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `deno info failed (exit ${code}): ${new TextDecoder().decode(stderr)}`,
    );
  }
  const info = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: {
      specifier: string;
      dependencies?: {
        code?: { specifier?: string };
        type?: { specifier?: string };
      }[];
    }[];
  };
  const inside = (url: string | undefined): string | undefined => {
    if (!url?.startsWith("file:")) return undefined;
    const path = relative(root, fileURLToPath(url));
    return path.startsWith("..") || path.startsWith("node_modules/")
      ? undefined
      : path;
  };
  const edges: Edge[] = [];
  for (const m of info.modules) {
    const from = inside(m.specifier);
    if (!from) continue;
    const seen = new Set<string>();
    for (const dep of m.dependencies ?? []) {
      for (
        const to of [inside(dep.code?.specifier), inside(dep.type?.specifier)]
      ) {
        if (to && !seen.has(to)) {
          seen.add(to);
          edges.push({ from, to });
        }
      }
    }
  }
  return edges;
}

if (import.meta.main) {
  const root = Deno.args[0] ?? fileURLToPath(new URL("..", import.meta.url));
  const dir = root.replace(/\/$/, "");
  const edges = await importGraph(dir);
  const problems = checkLayers(edges);
  if (problems.length) {
    console.error(
      `check_layers: ${problems.length} problem(s) in the import graph of ${dir}:\n- ${
        problems.join("\n- ")
      }`,
    );
    Deno.exit(1);
  }
  console.log(
    `check_layers: ${edges.length} imports, no cycle between top-level folders, layers ${
      LAYERS.map((l) => l.join(" ")).join(" < ")
    }`,
  );
}
