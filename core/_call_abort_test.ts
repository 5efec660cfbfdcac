import assert from "node:assert/strict";
import { CallAbort } from "./_call_abort.ts";

Deno.test("CallAbort makes its signal when first asked, the same one after", () => {
  const call = new CallAbort();
  assert.equal(call.aborted, false);
  const signal = call.signal;
  assert.equal(signal.aborted, false);
  assert.equal(call.signal, signal);
  let heard: unknown;
  signal.addEventListener("abort", () => heard = signal.reason);
  const reason = new DOMException("cancelled", "AbortError");
  call.abort(reason);
  assert.equal(call.aborted, true);
  assert.equal(signal.aborted, true);
  assert.equal(heard, reason);
  assert.throws(() => call.throwIfAborted(), (e) => e === reason);
});

Deno.test("CallAbort asked for its signal after a cancellation gives an aborted one", () => {
  const call = new CallAbort();
  const reason = new Error("timed out");
  call.abort(reason);
  call.abort(new Error("later")); // only the first counts
  assert.equal(call.aborted, true);
  assert.equal(call.signal.aborted, true);
  assert.equal(call.signal.reason, reason);
  assert.throws(() => call.signal.throwIfAborted(), (e) => e === reason);
});

Deno.test("CallAbort.throwIfAborted() does nothing before a cancellation", () => {
  const call = new CallAbort();
  call.throwIfAborted();
  assert.equal(call.aborted, false);
});

Deno.test("callSignal() inside callWith() in a privileged function is still the call's signal", async () => {
  const { callSignal, callWith, runWithSignal } = await import(
    "./call_scope.ts"
  );
  const call = new CallAbort();
  const [outside, inside] = runWithSignal(
    call,
    () => [callSignal(), callWith({ timeout: 1000 }, () => callSignal())],
  );
  assert.equal(outside, call.signal);
  call.abort(new DOMException("cancelled", "AbortError"));
  // At cc6e013 the scope was { signal }, which callWith's spread kept.
  assert.equal(inside.aborted, true, "callWith() dropped the call's signal");
  assert.equal(inside, outside);
});

Deno.test("CallAbort.abort() without a reason cancels with an AbortError, as AbortController does", () => {
  const call = new CallAbort();
  call.abort();
  assert.throws(
    () => call.throwIfAborted(),
    (e) => e instanceof DOMException && e.name === "AbortError",
  );
  assert.equal((call.signal.reason as DOMException).name, "AbortError");
});
