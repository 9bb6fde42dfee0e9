/**
 * The fragment tracker (virtual reassembly) with real fragment bytes, decoded by decodeInner: the first fragment
 * decides, the others follow it in any arrival order; early ones wait within the memcap and the timeout; tiny
 * first fragments, overlaps and inconsistent lengths drop the datagram; exact duplicates are dropped alone.
 */
import t from 'tap';
import { Buffer } from 'node:buffer';
import { FragmentTracker, FRAGMENT_COUNTER, FRAGMENT_RESULT, type FragmentLimits } from '../../src/flow/fragments.js';
import { decodeInner, PACKET_ANOMALY } from '../../src/packet/decode.js';
import { buildIPv4Tcp, buildIPv4Udp, buildIPv6, buildIPv6Tcp, buildIPv6Udp } from '../../src/packet/build.js';
import { createInnerPacket, type InnerPacket } from '../../src/packet/types.js';
import { ACTION } from '../../src/pipeline/stage.js';
import { evenCuts, fragmentV4, fragmentV6, type Cut } from '../fixtures/fragments.js';

const ALLOWED_PORT = 53;
const FORBIDDEN_PORT = 9999;
const C = FRAGMENT_COUNTER;

function limits(over: Partial<FragmentLimits> = {}): FragmentLimits {
  return { maxDatagrams: 64, memcapBytes: 1024 * 1024, timeoutMs: 1000, maxFragmentsPerDatagram: 16, ...over };
}

/** Feeds fragments as the engine does; the "firewall" passes ALLOWED_PORT and drops everything else. */
class Harness {
  readonly tracker: FragmentTracker;
  /** Fragments that went out, in send order. */
  readonly sent: Buffer[] = [];
  constructor(over: Partial<FragmentLimits> = {}) {
    this.tracker = new FragmentTracker(limits(over));
  }
  count(slot: number): number {
    return this.tracker.counters[slot] as number;
  }
  feed(frag: Buffer, nowMs = 0, endpoint: [number, number] = [0x1234, 0x5678]): 'whole' | 'tiny' | 'pass' | 'drop' | 'held' {
    const pkt: InnerPacket = createInnerPacket();
    const a = decodeInner(frag, 0, frag.length, 0, pkt);
    if (a !== PACKET_ANOMALY.OK) {
      if (!pkt.isFragment) throw new Error(`undecodable test packet (anomaly ${a})`);
      this.tracker.tiny(pkt, endpoint[0], endpoint[1], nowMs);
      return 'tiny';
    }
    if (!pkt.isFragment) return 'whole';
    if (pkt.isLaterFragment) {
      const r = this.tracker.later(pkt, endpoint[0], endpoint[1], nowMs, frag, 0, frag.length, 1, 2, 3);
      if (r === FRAGMENT_RESULT.PASS) this.sent.push(frag);
      return r === FRAGMENT_RESULT.PASS ? 'pass' : r === FRAGMENT_RESULT.DROP ? 'drop' : 'held';
    }
    const e = this.tracker.first(pkt, endpoint[0], endpoint[1], nowMs);
    if (e < 0) return 'drop';
    const action = pkt.dstPort === ALLOWED_PORT ? ACTION.PASS : ACTION.DROP;
    if (action === ACTION.PASS) this.sent.push(frag);
    this.tracker.decide(e, action, (h) => this.sent.push(h.data));
    return action === ACTION.PASS ? 'pass' : 'drop';
  }
}

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

/** Rebuilds the fragmentable part from fragments that went out (by their own offsets): what the end host gets. */
function reassemble(frags: Buffer[]): Buffer {
  const parts: [number, Buffer][] = frags.map((f) => {
    const p = createInnerPacket();
    decodeInner(f, 0, f.length, 0, p);
    return [p.fragmentOffset, f.subarray(p.fragmentDataOffset, p.l3Offset + p.ipLength)];
  });
  parts.sort((a, b) => a[0] - b[0]);
  return Buffer.concat(parts.map((p) => p[1]));
}

