/**
 * The appliance over real UDP on loopback: a test sender plays GWLB from its own loopback address and many
 * source ports; the appliance (2 workers, raw return path) must send back every valid datagram with the
 * identical GENEVE header and inner packet, outer IPs swapped, UDP ports kept and a correct UDP checksum, and
 * must drop and count every datagram that breaks RFC 8926's receive rules.
 */
import t from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { connect } from 'node:net';
import { encodeGeneve, encodeGeneveOption } from '../../src/geneve/codec.js';
import { buildIPv4Udp, buildIPv4Tcp, buildIPv6Udp } from '../../src/packet/build.js';
import { ipv4ToU32 } from '../../src/packet/address.js';
import { loadNative } from '../../src/dataplane/native.js';
import { startAppliance, randomPort, randomLoopback, getJson, type Appliance } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';

const native = loadNative();
const APPLIANCE = '127.0.0.1';
const port = randomPort();
const gwlb = randomLoopback();
const SENDERS = 8;

let app: Appliance;
const returnsSock: Socket = createSocket('udp4');
const senders: Socket[] = [];
/** Every return seen: payload hex → where it came from. */
const returns = new Map<string, { address: string; port: number; count: number }>();
/** Raw copies of returns (whole IPv4 packets) for header and checksum checks. */
const raw: Buffer[] = [];
let rawFd = -1;
let rawPoll: { close(): void } | undefined;

t.before(async () => {
  app = await startAppliance(['--listen', APPLIANCE, '--port', String(port), '--admin-listen', '127.0.0.1:0', '--workers', '2', '--health-interval-ms', '100', '--policy', 'policies/default.yaml']);
  returnsSock.on('message', (msg, rinfo) => {
    const key = msg.toString('hex');
    const seen = returns.get(key);
    if (seen === undefined) returns.set(key, { address: rinfo.address, port: rinfo.port, count: 1 });
    else seen.count++;
  });
  returnsSock.bind(6081, gwlb);
  await once(returnsSock, 'listening');
  for (let i = 0; i < SENDERS; i++) {
    const s = createSocket('udp4');
    s.bind(0, gwlb);
    await once(s, 'listening');
    senders.push(s);
  }
  rawFd = native.openRawUdpRecv(4 << 20);
  const rxBuf = Buffer.alloc(65536);
  const info = new Float64Array(3);
  const gw = ipv4ToU32(gwlb);
  rawPoll = native.poll(rawFd, () => {
    for (;;) {
      const n = native.recvOne(rawFd, rxBuf, info);
      if (n === 0) return;
      // keep only returns: to the GWLB address, destination port 6081
      if (n >= 28 && rxBuf.readUInt32BE(16) === gw && rxBuf.readUInt16BE(22) === 6081) raw.push(Buffer.from(rxBuf.subarray(0, n)));
    }
  });
  await waitFor(async () => (await getJson(`${app.adminUrl}/healthz`)).status === 200, 10_000, 'appliance healthy');
});

t.teardown(async () => {
  rawPoll?.close();
  if (rawFd >= 0) native.close(rawFd);
  for (const s of senders) s.close();
  returnsSock.close();
  await app?.stop();
});

function send(sender: number, datagram: Buffer): Promise<void> {
  return new Promise((resolve, reject) => (senders[sender] as Socket).send(datagram, port, APPLIANCE, (err) => (err ? reject(err) : resolve())));
}

async function stats(): Promise<Record<string, unknown>> {
  return (await getJson(`${app.statsUrl}/stats`)).body;
}

function drops(s: Record<string, unknown>): Record<string, number> {
  return s['drops'] as Record<string, number>;
}

