// Names of a message's fields, for error messages only: a call's bad
// argument reads `args[1]`, not `value[3][1]`. Private: encodeMessage() and
// encodeMessageParts() use it. The kinds are messages.ts's Kind (a test
// checks that they agree; importing Kind here would make an import cycle).

/** The field names of a message of `kind`, space-separated. */
export function fieldsOf(kind: unknown): string | undefined {
  // String literals, so the hot path allocates nothing.
  return kind === 1 // Kind.Call
    ? "kind id entrypoint args"
    : kind === 2 // Kind.Result
    ? "kind id value"
    : kind === 3 // Kind.Error
    ? "kind id error"
    : kind === 6 // Kind.Fatal
    ? "kind error"
    : kind === 5 // Kind.Log
    ? "kind record"
    : undefined;
}
