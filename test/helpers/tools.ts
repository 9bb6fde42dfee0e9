/**
 * Optional command-line tools some tests cross-check with (tshark, text2pcap). A missing tool is a failed test
 * with the reason and the install command, never a silent skip: CI installs every tool (scripts/install-deps.sh)
 * and demands zero skipped tests.
 */
import { spawnSync } from 'node:child_process';

/** True when `cmd -v` runs; otherwise records a failure on `t` naming the Debian package to install. */
export function haveTool(t: { fail: (message: string) => unknown }, cmd: string, debianPackage: string, purpose: string): boolean {
  const r = spawnSync(cmd, ['-v'], { encoding: 'utf8' });
  if (r.error === undefined && r.status === 0) return true;
  t.fail(`${cmd} is not installed (apt-get install -y ${debianPackage}): ${purpose} cannot run`);
  return false;
}
