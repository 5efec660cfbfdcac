// Which timers are pending in the daemon (the entrypoints' and its own): the
// read loop's blocking idle read must not delay one.

/**
 * Counts the timers pending in this process, by wrapping the timer functions;
 * call it before any entrypoint module loads. Returns the live set of ids
 * (a fired timeout leaves it; an interval stays until cleared).
 */
export function trackTimers(): Set<number> {
  const live = new Set<number>();
  const g = globalThis as unknown as Record<
    string,
    (...a: unknown[]) => number
  >;
  const {
    setTimeout: st,
    setInterval: si,
    clearTimeout: ct,
    clearInterval: ci,
  } = g;
  g.setTimeout = (fn: unknown, ms?: unknown, ...args: unknown[]) => {
    const id: number = st(
      typeof fn === "function"
        ? (...a: unknown[]) => {
          live.delete(id);
          return (fn as (...a: unknown[]) => unknown)(...a);
        }
        : fn,
      ms,
      ...args,
    );
    live.add(id);
    return id;
  };
  g.setInterval = (...a: unknown[]) => {
    const id = si(...a);
    live.add(id);
    return id;
  };
  g.clearTimeout = (id: unknown) => {
    live.delete(id as number);
    return ct(id);
  };
  g.clearInterval = (id: unknown) => {
    live.delete(id as number);
    return ci(id);
  };
  return live;
}
