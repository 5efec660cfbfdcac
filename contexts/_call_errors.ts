// What a caller raises for a call that did not return: the daemon's error
// reply, mapped to the class callers catch, and the timeout. The daemon's
// client (_client.ts) and the in-process mode (priv_context.ts) both use
// these, so a test in-process sees what production sees.

import { safeText } from "../core/_safe_text.ts";
import {
  PrivsepQueueFull,
  PrivsepTimeout,
  QUEUE_FULL_CODE,
  RemoteError,
  type RemoteErrorInfo,
} from "../errors.ts";

/**
 * The error a call rejects with when its daemon answers with an error
 * envelope: `PrivsepQueueFull` when the daemon refused it for a full queue
 * (nothing ran), `RemoteError` for anything else. The envelope is data; no
 * class is looked up by its name.
 */
export function replyError(
  info: RemoteErrorInfo,
  entrypoint: string,
  context: string,
): Error {
  // The daemon's text reaches the service's logs and terminals: no control,
  // line-separator or bidi character but line feeds and tabs (a compromised
  // daemon's escapes, found by a review).
  info = {
    ...info,
    name: safeText(String(info.name)),
    ...(info.code !== undefined
      ? { code: safeText(String(info.code)).slice(0, 200) }
      : {}),
    message: safeText(String(info.message), true),
    ...(typeof info.stack === "string"
      ? { stack: safeText(info.stack, true) }
      : {}),
  };
  return info.code === QUEUE_FULL_CODE
    ? new PrivsepQueueFull(
      `privileged call ${entrypoint} of ${context} was refused: ${info.message}`,
      { context, entrypoint },
    )
    : new RemoteError(info, entrypoint);
}

/** The error of a call that did not answer within `timeoutMs`. */
export function callTimeout(
  context: string,
  entrypoint: string,
  timeoutMs: number,
  started: number,
): PrivsepTimeout {
  return new PrivsepTimeout(
    `privileged call ${entrypoint} of ${context} did not answer within ${timeoutMs} ms`,
    {
      context,
      entrypoint,
      elapsedMs: Math.round(performance.now() - started),
    },
  );
}
