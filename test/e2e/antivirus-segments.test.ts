/**
 * EICAR downloads cut into 1-byte segments and delivered out of order, through the inline antivirus stage in the
 * lab (issue 10). The server side sends them: download-injector.py in the server namespace accepts a kernel
 * connection, reads the request and sends the response as raw segments at its own sequence numbers (the mirror of
 * the upload tests' content-client.py raw); curl in the client namespace reads the reply with a kernel socket.
 * Every subtest asserts what the client actually received. The control subtest sends a clean body with the same
 * technique and checks it arrives intact, so a block is the appliance's doing, not the injector's.
 */
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startLab, type ApplianceHandle, type Lab, type LabProcess } from '../../src/lab/lab.js';
import { cleanup, labNamespaces } from '../../src/lab/netns.js';
import { eicarTestObject } from '../../src/av/eicar.js';
import { startTestClamd } from '../helpers/clamd.js';
import { e2ePrerequisites, jsonLines, ROOT, uniqueLabId, waitForOutput, type Json } from './fixtures/lab-helpers.js';

const SERVER4 = '10.77.2.2';
const EICAR_SIGNATURE = 'GWI.Test.EICAR.UNOFFICIAL';
const WAIT_MS = 30_000;
const INJECTOR = join(ROOT, 'test', 'e2e', 'fixtures', 'download-injector.py');
const INJECTOR_PORT = 8070;
/** The injector's bodies: PAD_BYTES dots, then the EICAR string (or as many clean letters) as the last bytes. */
const PAD_BYTES = 200;
const EICAR = eicarTestObject();
const CLEAN_BODY = Buffer.concat([Buffer.alloc(PAD_BYTES, 0x2e), Buffer.from(Array.from({ length: EICAR.length }, (_, i) => 0x61 + (i % 26)))]);

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(25);
  }
}

const POLICY = ['version: 1', 'description: antivirus segments e2e', 'default_action: pass', 'antivirus:', '  enabled: true', ''].join('\n');

const problems = await e2ePrerequisites(['curl', 'python3']);
if (problems.length > 0) {
  t.fail(`the antivirus segment e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('avsg');
  let lab: Lab | undefined;
  let appliance: ApplianceHandle | undefined;
  let injector: LabProcess | undefined;
  t.teardown(async () => {
    await lab?.down();
    await cleanup(labNamespaces(id).prefix);
  });
  const dir = t.testdir({ out: {} });
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, POLICY);
  const clamd = await startTestClamd(t);

  const L = (): Lab => lab as Lab;
  const applianceLog = (): Json[] => jsonLines(readFileSync((appliance as ApplianceHandle).logFile, 'utf8'));
  const findings = (): Json[] => applianceLog().filter((e) => e['kind'] === 'content_finding');
  const served = (path: string): Json | undefined => jsonLines((injector as LabProcess).stdout()).find((e) => e['event'] === 'served' && e['path'] === path);

  t.before(async () => {
    lab = await startLab({ id });
    appliance = await lab.startAppliance({ policy: policyFile, workers: 1, extraArgs: ['--clamd', clamd.unixAddress] });
    injector = lab.spawn('server', ['python3', INJECTOR, String(INJECTOR_PORT)]);
    await waitForOutput(injector, /"event":"ready"/);
  });

  /** curl in the client namespace: exit code, stderr, and the body bytes it wrote. */
  const curl = async (path: string, out: string): Promise<{ code: number; stderr: string; body: Buffer }> => {
    const file = join(dir, 'out', out);
    const r = await L().exec('client', ['curl', '-sS', '--max-time', '20', '-o', file, `http://${SERVER4}:${INJECTOR_PORT}${path}`], { timeoutMs: 60_000 });
    return { code: r.code, stderr: r.stderr, body: existsSync(file) ? readFileSync(file) : Buffer.alloc(0) };
  };

  t.test('control: a clean body sent the same ways arrives intact (the technique delivers)', async (t) => {
    for (const path of ['/clean/1/inorder', '/clean/1/shuffled', '/clean/7/reversed']) {
      const r = await curl(path, `control-${path.replaceAll('/', '_')}`);
      t.equal(r.code, 0, `${path}: curl succeeds ${r.stderr}`);
      t.ok(r.body.equals(CLEAN_BODY), `${path}: byte-identical (${r.body.length} of ${CLEAN_BODY.length} bytes)`);
      const s = await waitUntil(`${path} served`, WAIT_MS, () => served(path));
      t.ok(Number(s['segments']) > CLEAN_BODY.length / 7, `${path}: sent as ${String(s['segments'])} segments`);
      t.equal(s['end'], 'fin', `${path}: the client closed normally`);
    }
    t.same(findings(), [], 'no finding for clean bodies');
  });

  t.test('an EICAR download in 1-byte segments, in order, shuffled, or reversed 7-byte segments with retransmissions, never arrives whole', async (t) => {
    const before = findings().length;
    const paths = ['/eicar/1/inorder', '/eicar/1/shuffled', '/eicar/7/reversed'];
    for (const path of paths) {
      const r = await curl(path, `eicar-${path.replaceAll('/', '_')}`);
      t.not(r.code, 0, `${path}: curl fails`);
      t.match(r.stderr, /reset|Recv failure/i, `${path}: reset, not a timeout`);
      t.equal(r.body.indexOf(EICAR), -1, `${path}: the client never got the complete EICAR string (${r.body.length} body bytes)`);
      t.ok(r.body.length < PAD_BYTES + EICAR.length, `${path}: received ${r.body.length} of ${PAD_BYTES + EICAR.length} body bytes`);
      const s = await waitUntil(`${path} served`, WAIT_MS, () => served(path));
      t.equal(s['end'], 'reset', `${path}: the server end was reset too`);
    }
    const found = await waitUntil('three content_findings', WAIT_MS, () => {
      const f = findings().slice(before);
      return f.length >= paths.length ? f : undefined;
    });
    for (const f of found) t.match(f, { stage: 'av', action: 'reject', signature: EICAR_SIGNATURE, reason: 'av.infected', direction: 'to_client', dstPort: INJECTOR_PORT });
  });
}