const payload = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyzABCD'); // 40 bytes
const datagrams = (dstPort: number): { name: string; whole: Buffer; data: Buffer; cut: (cuts: Cut[], id?: number) => Buffer[] }[] => {
  const u4 = buildIPv4Udp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1000, dstPort, payload });
  const t4 = buildIPv4Tcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1000, dstPort, flags: 0x02, payload });
  const u6 = buildIPv6Udp({ src: 'fd00::1', dst: 'fd00::2', srcPort: 1000, dstPort, payload });
  const t6 = buildIPv6Tcp({ src: 'fd00::1', dst: 'fd00::2', srcPort: 1000, dstPort, flags: 0x02, payload });
  return [
    { name: 'IPv4 UDP', whole: u4, data: u4.subarray(20), cut: (c, id = 0x4242) => fragmentV4(u4, '10.0.0.1', '10.0.0.2', id, c) },
    { name: 'IPv4 TCP', whole: t4, data: t4.subarray(20), cut: (c, id = 0x4242) => fragmentV4(t4, '10.0.0.1', '10.0.0.2', id, c) },
    { name: 'IPv6 UDP', whole: u6, data: u6.subarray(40), cut: (c, id = 0x42424242) => fragmentV6(u6, 'fd00::1', 'fd00::2', id, c) },
    { name: 'IPv6 TCP', whole: t6, data: t6.subarray(40), cut: (c, id = 0x42424242) => fragmentV6(t6, 'fd00::1', 'fd00::2', id, c) },
  ];
};

/** [0, 24) (the whole TCP or UDP header), [24, 40), [40, end). */
const threeCuts = (length: number): Cut[] => [{ start: 0, stop: 24 }, { start: 24, stop: 40 }, { start: 40, stop: length }];

t.test('in every arrival order, an allowed datagram goes out whole, first fragment first, and a forbidden one not at all', async (t) => {
  for (const port of [ALLOWED_PORT, FORBIDDEN_PORT]) {
    for (const d of datagrams(port)) {
      const frags = d.cut(threeCuts(d.data.length));
      for (const order of permutations(frags.map((_, i) => i))) {
        const h = new Harness();
        for (const i of order) h.feed(frags[i] as Buffer);
        const what = `${d.name} to ${port}, order ${order.join('')}`;
        if (port === ALLOWED_PORT) {
          t.equal(h.sent.length, frags.length, `${what}: every fragment went out once`);
          t.equal(h.sent[0], frags[0], `${what}: the first fragment went out first`);
          t.same(reassemble(h.sent), d.data, `${what}: they rebuild the datagram`);
        } else {
          t.equal(h.sent.length, 0, `${what}: nothing went out`);
          t.equal(h.count(C.DROPPED_FOLLOWING), frags.length - 1, `${what}: the later fragments followed the drop`);
        }
        t.equal(h.tracker.size, 0, `${what}: the completed datagram left the table`);
        t.equal(h.tracker.heldBytes, 0, `${what}: nothing stays held`);
      }
    }
  }
});

t.test('fragments that wait for a first fragment that never comes are dropped when the timeout expires', async (t) => {
  const [d] = datagrams(ALLOWED_PORT);
  const frags = d!.cut(evenCuts(d!.data.length, 16));
  const h = new Harness({ timeoutMs: 500 });
  t.equal(h.feed(frags[1]!, 0), 'held');
  t.equal(h.feed(frags[2]!, 100), 'held');
  t.ok(h.tracker.heldBytes > 0);
  t.equal(h.tracker.expire(499), 0, 'not yet');
  t.equal(h.tracker.expire(500), 1, 'expired at the timeout');
  t.equal(h.count(C.TIMEOUT_DROPPED), 2, 'both held fragments counted as timed out');
  t.equal(h.tracker.heldBytes, 0);
  t.equal(h.tracker.counters[C.HELD_BYTES_NOW], 0, 'gauge follows');
  // The first fragment now starts a new datagram: the expired fragments are gone, never sent.
  t.equal(h.feed(frags[0]!, 600), 'pass');
  t.same(h.sent, [frags[0]], 'only the first fragment went out');

  const lazy = new Harness({ timeoutMs: 500 });
  lazy.feed(frags[1]!, 0);
  t.equal(lazy.feed(frags[0]!, 10_000), 'pass', 'a lookup after the timeout expires the entry without a timer');
  t.same(lazy.sent, [frags[0]]);
  t.equal(lazy.count(C.TIMEOUT_DROPPED), 1);
});

