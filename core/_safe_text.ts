// Text from the other end of the channel, made safe for a log record or a
// terminal. Private: the daemon's audit records (daemon/_audit.ts) and the
// caller's forwarding of the daemon's records (contexts/_client.ts).

/**
 * What text from the other side may not carry into a log record, each
 * replaced by `?`: C0 and C1 controls (NEL and CSI among them), DEL, the
 * line and paragraph separators, and the bidi controls (Unicode's
 * Bidi_Control: marks, embeddings, overrides and isolates), which could
 * start a new line, color or rewrite a terminal, or reorder what a log
 * viewer shows.
 */
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/** The same, but line feeds and tabs stay (a multi-line message). */
const UNSAFE_BUT_LINES =
  // deno-lint-ignore no-control-regex
  /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/**
 * `text` with every character of {@linkcode UNSAFE} replaced by `?`; with
 * `lines`, line feeds and tabs are kept.
 *
 * @example
 * ```ts ignore
 * safeText("a\x1b[31mb\nc"); // "a?[31mb?c"
 * safeText("a\x1b[31mb\nc", true); // "a?[31mb\nc"
 * ```
 */
export function safeText(text: string, lines = false): string {
  return text.replace(lines ? UNSAFE_BUT_LINES : UNSAFE, "?");
}
