import t from 'tap';
import { ClamdCanary, type CanaryState } from '../../src/av/canary.js';
import { ClamdScanner } from '../../src/av/clamd.js';
import { startTestClamd, tempDir } from '../helpers/clamd.js';
import { waitFor } from '../helpers/wait.js';

t.test('canary: down before the first check, up on detection, degraded then down when clamd dies, up again', async (t) => {
  const dir = tempDir(t, 'gwi-canary-');
  let clamd = await startTestClamd(t, { dir });
  const scanner = new ClamdScanner(clamd.unixAddress);
  const changes: string[] = [];
  const canary = new ClamdCanary(scanner, { downAfterFailures: 2 }, (s, prev) => changes.push(`${prev}->${s.state}`));
  t.equal(canary.status().state, 'down', 'not proven yet: a fail-closed appliance must not report healthy');

  let s = await canary.check();
  t.equal(s.state, 'up');
  t.equal(s.reason, 'GWI.Test.EICAR.UNOFFICIAL', 'the detecting signature');
  t.match(s.version, /^ClamAV /, 'VERSION read when it went up');
  t.equal(s.detected, 1);

  await clamd.stop('SIGKILL');
  s = await canary.check();
  t.equal(s.state, 'degraded', 'one failure after up');
  t.match(s.reason, /^unreachable: /);
  s = await canary.check();
  t.equal(s.state, 'down', 'downAfterFailures failures in a row');
  t.equal(s.consecutiveFailures, 2);

  clamd = await startTestClamd(t, { dir });
  s = await canary.check();
  t.equal(s.state, 'up', 'back up on the same socket');
  t.equal(s.consecutiveFailures, 0);
  t.same(changes, ['down->up', 'up->degraded', 'degraded->down', 'down->up']);
  t.equal(s.checks, 4);
  t.equal(s.failures, 2);
  t.equal(scanner.counters.infected, 2, 'canary scans go through the adapter and are counted');
});

t.test('canary: a clamd that answers PING but does not detect EICAR is down, not up', async (t) => {
  // Only the hash signature: clamd starts, answers PING, and scans EICAR as clean.
  const clamd = await startTestClamd(t, { signatureFiles: ['gwi-test.hdb'] });
  const scanner = new ClamdScanner(clamd.tcpAddress);
  t.equal(await scanner.ping(), true, 'PING alone would call this healthy');
  const canary = new ClamdCanary(scanner);
  const s = await canary.check();
  t.equal(s.state, 'down');
  t.match(s.reason, /clean for the EICAR test object/);
});

t.test('canary: an up scanner that answers clean goes straight to down', async (t) => {
  const dir = tempDir(t, 'gwi-canary-');
  let clamd = await startTestClamd(t, { dir });
  const scanner = new ClamdScanner(clamd.unixAddress);
  const canary = new ClamdCanary(scanner, { downAfterFailures: 5 });
  t.equal((await canary.check()).state, 'up');
  await clamd.stop();
  clamd = await startTestClamd(t, { dir, signatureFiles: ['gwi-test.hdb'] });
  t.equal((await canary.check()).state, 'down', 'no degraded grace for a scanner that does not detect');
});

t.test('canary: start() checks at once and then periodically; overloaded checks change nothing', async (t) => {
  const clamd = await startTestClamd(t);
  const scanner = new ClamdScanner(clamd.unixAddress, { maxConcurrent: 1, maxQueued: 0 });
  const states: CanaryState[] = [];
  let resolveUp: () => void = () => {};
  const up = new Promise<void>((r) => (resolveUp = r));
  const canary = new ClamdCanary(scanner, { intervalMs: 50 }, (s) => {
    states.push(s.state);
    if (s.state === 'up') resolveUp();
  });
  canary.start();
  t.teardown(() => canary.stop());
  await up;
  await waitFor(() => canary.status().checks >= 3, 30_000, 'two periodic checks after the first');
  canary.stop();
  t.same(states, ['up'], 'one change: later checks keep it up');
  // Hold the only slot: the next check is refused by our own pool and must not count as a scanner failure.
  const holder = scanner.begin();
  const before = canary.status();
  const s = await canary.check();
  t.equal(s.inconclusive, before.inconclusive + 1);
  t.equal(s.state, 'up');
  t.equal(s.failures, 0);
  await holder.end();
});