t.test('the memcap bounds held fragments: one past it drops the fragment and its datagram', async (t) => {
  const [d] = datagrams(ALLOWED_PORT);
  const frags = d!.cut(evenCuts(d!.data.length, 16));
  const h = new Harness({ memcapBytes: frags[1]!.length + 4 });
  t.equal(h.feed(frags[1]!), 'held');
  t.equal(h.feed(frags[2]!), 'drop', 'over the memcap');
  t.equal(h.count(C.MEMCAP_DROPPED), 1);
  t.equal(h.count(C.HELD_DISCARDED), 1, 'what was held for the datagram is discarded');
  t.equal(h.feed(frags[0]!), 'drop', 'the first fragment of a dropped datagram is dropped too');
  t.same(h.sent, []);
  t.equal(h.tracker.heldBytes, 0);
});

t.test('the table bounds tracked datagrams: a fragment of one more is dropped', async (t) => {
  const [d] = datagrams(ALLOWED_PORT);
  const h = new Harness({ maxDatagrams: 16 });
  for (let id = 1; id <= 16; id++) t.equal(h.feed(d!.cut(evenCuts(d!.data.length, 16), id)[1]!), 'held');
  t.equal(h.feed(d!.cut(evenCuts(d!.data.length, 16), 17)[1]!), 'drop');
  t.equal(h.count(C.TABLE_FULL_DROPPED), 1);
  t.equal(h.feed(d!.cut(evenCuts(d!.data.length, 16), 17)[0]!), 'drop', 'its first fragment finds no room either');
});

t.test('RFC 1858: a TCP fragment at offset 8 rewrites the header; the datagram is dropped in either order', async (t) => {
  for (const d of datagrams(ALLOWED_PORT).filter((x) => x.name.endsWith('TCP'))) {
    // Honest first fragment [0, 24) with the allowed port; the attack fragment at offset 8 rewrites from the
    // flags on (and would carry a forbidden port in a variant that starts at 0: same overlap rule).
    const cuts: Cut[] = [{ start: 0, stop: 24 }, { start: 8, stop: 24 }, { start: 24, stop: d.data.length }];
    const frags = d.cut(cuts);
    for (const order of [[1, 0, 2], [0, 1, 2], [2, 1, 0]]) {
      const h = new Harness();
      for (const i of order) h.feed(frags[i]!);
      const what = `${d.name}, order ${order.join('')}`;
      t.equal(h.count(C.OVERLAP_DROPPED), 1, `${what}: one overlap`);
      t.notOk(h.sent.includes(frags[1]!), `${what}: the rewriting fragment never went out`);
      t.ok(h.sent.length <= 1, `${what}: at most the first fragment went out before the overlap (the host cannot complete the datagram)`);
    }
  }
});

t.test('RFC 5722: overlapping fragments anywhere drop the whole datagram, held fragments included', async (t) => {
  const d = datagrams(ALLOWED_PORT).find((x) => x.name === 'IPv6 UDP')!;
  const frags = d.cut([{ start: 0, stop: 16 }, { start: 16, stop: 32 }, { start: 24, stop: d.data.length }]);
  const h = new Harness();
  t.equal(h.feed(frags[1]!), 'held');
  t.equal(h.feed(frags[2]!), 'drop', 'overlaps [16, 32)');
  t.equal(h.count(C.OVERLAP_DROPPED), 1);
  t.equal(h.count(C.HELD_DISCARDED), 1);
  t.equal(h.feed(frags[0]!), 'drop');
  t.same(h.sent, []);
});

