// A hand-written Standard Schema (https://standardschema.dev): any library
// that implements it (Zod, Valibot, ArkType) works the same way.
import { normalize } from "node:path";
import type { StandardSchemaV1 } from "../../../mod.ts";

/**
 * A path naming a `.conf` file directly in `dir`: no `..`, no sub-directory,
 * no other suffix. What the daemon checks before the function runs.
 */
export function confFileIn(dir: string): StandardSchemaV1<string> {
  return {
    "~standard": {
      version: 1,
      vendor: "privsep-example",
      validate(value: unknown) {
        if (typeof value !== "string") {
          return { issues: [{ message: "expected a path string" }] };
        }
        const name = value.slice(dir.length + 1);
        if (
          normalize(value) !== value || !value.startsWith(`${dir}/`) ||
          !/^[a-z0-9][a-z0-9_.-]*\.conf$/.test(name)
        ) {
          return {
            issues: [{ message: `must be a .conf file directly in ${dir}` }],
          };
        }
        return { value };
      },
    },
  };
}