/** Independent RFC 768 checksum check over an IPv4 packet holding UDP. */
function udpChecksumValid(pkt: Buffer): boolean {
  const ihl = (pkt[0]! & 0x0f) * 4;
  const udpLen = pkt.readUInt16BE(ihl + 4);
  let sum = 0;
  for (let i = 12; i < 20; i += 2) sum += pkt.readUInt16BE(i);
  sum += 17 + udpLen;
  for (let i = 0; i < udpLen; i += 2) sum += i + 1 < udpLen ? pkt.readUInt16BE(ihl + i) : pkt[ihl + i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return pkt.readUInt16BE(ihl + 6) !== 0 && sum === 0xffff;
}

t.test('every valid datagram comes back identical, from the appliance, with the sender port kept', async (t) => {
  const sent: { datagram: Buffer; sender: number }[] = [];
  for (let f = 0; f < 64; f++) {
    for (let k = 0; k < 3; k++) {
      const inner =
        f % 2 === 0
          ? buildIPv4Udp({ src: `10.1.${f}.1`, dst: '10.2.0.1', srcPort: 10000 + f, dstPort: 53, payload: Buffer.from(`flow ${f} packet ${k}`) })
          : buildIPv4Tcp({ src: `10.1.${f}.1`, dst: '10.2.0.1', srcPort: 10000 + f, dstPort: 443, seq: 1000 + k, ack: 0, flags: 0x18, payload: Buffer.from(`flow ${f} seg ${k}`) });
      const datagram = encodeGeneve({ endpointIdHi: 0x01234567, endpointIdLo: 0x89abcdef, flowCookie: 0x1000 + f }, inner);
      sent.push({ datagram, sender: (f + k) % SENDERS });
    }
  }
  for (const { datagram, sender } of sent) await send(sender, datagram);
  await waitFor(() => sent.every(({ datagram }) => returns.has(datagram.toString('hex'))), 5000, 'all returns');
  let wrong = 0;
  for (const { datagram, sender } of sent) {
    const r = returns.get(datagram.toString('hex'));
    if (r?.address !== APPLIANCE || r.port !== senders[sender]!.address().port) wrong++;
  }
  t.equal(wrong, 0, 'outer source = the appliance address GWLB sent to; source port = the port GWLB used');
});

t.test('returned datagrams carry a valid UDP checksum and destination port 6081 (checked on the raw IPv4 packet)', async (t) => {
  await waitFor(() => raw.length >= 10, 3000, 'raw captures');
  const bad = raw.filter((p) => !udpChecksumValid(p));
  t.equal(bad.length, 0, 'no return has a bad or zero checksum');
  const senderPorts = new Set(senders.map((s) => s.address().port));
  t.ok(raw.every((p) => senderPorts.has(p.readUInt16BE(20)) && p.readUInt16BE(22) === 6081), 'ports kept: source = a GWLB source port, destination = 6081');
  t.ok(raw.every((p) => p.readUInt32BE(12) === ipv4ToU32(APPLIANCE)), 'outer source = the appliance');
});

t.test('unknown non-critical options survive byte for byte; IPv6 and 8500-byte inner packets pass', async (t) => {
  const extra = Buffer.concat([encodeGeneveOption(0xffff, 0x01, Buffer.from('abcd')), encodeGeneveOption(0x0108, 0x40, Buffer.from('12345678'))]);
  const withExtra = encodeGeneve({ endpointIdHi: 1, endpointIdLo: 2, flowCookie: 3, extraOptions: extra }, buildIPv4Udp({ src: '10.9.0.1', dst: '10.9.0.2', srcPort: 1, dstPort: 2, payload: Buffer.from('x') }));
  const v6 = encodeGeneve({ protocolType: 0x86dd, endpointIdHi: 1, endpointIdLo: 2, flowCookie: 4 }, buildIPv6Udp({ src: 'fd00::1', dst: 'fd00::2', srcPort: 5353, dstPort: 53, payload: Buffer.from('v6 query') }));
  const jumbo = encodeGeneve({ endpointIdHi: 1, endpointIdLo: 2, flowCookie: 5 }, buildIPv4Udp({ src: '10.9.1.1', dst: '10.9.1.2', srcPort: 7000, dstPort: 7001, payload: Buffer.alloc(8500 - 28, 0x5a) }));
  t.equal(jumbo.length, 8540, '8500-byte inner packet + 40-byte GENEVE header');
  for (const d of [withExtra, v6, jumbo]) await send(0, d);
  await waitFor(() => [withExtra, v6, jumbo].every((d) => returns.has(d.toString('hex'))), 5000, 'extra/v6/jumbo returns');
  t.pass('all three came back identical');
  await waitFor(() => raw.some((p) => p.length === 20 + 8 + 8540), 3000, 'jumbo raw capture');
  t.ok(raw.some((p) => p.length === 20 + 8 + 8540 && udpChecksumValid(p)), 'the jumbo return went out whole (8568 bytes) with a valid checksum');
});

t.test('datagrams that break the receive rules are dropped and counted by reason', async (t) => {
  const inner = buildIPv4Udp({ src: '10.8.0.1', dst: '10.8.0.2', srcPort: 1, dstPort: 2, payload: Buffer.from('bad') });
  const good = encodeGeneve({ flowCookie: 9 }, inner);
  const cases: [string, Buffer][] = [
    ['critical unknown option', encodeGeneve({ flowCookie: 9, extraOptions: encodeGeneveOption(0xffff, 0x81, Buffer.from('abcd')) }, inner)],
    ['O bit (control packet)', encodeGeneve({ flowCookie: 9, oam: true }, inner)],
    ['version 1', encodeGeneve({ flowCookie: 9, version: 1 }, inner)],
    ['truncated base header', Buffer.from(good.subarray(0, 5))],
    ['Opt Len larger than the datagram', Buffer.from(good.subarray(0, 30))],
  ];
  const inconsistent = Buffer.from(good);
  inconsistent[8 + 3] = 0x05; // the first option claims 20 bytes of data: overruns Opt Len
  cases.push(['option overruns Opt Len', inconsistent]);
  const before = drops(await stats());
  for (const [, d] of cases) await send(1, d);
  await send(1, good); // a good one after the bad ones: the worker is still fine
  await waitFor(() => returns.has(good.toString('hex')), 3000, 'the good datagram');
  for (const [name, d] of cases) t.notOk(returns.has(d.toString('hex')), `${name}: never comes back`);
  const after = drops(await stats());
  const grown = Object.keys(after).filter((k) => (after[k] ?? 0) > (before[k] ?? 0));
  const total = grown.reduce((n, k) => n + (after[k]! - (before[k] ?? 0)), 0);
  t.equal(total, cases.length, 'each bad datagram counted once');
  t.ok(grown.every((k) => k.startsWith('geneve_')), `counted as GENEVE anomalies: ${grown.join(', ')}`);
  t.ok(grown.length >= 5, 'under distinct reasons');
});

t.test('both directions of a flow land on the same worker whatever source ports GWLB uses', async (t) => {
  const FLOWS = 200;
  const created = (s: Record<string, unknown>): number[] => (s['workers'] as { flow_creations: number }[]).map((w) => w.flow_creations);
  const c0 = created(await stats());
  const sentHex: string[] = [];
  for (let f = 0; f < FLOWS; f++) {
    const a = `10.50.${f >> 8}.${f & 255}`;
    const b = `10.60.${(f * 7) & 255}.${(f * 13) & 255}`;
    const fwd = encodeGeneve({ flowCookie: 0x5000 + f }, buildIPv4Udp({ src: a, dst: b, srcPort: 40000 + f, dstPort: 8080, payload: Buffer.from(`fwd ${f}`) }));
    const rev = encodeGeneve({ flowCookie: 0x5000 + f }, buildIPv4Udp({ src: b, dst: a, srcPort: 8080, dstPort: 40000 + f, payload: Buffer.from(`rev ${f}`) }));
    await send(f % SENDERS, fwd);
    await send((f + 3) % SENDERS, rev); // the reverse direction from a different GWLB source port
    sentHex.push(fwd.toString('hex'), rev.toString('hex'));
    // pace: the test's own receive socket buffer (rmem_max) holds a few hundred small datagrams
    if (f % 50 === 49) await waitFor(() => sentHex.every((h) => returns.has(h)), 5000, 'affinity returns so far');
  }
  await waitFor(() => sentHex.every((h) => returns.has(h)), 5000, 'affinity returns').catch(async (e: unknown) => { t.comment(`missing ${sentHex.filter((h) => !returns.has(h)).length} of ${sentHex.length}`); t.comment(JSON.stringify(await stats())); throw e; });
  const perWorker = created(await stats()).map((v, i) => v - (c0[i] ?? 0));
  t.equal(perWorker.reduce((a, b) => a + b, 0), FLOWS, 'one flow entry per flow: no reverse packet created a second entry on another worker');
  t.ok(perWorker.every((n) => n > 0), `flows spread over both workers (${perWorker.join(' / ')})`);
});

/** Every received datagram ends in exactly one of these outcomes. */
function outcomes(s: Record<string, unknown>): number {
  const d = drops(s);
  const engineDrops = Object.entries(d).filter(([k]) => k !== 'kernel_rx_queue_full' && k !== 'send_failed').reduce((n, [, v]) => n + v, 0);
  const n = (k: string): number => s[k] as number;
  return n('passed') + n('alerted') + n('self_test_packets') + n('malformed_passed') + n('fault_passed') + n('held_packets_now') + n('hold_released') + engineDrops - d['hold_discarded']!;
}

t.test('a fuzz stream of random and truncated datagrams at full speed: no crash, every datagram accounted for', async (t) => {
  const s0 = await stats();
  const N = 20_000;
  const base = encodeGeneve({ flowCookie: 1 }, buildIPv4Tcp({ src: '10.7.0.1', dst: '10.7.0.2', srcPort: 1, dstPort: 2, seq: 1, ack: 1, flags: 0x10, payload: Buffer.alloc(100) }));
  let seed = 12345;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
  for (let i = 0; i < N; i++) {
    let d: Buffer;
    if (i % 3 === 0) d = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256)));
    else {
      d = Buffer.from(base.subarray(0, 1 + Math.floor(rnd() * base.length)));
      const flips = Math.floor(rnd() * 4);
      for (let k = 0; k < flips; k++) d[Math.floor(rnd() * d.length)] = Math.floor(rnd() * 256);
    }
    (senders[i % SENDERS] as Socket).send(d, port, APPLIANCE);
    if (i % 256 === 0) await new Promise((r) => setImmediate(r));
  }
  const received = (s: Record<string, unknown>): number => (s['rx_packets'] as number) + (s['kernel_rx_drops'] as number);
  await waitFor(async () => received(await stats()) - received(s0) >= N, 10_000, 'every fuzz datagram received or counted as a kernel drop');
  const s1 = await stats();
  t.equal(s1['internal_faults'], 0, 'no internal fault');
  t.equal(app.proc.exitCode, null, 'still running');
  t.equal((await getJson(`${app.adminUrl}/healthz`)).status, 200, 'still healthy');
  const rx = (s1['rx_packets'] as number) - (s0['rx_packets'] as number);
  t.equal(outcomes(s1) - outcomes(s0), rx, 'received = passed + dropped-by-reason (nothing lost silently)');
});