t.test('an exact duplicate is dropped alone; the datagram goes on', async (t) => {
  for (const d of datagrams(ALLOWED_PORT)) {
    const frags = d.cut(threeCuts(d.data.length));
    const h = new Harness();
    t.equal(h.feed(frags[1]!), 'held');
    t.equal(h.feed(frags[1]!), 'drop', `${d.name}: duplicate of a held fragment`);
    t.equal(h.feed(frags[0]!), 'pass');
    t.equal(h.feed(frags[0]!), 'drop', `${d.name}: duplicate first fragment (it could carry another header)`);
    for (const f of frags.slice(2)) t.equal(h.feed(f), 'pass');
    t.equal(h.count(C.DUPLICATE_DROPPED), 2);
    t.same(reassemble(h.sent), d.data, `${d.name}: the datagram went out whole, once`);
  }
});

t.test('tiny first fragments (RFC 1858, RFC 3128, RFC 7112) drop their datagram', async (t) => {
  for (const d of datagrams(ALLOWED_PORT)) {
    // TCP: 8 bytes (ports and sequence number, no flags). UDP's 8-byte header cannot be cut at 8-byte
    // granularity: its tiny first fragment carries no byte at all.
    const tcp = d.name.endsWith('TCP');
    const frags = d.cut([{ start: 0, stop: tcp ? 8 : 0, more: true }, { start: 8, stop: d.data.length }]);
    const h = new Harness();
    t.equal(h.feed(frags[0]!), 'tiny', `${d.name}: the decoder refuses the header`);
    t.equal(h.count(C.TINY_DROPPED), 1);
    t.equal(h.feed(frags[1]!), 'drop', `${d.name}: the rest of the datagram follows the drop`);
    t.same(h.sent, []);
  }
  // IPv6: the header chain itself split (a Destination Options header that runs past the first fragment).
  const fh = Buffer.from([60, 0, 0, 1, 0, 0, 0, 9]); // Next Header 60, offset 0, M = 1, Identification 9
  const dest = Buffer.from([6, 1, 1, 4, 0, 0, 0, 0]); // Hdr Ext Len 1: 16 bytes, only 8 here
  const tiny6 = buildIPv6({ src: 'fd00::1', dst: 'fd00::2', nextHeader: 44, payload: Buffer.concat([fh, dest]) });
  const h = new Harness();
  t.equal(h.feed(tiny6), 'tiny', 'IPv6 header chain split across fragments');
  t.equal(h.count(C.TINY_DROPPED), 1);
});

t.test('RFC 6946: an IPv6 atomic fragment (offset 0, M = 0) is a whole packet, not tracked', async (t) => {
  const d = datagrams(ALLOWED_PORT).find((x) => x.name === 'IPv6 UDP')!;
  const [atomic] = d.cut([{ start: 0, stop: d.data.length, more: false }]);
  const pkt = createInnerPacket();
  t.equal(decodeInner(atomic!, 0, atomic!.length, 0, pkt), PACKET_ANOMALY.OK);
  t.equal(pkt.isFragment, false);
  t.equal(pkt.dstPort, ALLOWED_PORT, 'its transport header is read like any packet');
  const h = new Harness();
  t.equal(h.feed(atomic!), 'whole');
  t.equal(h.tracker.size, 0);
});

