/**
 * Tenants never mix (docs/architecture.md §2): two VPCs behind one fleet can send identical 5-tuples (every VPC has
 * 10.0.0.5). A GENEVE sender plays GWLB over real loopback UDP toward a real appliance whose policy gives the two
 * endpoint ids scopes that decide differently, and interleaves both tenants' TCP connections on the very same
 * 5-tuple, in both directions. Each tenant must get its own decision, its own flow entry, and neither flow may
 * restart the other (regression: the flow key was the 5-tuple alone, and 24 interleaved packets renewed one
 * shared entry 20 times).
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { encodeGeneve } from '../../src/geneve/codec.js';
import { buildIPv4Tcp } from '../../src/packet/build.js';
import { TCP_FLAG } from '../../src/packet/types.js';
import { startAppliance, randomPort, randomLoopback, getJson, type Appliance } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';

const APPLIANCE = '127.0.0.1';
const port = randomPort();
const gwlb = randomLoopback();

// The endpoint ids as GWLB sends them in TLV type 1: the vpce- id's 17 hex digits are one 64-bit number.
const TENANT_PASS = { name: 'tenant-pass', vpce: 'vpce-0a1b2c3d4e5f60718', hi: 0xa1b2c3d4, lo: 0xe5f60718, cookie: 0x0000a001 };
const TENANT_DROP = { name: 'tenant-drop', vpce: 'vpce-0123456789abcdef0', hi: 0x12345678, lo: 0x9abcdef0, cookie: 0x0000b002 };

const POLICY = `version: 1
default_action: drop
rules: []
scopes:
  ${TENANT_PASS.name}:
    endpoints: [${TENANT_PASS.vpce}]
    default_action: drop
    rules:
      - name: web-out
        action: pass
        proto: tcp
        dst_ports: 443
  ${TENANT_DROP.name}:
    endpoints: [${TENANT_DROP.vpce}]
    default_action: pass
    rules:
      - name: no-web-out
        action: drop
        proto: tcp
        dst_ports: 443
`;

// The one 5-tuple both tenants use.
const CLIENT = '10.0.0.5';
const SERVER = '10.0.0.9';
const CLIENT_PORT = 40000;
const SERVER_PORT = 443;

let app: Appliance;
const returnsSock: Socket = createSocket('udp4');
const sender: Socket = createSocket('udp4');
const returns = new Set<string>();

t.before(async () => {
  const dir = t.testdir({});
  const policy = join(dir, 'tenants.yaml');
  writeFileSync(policy, POLICY);
  app = await startAppliance(['--listen', APPLIANCE, '--port', String(port), '--admin-listen', '127.0.0.1:0', '--workers', '2', '--health-interval-ms', '100', '--policy', policy], {}, 60_000); // start-up takes 15–20 s on a loaded 2-core machine
  returnsSock.on('message', (msg) => returns.add(msg.toString('hex')));
  returnsSock.bind(6081, gwlb);
  await once(returnsSock, 'listening');
  sender.bind(0, gwlb);
  await once(sender, 'listening');
  await waitFor(async () => (await getJson(`${app.adminUrl}/healthz`)).status === 200, 10_000, 'appliance healthy');
});

t.teardown(async () => {
  sender.close();
  returnsSock.close();
  await app?.stop();
});

function send(datagram: Buffer): Promise<void> {
  return new Promise((resolve, reject) => sender.send(datagram, port, APPLIANCE, (err) => (err ? reject(err) : resolve())));
}

async function stats(): Promise<Record<string, unknown>> {
  return (await getJson(`${app.statsUrl}/stats`)).body;
}

interface Segment {
  toServer: boolean;
  flags: number;
  seq: number;
  ack: number;
  payload: string;
}

/** One TCP connection, both directions: handshake, four request/response exchanges, a final ACK (12 segments). */
function conversation(tag: string): Segment[] {
  const { SYN, ACK, PSH } = TCP_FLAG;
  const segs: Segment[] = [
    { toServer: true, flags: SYN, seq: 1000, ack: 0, payload: '' },
    { toServer: false, flags: SYN | ACK, seq: 5000, ack: 1001, payload: '' },
    { toServer: true, flags: ACK, seq: 1001, ack: 5001, payload: '' },
  ];
  let c = 1001;
  let s = 5001;
  for (let i = 0; i < 4; i++) {
    const req = `${tag} request ${i}`;
    const res = `${tag} response ${i}`;
    segs.push({ toServer: true, flags: PSH | ACK, seq: c, ack: s, payload: req });
    c += req.length;
    segs.push({ toServer: false, flags: PSH | ACK, seq: s, ack: c, payload: res });
    s += res.length;
  }
  segs.push({ toServer: true, flags: ACK, seq: c, ack: s, payload: '' });
  return segs;
}

