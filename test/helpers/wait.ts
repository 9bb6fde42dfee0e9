/**
 * Awaits a condition that depends on another process (packets crossing sockets, an HTTP state), checking it
 * after each short interval, bounded by `timeoutMs`; fails with the description instead of hanging.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