t.test('datagrams are told apart by the GWLB endpoint, the Identification and the addresses', async (t) => {
  const d = datagrams(ALLOWED_PORT).find((x) => x.name === 'IPv4 UDP')!;
  const forbidden = datagrams(FORBIDDEN_PORT).find((x) => x.name === 'IPv4 UDP')!;
  const h = new Harness();
  // Same addresses and Identification through two endpoints (overlapping VPCs): separate datagrams.
  const a = d.cut(threeCuts(d.data.length), 7);
  const b = forbidden.cut(threeCuts(forbidden.data.length), 7);
  t.equal(h.feed(b[0]!, 0, [0, 2]), 'drop', 'forbidden datagram through endpoint 2');
  t.equal(h.feed(a[0]!, 0, [0, 1]), 'pass', 'allowed datagram through endpoint 1');
  t.equal(h.feed(a[1]!, 0, [0, 1]), 'pass');
  t.equal(h.feed(b[1]!, 0, [0, 2]), 'drop', 'follows its own first fragment, not the other endpoint\'s');
  // Another Identification is another datagram: it waits for its own first fragment.
  t.equal(h.feed(d.cut(threeCuts(d.data.length), 8)[1]!, 0, [0, 1]), 'held');
});

t.test('inconsistent lengths drop the datagram: two different ends, or past 65,535 bytes', async (t) => {
  const d = datagrams(ALLOWED_PORT).find((x) => x.name === 'IPv4 UDP')!;
  const frags = d.cut([{ start: 0, stop: 16 }, { start: 24, stop: 40, more: false }, { start: 16, stop: 24, more: false }]);
  const h = new Harness();
  t.equal(h.feed(frags[0]!), 'pass');
  t.equal(h.feed(frags[1]!), 'pass', 'a last fragment fixes the end at 40');
  t.equal(h.feed(frags[2]!), 'drop', 'another last fragment, ending at 24');
  t.equal(h.count(C.BAD_LENGTH_DROPPED), 1);
  const big = fragmentV4(d.whole, '10.0.0.1', '10.0.0.2', 99, [{ start: 0, stop: 16 }])[0]!;
  big.writeUInt16BE(0x1fff, 6); // offset 65,528 + 16 bytes: past 65,535 ("ping of death")
  const h2 = new Harness();
  t.equal(h2.feed(big), 'drop');
  t.equal(h2.count(C.BAD_LENGTH_DROPPED), 1);
});

t.test('more fragments than the per-datagram bound drop the datagram', async (t) => {
  const d = datagrams(ALLOWED_PORT).find((x) => x.name === 'IPv4 UDP')!;
  const frags = d.cut(evenCuts(d.data.length, 8)); // 6 fragments
  const h = new Harness({ maxFragmentsPerDatagram: 4 });
  const r = frags.slice(1).map((f) => h.feed(f));
  t.same(r, ['held', 'held', 'held', 'held', 'drop']);
  t.equal(h.count(C.TOO_MANY_DROPPED), 1);
});

t.test('a first fragment held by a stage makes the rest wait for its flow\'s verdict', async (t) => {
  for (const action of [ACTION.PASS, ACTION.DROP]) {
    const d = datagrams(ALLOWED_PORT).find((x) => x.name === 'IPv4 TCP')!;
    const frags = d.cut(threeCuts(d.data.length));
    const tr = new FragmentTracker(limits());
    const released: Buffer[] = [];
    const pkt = createInnerPacket();
    decodeInner(frags[0]!, 0, frags[0]!.length, 0, pkt);
    const e = tr.first(pkt, 0, 1, 0);
    tr.pend(e, 42);
    t.equal(tr.pending, 1);
    decodeInner(frags[1]!, 0, frags[1]!.length, 0, pkt);
    t.equal(tr.later(pkt, 0, 1, 0, frags[1]!, 0, frags[1]!.length, 1, 2, 3), FRAGMENT_RESULT.HELD);
    tr.resolveFlow(41, ACTION.PASS, (h) => released.push(h.data));
    t.equal(released.length, 0, 'another flow resolves nothing');
    tr.resolveFlow(42, action, (h) => released.push(h.data));
    t.equal(tr.pending, 0);
    t.same(released, action === ACTION.PASS ? [frags[1]] : [], `flow verdict ${action}`);
  }
});
