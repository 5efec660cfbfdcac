// A hand-written Standard Schema (https://standardschema.dev), checked in the
// daemon before the function runs.
import type { StandardSchemaV1 } from "../../../mod.ts";

/** One of `names`, exactly: a file name from a fixed list, never a path. */
export function oneOf(names: readonly string[]): StandardSchemaV1<string> {
  const allowed = new Set(names);
  return {
    "~standard": {
      version: 1,
      vendor: "privsep-example",
      validate(value: unknown) {
        if (typeof value !== "string" || !allowed.has(value)) {
          return {
            issues: [{ message: `must be one of ${[...allowed].join(", ")}` }],
          };
        }
        return { value };
      },
    },
  };
}
