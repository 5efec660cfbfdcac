import assert from "node:assert/strict";
import {
  PrivsepQueueFull,
  PrivsepTimeout,
  QUEUE_FULL_CODE,
  RemoteError,
} from "../errors.ts";
import { callTimeout, replyError } from "./_call_errors.ts";

Deno.test("replyError() maps the queue-full code to PrivsepQueueFull", () => {
  const error = replyError(
    { name: "PrivsepQueueFull", message: "queue full", code: QUEUE_FULL_CODE },
    "ops.ts#echo",
    "file:///app/mod.ts#ctx",
  );
  assert.ok(error instanceof PrivsepQueueFull);
  assert.equal(error.context, "file:///app/mod.ts#ctx");
  assert.equal(error.entrypoint, "ops.ts#echo");
  assert.equal(
    error.message,
    "privileged call ops.ts#echo of file:///app/mod.ts#ctx was refused: queue full",
  );
});

Deno.test("replyError() makes any other envelope a RemoteError with its data", () => {
  const info = {
    name: "NotFound",
    message: "gone",
    code: "ENOENT",
    data: { path: "/x" },
  };
  const error = replyError(info, "ops.ts#read", "file:///app/mod.ts#ctx");
  assert.ok(error instanceof RemoteError);
  assert.equal(error.remoteName, "NotFound");
  assert.equal(error.code, "ENOENT");
  assert.deepEqual(error.data, { path: "/x" });
  assert.equal(error.entrypoint, "ops.ts#read");
  assert.deepEqual(error.cause, info);
});

Deno.test("replyError() does not trust a name that says queue full without its code", () => {
  const error = replyError(
    { name: "PrivsepQueueFull", message: "no" },
    "ops.ts#echo",
    "ctx",
  );
  assert.ok(error instanceof RemoteError);
});

Deno.test("callTimeout() names the call, the limit and the time it took", () => {
  const started = performance.now() - 1234;
  const error = callTimeout(
    "file:///app/mod.ts#ctx",
    "ops.ts#slow",
    1000,
    started,
  );
  assert.ok(error instanceof PrivsepTimeout);
  assert.equal(
    error.message,
    "privileged call ops.ts#slow of file:///app/mod.ts#ctx did not answer within 1000 ms",
  );
  assert.equal(error.entrypoint, "ops.ts#slow");
  assert.ok(error.elapsedMs >= 1234, String(error.elapsedMs));
});

Deno.test("replyError() gives the daemon's name, message and stack without control characters but line feeds and tabs", () => {
  const error = replyError(
    {
      name: "Evil\x1b[31m\n",
      code: "C\x1b[31m\u2028",
      message: "line one\n\tline \x1b]0;title\x07two\u202e",
      stack: "Evil: x\n    at f (\x1b[2Jfile.ts:1:1)",
    },
    "x.ts#f",
    "ctx",
  ) as RemoteError;
  assert.equal(error.remoteName, "Evil?[31m?");
  assert.equal(error.code, "C?[31m?");
  assert.equal(error.message, "line one\n\tline ?]0;title?two?");
  assert.equal(error.cause.stack, "Evil: x\n    at f (?[2Jfile.ts:1:1)");
});
