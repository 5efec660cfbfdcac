// Runs a system command for the CLI and returns its exit code and its
// output (stdout then stderr); a program that cannot be started gives 127.

/** Runs `cmd` with no stdin; never throws. */
export async function run(
  cmd: string[],
): Promise<{ code: number; out: string }> {
  try {
    const o = await new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const d = new TextDecoder();
    return {
      code: o.code,
      out: (d.decode(o.stdout) + d.decode(o.stderr)).trim(),
    };
  } catch (error) {
    return { code: 127, out: (error as Error).message };
  }
}
