// A hand-written Standard Schema (https://standardschema.dev), checked in the
// daemon before the function runs.
import type { StandardSchemaV1 } from "../../../mod.ts";

/** One of `ports`, exactly. */
export function portIn(ports: readonly number[]): StandardSchemaV1<number> {
  return {
    "~standard": {
      version: 1,
      vendor: "privsep-example",
      validate(value: unknown) {
        if (typeof value !== "number" || !ports.includes(value)) {
          return {
            issues: [{
              message: `must be one of the ports ${ports.join(", ")}`,
            }],
          };
        }
        return { value };
      },
    },
  };
}
