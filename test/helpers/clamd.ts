/**
 * A real clamd for a test: started in the foreground on a temp unix socket and a loopback TCP port, with a
 * temp copy of rules/clamav as its only database, stopped by PID at the end of the test. When clamd is not
 * installed this throws with the install command: the test fails, it is never skipped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLAMD_INSTALL_HINT, findClamd, startLocalClamd, type LocalClamd } from '../../src/av/local-clamd.js';

export const SIGNATURES_DIR = new URL('../../rules/clamav/', import.meta.url).pathname;

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface TestClamdOptions {
  readonly signatureFiles?: readonly string[];
  readonly extraConfig?: readonly string[];
  /** Reuse this directory (restart on the same socket path); default: a new temp directory. */
  readonly dir?: string;
}

export function tempDir(t: Teardown, prefix: string): string {
  // Not t.testdir(): unix socket paths must stay under 108 bytes.
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startTestClamd(t: Teardown, opts: TestClamdOptions = {}): Promise<LocalClamd> {
  if (findClamd() === null) throw new Error(`clamd is not installed: ${CLAMD_INSTALL_HINT}`);
  const clamd = await startLocalClamd({
    dir: opts.dir ?? tempDir(t, 'gwi-clamd-'),
    signaturesDir: SIGNATURES_DIR,
    ...(opts.signatureFiles === undefined ? {} : { signatureFiles: opts.signatureFiles }),
    ...(opts.extraConfig === undefined ? {} : { extraConfig: opts.extraConfig }),
  });
  t.teardown(() => clamd.stop('SIGKILL'));
  return clamd;
}
