// Writes cli/_files.json: the package's own files that `privsep vendor`
// copies, taken from what `deno publish --dry-run` publishes (the TypeScript
// modules, deno.json and the manifest itself). `--check` fails when the
// committed manifest differs (deno task check runs it).
const root = new URL("../", import.meta.url);
const out = await new Deno.Command(Deno.execPath(), {
  args: ["publish", "--dry-run", "--allow-dirty"],
  cwd: root,
  env: { NO_COLOR: "1" },
  stdout: "piped",
  stderr: "piped",
}).output();
const text = new TextDecoder().decode(out.stdout) +
  new TextDecoder().decode(out.stderr);
if (!out.success) {
  console.error(`deno publish --dry-run failed:\n${text}`);
  Deno.exit(1);
}
const prefix = root.href;
const files = [...text.matchAll(/^\s+(file:\/\/\S+) \(/gm)]
  .map((m) => m[1].slice(prefix.length))
  .filter((f) => /\.ts$/.test(f) || f === "deno.json");
if (!files.includes("mod.ts") || !files.includes("daemon.ts")) {
  console.error(`no file list in deno publish --dry-run's output:\n${text}`);
  Deno.exit(1);
}
files.push("cli/_files.json");
const manifest =
  JSON.stringify({ files: [...new Set(files)].sort() }, null, 2) +
  "\n";
const path = new URL("cli/_files.json", root);
if (Deno.args.includes("--check")) {
  let current = "";
  try {
    current = await Deno.readTextFile(path);
  } catch { /* missing */ }
  if (current !== manifest) {
    console.error(
      "cli/_files.json does not list the files deno publish would publish; run: deno run -A .ci/files_manifest.ts",
    );
    Deno.exit(1);
  }
} else {
  await Deno.writeTextFile(path, manifest);
  console.log(`cli/_files.json: ${files.length} files`);
}
