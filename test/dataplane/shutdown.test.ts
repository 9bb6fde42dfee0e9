/**
 * SIGTERM flushes in-flight batches (docs/operations.md, "Stopping"): datagrams the appliance's socket received
 * before SIGTERM are processed and sent back before the process exits 0, not dropped with the socket.
 *
 * To have datagrams in flight at a known moment, worker 0 is stalled from start (--test-faults 0:stall:0:MS): the
 * datagrams wait in its socket, /stats shows the worker has not received them, SIGTERM arrives, and only then does
 * the worker run again. With --batch-size 1 one wake-up reads at most 64 datagrams; an appliance that stops reading
 * on SIGTERM (the old behaviour) sends back at most those and loses the rest.
 */
import t from 'tap';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { encodeGeneve } from '../../src/geneve/codec.js';
import { buildIPv4Udp } from '../../src/packet/build.js';
import { startAppliance, randomPort, randomLoopback, getJson } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';

const DATAGRAMS = 300;
const STALL_MS = 6000;

t.test('datagrams received before SIGTERM are all sent back before exit 0', async (t) => {
  const port = randomPort();
  const gwlb = randomLoopback();
  // Returns come back to GWLB's address, destination port 6081 (docs/architecture.md §2).
  const returns = createSocket('udp4');
  const seen = new Set<string>();
  returns.on('message', (msg) => seen.add(msg.subarray(msg.length - 8).toString()));
  returns.bind(6081, gwlb);
  await once(returns, 'listening');
  const sender = createSocket('udp4');
  sender.bind(0, gwlb);
  await once(sender, 'listening');
  t.teardown(() => {
    returns.close();
    sender.close();
  });

  const app = await startAppliance([
    '--listen', '127.0.0.1', '--port', String(port), '--admin-listen', '127.0.0.1:0', '--workers', '1', '--batch-size', '1',
    '--shutdown-grace-ms', '30000', '--test-faults', `0:stall:0:${STALL_MS}`, '--policy', 'policies/default.yaml',
  ]);
  t.teardown(() => app.stop('SIGKILL'));

  const tags: string[] = [];
  for (let i = 0; i < DATAGRAMS; i++) {
    const tag = `sd${String(i).padStart(6, '0')}`;
    tags.push(tag);
    const inner = buildIPv4Udp({ src: '10.61.0.1', dst: '10.61.0.2', srcPort: 20000 + (i % 50), dstPort: 5353, payload: Buffer.from(tag) });
    const d = encodeGeneve({ endpointIdHi: 0x8000_0001, endpointIdLo: 0x0000_0061, flowCookie: 0x6100 + (i % 50) }, inner);
    await new Promise<void>((resolve, reject) => sender.send(d, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  }
  const before = (await getJson(`${app.statsUrl}/stats`)).body;
  t.ok((before['rx_packets'] as number) < DATAGRAMS - 64, `in flight at SIGTERM: the stalled worker had received ${String(before['rx_packets'])} of ${DATAGRAMS}`);
  t.equal(seen.size, 0, 'nothing came back yet');

  const code = await app.stop('SIGTERM');
  t.equal(code, 0, 'exit 0');
  // Sent before the exit; the last ones may still be on their way through our socket.
  await waitFor(() => seen.size === DATAGRAMS, 10_000, `all ${DATAGRAMS} returns (have ${seen.size})`).catch(() => undefined);
  t.same(tags.filter((x) => !seen.has(x)), [], 'every datagram received before SIGTERM came back');
  t.ok(app.logs.some((l) => l['msg'] === 'stopped'), 'logged "stopped"');
});
