// The rules of one privileged call, written once: the daemon's serving loop
// (daemon/_session.ts) and the in-process mode of the testing kit
// (contexts/priv_context.ts) both run calls through invoke() and build their
// reply with replyFrame(), so the testing mode cannot drift from production.
// Private: no export of the package re-exports it.

import type { RemoteErrorInfo } from "../errors.ts";
import { runWithSignal } from "./call_scope.ts";
import type { CallAbort } from "./_call_abort.ts";
import {
  type EntrypointOptions,
  validateArgs,
  validateResult,
} from "./schema.ts";
import { describeError, encodeMessage, Kind } from "../protocol/messages.ts";
import { encodeMessageParts, type FrameParts } from "../protocol/_parts.ts";

/** What invoke() needs of an entrypoint. */
export interface Invocable {
  /** `path#function`, relative to the context's prefix. */
  key: string;
  /** The privileged function itself. */
  fn: (...args: unknown[]) => unknown;
  /** Schemas and audit options. */
  options?: EntrypointOptions;
}

/** How a call ended: the function's value, or what it (or a schema) threw. */
export type Outcome = { value: unknown } | { error: unknown };

/**
 * Runs one call of `entrypoint` with `args`: waits for `wait` (a slot) when
 * given, refuses to start once `call` was cancelled, validates the arguments
 * with the entrypoint's schemas, runs the function with `call.signal` as its
 * `callSignal()` (made only if the function asks), validates its result, and
 * hands the outcome to `done`, exactly once, with `token` (so that one
 * function serves every call, without a closure per call).
 *
 * A synchronous function without schemas and without `wait` is run and
 * settled synchronously: `done` has been called when this returns
 * `undefined`, and no promise was made on the way. Otherwise it returns the
 * promise of `done`'s call; it rejects only when `done` throws.
 */
export function invoke<T>(
  entrypoint: Invocable,
  args: unknown[],
  call: CallAbort,
  done: (outcome: Outcome, token: T) => void,
  wait?: Promise<void>,
  token?: T,
): Promise<void> | undefined {
  const { key, fn, options } = entrypoint;
  if (wait === undefined && !options?.args && !options?.result) {
    let result: unknown;
    try {
      result = runWithSignal(call, () => fn(...args));
    } catch (error) {
      done({ error }, token as T);
      return;
    }
    if (typeof (result as PromiseLike<unknown>)?.then !== "function") {
      done({ value: result }, token as T);
      return;
    }
    return Promise.resolve(result).then(
      (value) => done({ value }, token as T),
      (error) => done({ error }, token as T),
    );
  }
  return (async () => {
    let outcome: Outcome;
    try {
      if (wait) await wait;
      call.throwIfAborted();
      const checked = await validateArgs(key, fn, options, args);
      outcome = {
        value: await validateResult(
          key,
          options,
          await runWithSignal(call, () => fn(...checked)),
        ),
      };
    } catch (error) {
      done({ error }, token as T);
      return;
    }
    done(outcome, token as T);
  })();
}

/** How replies are encoded. */
export interface ReplyLimits {
  /** The largest frame body the caller accepts. */
  maxFrameBytes: number;
  /** Whether error replies carry the stack. */
  withStack: boolean;
  /** Rewrites an error's envelope before it is sent (advice, say). */
  hint?: (info: RemoteErrorInfo) => RemoteErrorInfo;
}

/**
 * The reply of a finished call: a result frame, or an error frame when the
 * call failed or its value cannot be sent (it does not encode, or does not
 * fit in `maxFrameBytes`); `error` is then what the error frame describes.
 */
export type Reply<F = Uint8Array> =
  | { frame: F; ok: true }
  | { frame: F; ok: false; error: unknown };

/**
 * Encodes the reply to call `id` from its outcome. With `split`, a value
 * carrying large `Uint8Array`s comes back as their parts, uncopied (see
 * protocol/_parts.ts): to be written before the entrypoint's code runs again.
 */
export function replyFrame(
  id: number,
  outcome: Outcome,
  limits: ReplyLimits,
): Reply;
export function replyFrame(
  id: number,
  outcome: Outcome,
  limits: ReplyLimits,
  split: true,
): Reply<Uint8Array | FrameParts>;
export function replyFrame(
  id: number,
  outcome: Outcome,
  limits: ReplyLimits,
  split = false,
): Reply<Uint8Array | FrameParts> {
  if ("value" in outcome) {
    try {
      const message = [Kind.Result, id, outcome.value];
      return {
        frame: split
          ? encodeMessageParts(message, limits.maxFrameBytes)
          : encodeMessage(message, limits.maxFrameBytes),
        ok: true,
      };
    } catch (error) {
      return { frame: errorFrame(id, error, limits), ok: false, error };
    }
  }
  return {
    frame: errorFrame(id, outcome.error, limits),
    ok: false,
    error: outcome.error,
  };
}

/** Below this limit not even a cut error message is tried. */
const CUT_MIN_FRAME = 8192;

/**
 * An error reply that always fits: when the envelope is too large for a
 * frame (a message quoting a huge argument, large data, a long stack), it is
 * sent again with the message cut and without data and stack.
 */
export function errorFrame(
  id: number,
  error: unknown,
  limits: ReplyLimits,
): Uint8Array {
  const described = describeError(error, limits.withStack);
  const info = limits.hint ? limits.hint(described) : described;
  const max = limits.maxFrameBytes;
  try {
    return encodeMessage([Kind.Error, id, info], max);
  } catch {
    if (max < CUT_MIN_FRAME) {
      // Not even a cut message fits: say only that.
      return encodeMessage([Kind.Error, id, {
        name: "ReplyTooLarge",
        message: "error reply too large",
      }], max);
    }
    return encodeMessage([Kind.Error, id, {
      name: info.name.slice(0, 200),
      message: `${
        info.message.slice(0, 4096)
      }… (error reply cut: it was larger than maxFrameBytes ${max})`,
      ...(info.code ? { code: info.code.slice(0, 200) } : {}),
    }], max);
  }
}
