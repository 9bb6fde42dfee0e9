/**
 * The emulator's GWLB behaviours with real sockets:
 * - returns that break the rules (cookie changed, source port not kept) are refused, counted and not delivered,
 *   using the stand-in reflector (test/lab/fixtures/reflector.mjs) that can misbehave on purpose;
 * - the real appliance with two workers keeps both directions of a flow together even when GWLB sends the two
 *   directions from different outer source ports (docs/architecture.md §3: GWLB's source-port policy is unknown), and sends
 *   back an option it does not understand verbatim (docs/architecture.md §2).
 */
import t from 'tap';
import { join } from 'node:path';
import { startLab, type Lab } from '../../src/lab/lab.js';
import { cleanup, labNamespaces } from '../../src/lab/netns.js';
import { HTTP_PORT, LAB_FIXTURES, PASS_ALL_POLICY, e2ePrerequisites, randomFile, sha256File, startServers, uniqueLabId } from './fixtures/lab-helpers.js';

const problems = await e2ePrerequisites(['curl', 'ping']);
if (problems.length > 0) {
  t.fail(`the lab e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const labs: Lab[] = [];
  const ids: string[] = [];
  t.teardown(async () => {
    for (const lab of labs) await lab.down();
    for (const id of ids) await cleanup(labNamespaces(id).prefix);
  });
  const reflector = (mode: string): string[] => [process.execPath, join(LAB_FIXTURES, 'reflector.mjs'), 'ADDR', 'PORT', 'ADMIN', `--mangle=${mode}`];

  t.test('returns that break the rules are counted and not delivered', async (t) => {
    const id = uniqueLabId('rchk');
    ids.push(id);
    const lab = await startLab({ id });
    labs.push(lab);
    const ping = () => lab.exec('client', ['ping', '-c', '2', '-i', '0.2', '-W', '1', '10.77.2.2'], { timeoutMs: 10_000 });

    const good = await lab.startAppliance({ policy: '', name: 'good', command: reflector('none') });
    t.equal((await ping()).code, 0, 'a faithful reflector: ping works');
    await good.stop();
    await lab.removeTarget('good');

    for (const [mode, reason] of [
      ['cookie', 'unknown-cookie'],
      ['port', 'wrong-source-port'],
    ] as const) {
      const bad = await lab.startAppliance({ policy: '', name: mode, command: reflector(mode) });
      const before = await lab.emulatorStatus();
      t.not((await ping()).code, 0, `${mode} mangled: ping fails`);
      const after = await lab.emulatorStatus();
      t.ok(after.counters.returnsRejected[reason] >= before.counters.returnsRejected[reason] + 2, `${reason} counted`);
      t.equal(after.counters.returnsAccepted, before.counters.returnsAccepted, 'nothing accepted, nothing delivered');
      await bad.stop();
      await lab.removeTarget(mode);
    }
  });

  t.test('per-direction source ports and an unknown option: a 2-worker appliance keeps each flow whole', async (t) => {
    const id = uniqueLabId('pdir');
    ids.push(id);
    // Class 0xFFFF (experimental, RFC 8926 §8), type 0x01 (not critical), 1 word of data: must come back verbatim.
    const lab = await startLab({ id, emulator: { sourcePortMode: 'per-direction', extraOptionsHex: 'ffff0101deadbeef' } });
    labs.push(lab);
    await lab.startAppliance({ policy: PASS_ALL_POLICY, workers: 2 });
    // The 8-byte option eats into GWLB's 8568-byte datagram: inner packets must stay ≤ 8492 bytes, so both hosts
    // advertise a smaller TCP MSS (the emulator drops and counts larger packets, as GWLB never sends them).
    for (const [host, gw] of [['client', '10.77.1.1'], ['server', '10.77.2.1']] as const) {
      const r = await lab.exec(host, ['ip', 'route', 'change', 'default', 'via', gw, 'advmss', '8400']);
      t.equal(r.code, 0, r.stderr);
    }
    const dir = t.testdir({});
    const blob = randomFile(dir, 'blob.bin', 4 * 1024 * 1024);
    await startServers(lab, dir);
    for (let i = 0; i < 4; i++) {
      const out = join(dir, `got${i}.bin`);
      const r = await lab.exec('client', ['curl', '-sS', '--fail', '--max-time', '30', '-o', out, `http://10.77.2.2:${HTTP_PORT}/blob.bin`], {
        timeoutMs: 40_000,
      });
      t.equal(r.code, 0, r.stderr);
      t.equal(sha256File(out), sha256File(blob), `download ${i} intact`);
    }
    const s = await lab.emulatorStatus();
    t.equal(s.returnsRejectedTotal, 0, JSON.stringify(s.counters.returnsRejected));
    t.equal(s.counters.innerTooLarge, 0);
  });
}
