// A hand-written Standard Schema (https://standardschema.dev), checked in the
// daemon before the function runs.
import type { StandardSchemaV1 } from "../../../mod.ts";

/** Longest path recorded. */
export const MAX_PATH_LENGTH = 200;

/**
 * A URL path as `URL.pathname` gives it: "/" then printable ASCII only, so a
 * caller cannot forge log lines with a newline.
 */
export function urlPath(): StandardSchemaV1<string> {
  return {
    "~standard": {
      version: 1,
      vendor: "privsep-example",
      validate(value: unknown) {
        if (
          typeof value !== "string" || value.length > MAX_PATH_LENGTH ||
          !/^\/[\x21-\x7e]*$/.test(value)
        ) {
          return {
            issues: [{
              message:
                `must be a URL path of at most ${MAX_PATH_LENGTH} printable ASCII characters starting with "/"`,
            }],
          };
        }
        return { value };
      },
    },
  };
}
