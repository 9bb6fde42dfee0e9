/**
 * Policy reload semantics on the real appliance over loopback UDP: a decided flow keeps its verdict across a
 * reload by default; with --reevaluate-on-reload true it is decided again by the new policy on its next packet.
 * New flows always get the new policy.
 */
import t from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeGeneve } from '../../src/geneve/codec.js';
import { buildIPv4Udp } from '../../src/packet/build.js';
import { startAppliance, randomPort, randomLoopback, getJson } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';

const DROP_5000 = 'version: 1\ndefault_action: pass\nrules:\n  - { name: no-5000, action: drop, proto: udp, dst_ports: 5000 }\n';
const PASS_ALL = 'version: 1\ndefault_action: pass\n';

async function scenario(t: Tap.Test, reevaluate: boolean): Promise<{ oldFlowAfter: boolean; newFlowAfter: boolean }> {
  const dir = t.testdir({ 'policy.yaml': DROP_5000 });
  const policy = join(dir, 'policy.yaml');
  const port = randomPort();
  const gwlb = randomLoopback();
  const app = await startAppliance(['--listen', '127.0.0.1', '--port', String(port), '--admin-listen', '127.0.0.1:0', '--workers', '1', '--policy', policy, '--reevaluate-on-reload', String(reevaluate)]);
  t.teardown(() => app.stop());
  const rx: Socket = createSocket('udp4');
  const tx: Socket = createSocket('udp4');
  t.teardown(() => (rx.close(), tx.close()));
  const seen = new Set<string>();
  rx.on('message', (m) => seen.add(m.toString('hex')));
  rx.bind(6081, gwlb);
  tx.bind(0, gwlb);
  await Promise.all([once(rx, 'listening'), once(tx, 'listening')]);
  const dgram = (srcPort: number, n: number) => encodeGeneve({ flowCookie: srcPort }, buildIPv4Udp({ src: '10.3.0.1', dst: '10.3.0.2', srcPort, dstPort: 5000, payload: Buffer.from(`n${n}`) }));
  const send = (d: Buffer) => new Promise<void>((r) => tx.send(d, port, '127.0.0.1', () => r()));
  const passes = async (d: Buffer): Promise<boolean> => {
    await send(d);
    // a pass comes back within milliseconds; a drop is proven by a later packet on another flow overtaking it
    const marker = encodeGeneve({ flowCookie: 1 }, buildIPv4Udp({ src: '10.9.9.9', dst: '10.9.9.8', srcPort: 1, dstPort: 2, payload: Buffer.from(String(Math.random())) }));
    await send(marker);
    await waitFor(() => seen.has(marker.toString('hex')), 3000, 'marker');
    return seen.has(d.toString('hex'));
  };
  t.equal(await passes(dgram(40001, 1)), false, 'the rule drops the flow');
  const gen0 = ((await getJson(`${app.statsUrl}/stats`)).body['policy'] as { generation: number }).generation;
  writeFileSync(policy, PASS_ALL);
  await waitFor(async () => ((await getJson(`${app.statsUrl}/stats`)).body['workers'] as { policy_generation: number }[]).every((w) => w.policy_generation > gen0), 30_000, 'reload applied (the load runs in a worker thread)');
  return { oldFlowAfter: await passes(dgram(40001, 2)), newFlowAfter: await passes(dgram(40002, 3)) };
}

t.test('by default a decided flow keeps its verdict across a reload; new flows get the new policy', async (t) => {
  const r = await scenario(t, false);
  t.equal(r.oldFlowAfter, false, 'the established (dropped) flow stays dropped');
  t.equal(r.newFlowAfter, true, 'a new flow passes under the new policy');
});

t.test('with --reevaluate-on-reload true the decided flow is decided again by the new policy', async (t) => {
  const r = await scenario(t, true);
  t.equal(r.oldFlowAfter, true, 'the previously dropped flow now passes');
  t.equal(r.newFlowAfter, true);
});