t.test('/healthz answers 200 to many probes per second; /stats shows per-worker figures', async (t) => {
  const results = await Promise.all(Array.from({ length: 20 }, () => fetch(`${app.adminUrl}/healthz`).then(async (r) => ({ status: r.status, body: (await r.json()) as { status: string } }))));
  t.ok(results.every((r) => r.status === 200 && r.body.status === 'ok'));
  const st = await stats();
  t.equal((st['workers'] as unknown[]).length, 2);
  t.ok((st['flows_active'] as number) > 0, 'flows are tracked');
  await waitFor(async () => typeof ((await stats())['stages'] as Record<string, unknown>)['firewall'] === 'object', 3000, 'stage counters');
  const fw = ((await stats())['stages'] as Record<string, Record<string, number>>)['firewall']!;
  t.ok(fw['decisions']! > 0, 'firewall stage counters are aggregated from the workers');
});

t.test('health probes end with a FIN, never a reset: HTTP with Connection: close, and a bare TCP connect-close', async (t) => {
  const { hostname, port: adminPort } = new URL(app.adminUrl);
  const http = await new Promise<{ data: string; reset: boolean }>((resolve) => {
    const sock = connect(Number(adminPort), hostname, () => sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    let data = '';
    let reset = false;
    sock.setEncoding('utf8').on('data', (d: string) => (data += d));
    sock.on('error', (e: NodeJS.ErrnoException) => (reset = e.code === 'ECONNRESET'));
    sock.on('close', () => resolve({ data, reset }));
  });
  t.match(http.data, /^HTTP\/1\.1 200 /);
  t.equal(http.reset, false, 'the server closed with FIN');
  const bare = await new Promise<boolean>((resolve) => {
    const sock = connect(Number(adminPort), hostname, () => sock.end());
    let reset = false;
    sock.on('error', (e: NodeJS.ErrnoException) => (reset = e.code === 'ECONNRESET'));
    sock.on('close', () => resolve(reset));
  });
  t.equal(bare, false, 'a TCP health check (connect, close) sees no reset');
});

t.test('SIGTERM stops the appliance with exit code 0', async (t) => {
  const code = await app.stop('SIGTERM');
  t.equal(code, 0);
  t.ok(app.logs.some((l) => l['msg'] === 'stopped'));
});
