/**
 * Fragments end to end: the client namespace sends fragmented UDP and TCP (crafted with raw sockets by
 * fixtures/fragment-send.py) through the GWLB emulator and one appliance running fixtures/fragment-policy.yaml;
 * the server namespace's kernel reassembles them for real, and fixtures/fragment-sink.py logs what it delivered.
 * A forbidden datagram must never be seen there; an allowed one arrives intact, whatever the fragment order.
 *
 * The appliance runs with --on-malformed pass, the configuration in which the tiny fragment attack (RFC 1858)
 * used to work: a first fragment too short to hold TCP's flags passed as "malformed", and the later fragments
 * passed because rules were judged on them without their ports. Over IPv4 the server's kernel then rebuilt a SYN
 * to the forbidden port (the IPv4 case fails on the old code). Linux refuses an IPv6 first fragment whose TCP
 * header is incomplete itself (RFC 7112), so the IPv6 case guards the appliance's own counting only.
 *
 * "Never seen" is awaited, not slept on: after each forbidden datagram the test sends an allowed one between the
 * same addresses (so through the same worker, in order) and waits for that one to arrive.
 */
import t from 'tap';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startLab, type ApplianceHandle, type Lab, type LabProcess } from '../../src/lab/lab.js';
import { cleanup, labNamespaces, LAB_ADDR } from '../../src/lab/netns.js';
import { ROOT, e2ePrerequisites, uniqueLabId, waitForOutput } from './fixtures/lab-helpers.js';

const FIXTURES = join(ROOT, 'test', 'e2e', 'fixtures');
const POLICY = join(FIXTURES, 'fragment-policy.yaml');
const SEND = join(FIXTURES, 'fragment-send.py');
const SINK = join(FIXTURES, 'fragment-sink.py');
const PYTHON = '/usr/bin/python3';
// fragment-policy.yaml: these pass, the others do not.
const PORTS = { udp: { allowed: 5300, forbidden: 5301 }, tcp: { allowed: 8080, forbidden: 22 } } as const;
const ADDR = { 4: { client: LAB_ADDR.client4, server: LAB_ADDR.server4 }, 6: { client: LAB_ADDR.client6, server: LAB_ADDR.server6 } } as const;
/** Bound for waiting on a datagram or on the appliance's counters. */
const WAIT_MS = 10_000;
const PAYLOAD_BYTES = 1000; // fragment-send.py

type Family = 4 | 6;
type Proto = 'udp' | 'tcp';
type Order = 'first-first' | 'first-last';
interface SinkEvent {
  event: string;
  family: number;
  port: number;
  bytes: number;
  sha256: string;
  tag: string;
}

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await delay(25);
  }
}