function datagram(tenant: typeof TENANT_PASS, seg: Segment): Buffer {
  const inner = buildIPv4Tcp({
    src: seg.toServer ? CLIENT : SERVER,
    dst: seg.toServer ? SERVER : CLIENT,
    srcPort: seg.toServer ? CLIENT_PORT : SERVER_PORT,
    dstPort: seg.toServer ? SERVER_PORT : CLIENT_PORT,
    seq: seg.seq,
    ack: seg.ack,
    flags: seg.flags,
    payload: Buffer.from(seg.payload),
  });
  return encodeGeneve({ endpointIdHi: tenant.hi, endpointIdLo: tenant.lo, flowCookie: tenant.cookie }, inner);
}

t.test('the same 5-tuple from two GWLB endpoints, interleaved both ways: two flows, two decisions, no renewals', async (t) => {
  const s0 = await stats();
  const passSegs = conversation('tenant pass').map((seg) => ({ seg, d: datagram(TENANT_PASS, seg) }));
  const dropSegs = conversation('tenant drop').map((seg) => ({ seg, d: datagram(TENANT_DROP, seg) }));
  // Strictly interleaved: every packet of one tenant is followed by the same step of the other tenant.
  for (let i = 0; i < passSegs.length; i++) {
    await send(passSegs[i]!.d);
    await send(dropSegs[i]!.d);
  }
  const total = passSegs.length + dropSegs.length;
  t.equal(total, 24);
  // Both tenants' packets share inner addresses, so one worker receives them all, in order: once the last
  // passing packet is back and every packet is accounted for, every drop decision has been made too.
  const n = (s: Record<string, unknown>, k: string): number => (s[k] as number) - (s0[k] as number);
  await waitFor(async () => {
    const s = await stats();
    return n(s, 'passed') + n(s, 'dropped_policy') >= total;
  }, 5000, 'every interleaved packet decided');
  await waitFor(() => passSegs.every(({ d }) => returns.has(d.toString('hex'))), 5000, "tenant-pass's packets returned");

  for (const { seg, d } of passSegs) {
    t.ok(returns.has(d.toString('hex')), `tenant-pass ${seg.toServer ? 'client→server' : 'server→client'} seq ${seg.seq}: passed`);
  }
  for (const { seg, d } of dropSegs) {
    t.notOk(returns.has(d.toString('hex')), `tenant-drop ${seg.toServer ? 'client→server' : 'server→client'} seq ${seg.seq}: dropped`);
  }
  // flows_active is published by each worker's timer tick: wait until every worker finished a tick that began
  // after the decisions (its heartbeat, written at the start of each tick, changed twice).
  const beats = async (): Promise<number[]> => ((await stats())['workers'] as { heartbeat_ms: number }[]).map((w) => w.heartbeat_ms);
  for (let round = 0; round < 2; round++) {
    const before = await beats();
    await waitFor(async () => (await beats()).every((b, i) => b !== before[i]), 5000, 'a worker tick');
  }
  const s1 = await stats();
  t.equal(n(s1, 'passed'), passSegs.length, 'tenant-pass: all 12 packets passed, both directions');
  t.equal(n(s1, 'dropped_policy'), dropSegs.length, 'tenant-drop: all 12 packets dropped by its scope, both directions');
  t.equal(n(s1, 'flow_creations'), 2, 'one flow entry per tenant');
  t.equal(n(s1, 'flow_renewals'), 0, 'neither tenant renewed (restarted) the other tenant\'s flow');
  t.equal(s1['flows_active'], 2, 'two flow entries exist');
  t.equal(n(s1, 'internal_faults'), 0);
});