const problems = await e2ePrerequisites([PYTHON]);
if (problems.length > 0) {
  t.fail(`the fragment e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('frag');
  let lab: Lab | undefined;
  let appliance: ApplianceHandle | undefined;
  let sink: LabProcess | undefined;
  t.teardown(async () => {
    await lab?.down();
    await cleanup(labNamespaces(id).prefix);
  });
  const L = (): Lab => lab as Lab;

  t.before(async () => {
    lab = await startLab({ id });
    appliance = await lab.startAppliance({ policy: POLICY, workers: 2, extraArgs: ['--on-malformed', 'pass'] });
    sink = lab.spawn('server', [PYTHON, SINK, `${PORTS.udp.allowed},${PORTS.udp.forbidden}`, `${PORTS.tcp.allowed},${PORTS.tcp.forbidden}`]);
    await waitForOutput(sink, /"event": ?"ready"/);
  });

  const received = (tag: string): SinkEvent[] =>
    (sink as LabProcess)
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as SinkEvent)
      .filter((e) => e.tag === tag);
  const stats = async (): Promise<Record<string, number> & { drops: Record<string, number> }> => {
    const r = await L().fetchInGateway(`${(appliance as ApplianceHandle).statsUrl}/stats`);
    if (r.status !== 200) throw new Error(`/stats answered ${r.status} ${r.error ?? r.body}`);
    return JSON.parse(r.body) as Record<string, number> & { drops: Record<string, number> };
  };
  let seq = 0;
  /** Sends one fragmented datagram; returns its tag and payload digest. */
  const send = async (family: Family, proto: Proto, port: number, order: Order, tiny = false): Promise<{ tag: string; sha256: string; fragments: number }> => {
    const tag = `${proto}${family}-${port}-${order}${tiny ? '-tiny' : ''}-${++seq}`;
    const a = ADDR[family];
    const args = [PYTHON, SEND, String(family), proto, a.client, a.server, String(port), order, tag, ...(tiny ? ['tiny'] : [])];
    const r = await L().exec('client', args, { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`fragment-send.py failed (${r.code}): ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { sha256: string; fragments: number };
    return { tag, sha256: out.sha256, fragments: out.fragments };
  };
  /** Sends an allowed datagram after whatever was sent before and waits until the server got it. */
  const barrier = async (family: Family, proto: Proto): Promise<void> => {
    const s = await send(family, proto, PORTS[proto].allowed, 'first-first');
    await waitUntil(`the allowed ${s.tag} to arrive`, () => (received(s.tag).length > 0 ? true : undefined));
  };

  for (const family of [4, 6] as const) {
    for (const proto of ['udp', 'tcp'] as const) {
      t.test(`IPv${family} ${proto.toUpperCase()}: an allowed fragmented datagram arrives intact, its first fragment first or last`, async (t) => {
        for (const order of ['first-first', 'first-last'] as const) {
          const s = await send(family, proto, PORTS[proto].allowed, order);
          t.equal(s.fragments, 3);
          const [got] = await waitUntil(`${s.tag} at the server`, () => {
            const r = received(s.tag);
            return r.length > 0 ? r : undefined;
          });
          t.match(got, { event: proto, family, port: PORTS[proto].allowed, bytes: PAYLOAD_BYTES, sha256: s.sha256 }, `${order}: delivered whole, byte for byte`);
        }
        const st = await stats();
        t.ok(st['fragment_released']! > 0, `fragments that came before their first fragment were released after it (${st['fragment_released']})`);
      });

      t.test(`IPv${family} ${proto.toUpperCase()}: a fragmented datagram to a forbidden port never reaches the server, in either order`, async (t) => {
        const before = await stats();
        const tags: string[] = [];
        for (const order of ['first-first', 'first-last'] as const) tags.push((await send(family, proto, PORTS[proto].forbidden, order)).tag);
        await barrier(family, proto);
        for (const tag of tags) t.same(received(tag), [], `${tag}: the server received nothing`);
        const after = await waitUntil('fragment_dropped_following to grow by 4', async () => {
          const s = await stats();
          return s.drops['fragment_dropped_following']! >= before.drops['fragment_dropped_following']! + 4 ? s : undefined;
        });
        t.ok(after.drops['fragment_dropped_following']! - before.drops['fragment_dropped_following']! >= 4, 'the later fragments followed their first fragment\'s drop');
      });
    }

    t.test(`IPv${family}: the tiny fragment attack (TCP flags in the second fragment, RFC 1858) does not reach a forbidden port`, async (t) => {
      const before = await stats();
      const s = await send(family, 'tcp', PORTS.tcp.forbidden, 'first-first', true);
      t.equal(s.fragments, 4, 'an 8-byte first fragment, then the rest');
      await barrier(family, 'tcp');
      t.same(received(s.tag), [], 'the server never saw the SYN to the forbidden port');
      const after = await waitUntil('fragment_tiny_dropped to grow', async () => {
        const st = await stats();
        return st.drops['fragment_tiny_dropped']! > before.drops['fragment_tiny_dropped']! ? st : undefined;
      });
      t.equal(after.drops['fragment_tiny_dropped']! - before.drops['fragment_tiny_dropped']!, 1, 'counted as a tiny first fragment');
    });
  }
}
