/**
 * Names are read from the client's bytes in sequence order from ISN+1 (issue 8, finding 3), and every request of an
 * HTTP connection is checked (finding 4): the client stream (src/stream reassembly plus the name buffer) on its own,
 * and through the firewall stage.
 */
import t from 'tap';
import fc from 'fast-check';
import { Buffer } from 'node:buffer';
import { ClientStream, nameStreamMemcapBytes, nameStreamOptions } from '../../src/firewall/client-stream.js';
import { createStreamCounters, STREAM_ANOMALY } from '../../src/stream/events.js';
import { StreamMemcap } from '../../src/stream/memcap.js';
import { REASON } from '../../src/firewall/log.js';
import { ACTION, STAGE_RESULT } from '../../src/pipeline/stage.js';
import { ACK, Harness, PSH } from '../fixtures/firewall.js';

const POLICY = (settings = ''): string => `version: 1
default_action: drop
${settings}
rules:
  - name: web-allowed
    action: pass
    proto: tcp
    dst_ports: 80
    http_host: [good.example]
  - name: web-other
    action: reject
    proto: tcp
    dst_ports: 80
  - name: internal
    action: pass
    dst: 10.0.0.0/8
`;
const CLIENT = '10.0.0.5';
const SERVER = '93.184.216.34';
const ISN1 = 1001; // Harness.handshake: client SYN seq 1000

/** A segment: [offset from ISN+1, length]. */
type Seg = [number, number];

/** Segments covering [0, n): a random cut, then each piece possibly duplicated or widened into an identical overlap. */
const coverings = (n: number): fc.Arbitrary<Seg[]> =>
  fc
    .tuple(
      fc.uniqueArray(fc.integer({ min: 1, max: n - 1 }), { maxLength: 12 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 1, max: 40 })), { maxLength: 6 }),
    )
    .map(([cuts, extra]) => {
      const points = [0, ...cuts.sort((a, b) => a - b), n];
      const segs: Seg[] = [];
      for (let i = 0; i + 1 < points.length; i++) segs.push([points[i] as number, (points[i + 1] as number) - (points[i] as number)]);
      for (const [o, l] of extra) segs.push([o, Math.min(l, n - o)]); // duplicates / identical overlaps
      return segs;
    })
    .chain((segs) => fc.shuffledSubarray(segs, { minLength: segs.length, maxLength: segs.length }));

/** A client stream whose reader keeps every byte (never consumes) and counts its calls. */
function keeping(windowBytes: number): { cs: ClientStream; calls: number[] } {
  const calls: number[] = [];
  const reader = { onClientBytes: (c: ClientStream): boolean => (calls.push(c.contig), true) };
  // The memcap of a worker with 64 slots: one flow of 1-byte out-of-order segments may use more than its share.
  const cs = new ClientStream(windowBytes, nameStreamOptions(windowBytes), new StreamMemcap(nameStreamMemcapBytes(windowBytes, 64)), createStreamCounters(), reader);
  return { cs, calls };
}

t.test('the client stream: any segmentation, order, duplication and identical overlap gives the same bytes', async (t) => {
  const data = Buffer.from('GET / HTTP/1.1\r\nHost: good.example\r\nUser-Agent: property\r\n\r\n');
  fc.assert(
    fc.property(coverings(data.length), (segs) => {
      const { cs } = keeping(256);
      cs.start(0xfffffff0); // across the 2^32 wrap
      for (const [o, l] of segs) {
        cs.segment((0xfffffff0 + o) >>> 0, data, o, l, 0);
        if (cs.anomaly !== -1) return false;
      }
      return cs.contig === data.length && Buffer.from(cs.buf.subarray(0, cs.contig)).equals(data);
    }),
    { numRuns: 300 },
  );
});

t.test('the client stream refuses what a server could read differently', async (t) => {
  const { cs } = keeping(64);
  cs.start(100);
  const a = Buffer.from('abcdefgh');
  const seg = (bytes: Buffer, seq: number): number => (cs.segment(seq, bytes, 0, bytes.length, 0), cs.anomaly);
  t.equal(seg(a, 100), -1);
  t.equal(seg(Buffer.from('abcdXfgh'), 100), STREAM_ANOMALY.OVERLAP_DIFFERENT_DATA, 'a retransmission with other bytes');
  t.equal(seg(Buffer.from('zzabc'), 98), STREAM_ANOMALY.BEFORE_START, 'a segment starting before ISN+1');
  t.equal(seg(Buffer.from('x'), 108 + 64), STREAM_ANOMALY.TOO_FAR_AHEAD, 'past the window (it starts at the bytes delivered)');
  t.equal(seg(Buffer.from('QR'), 120), -1, 'out of order, kept');
  t.equal(seg(Buffer.from('QX'), 120), STREAM_ANOMALY.OVERLAP_DIFFERENT_DATA, 'an out-of-order copy that differs');
  t.equal(cs.contig, 8, 'the gap is not read past');
  cs.consume(8);
  t.equal(seg(a, 100), -1, 'bytes already read: an identical retransmission');
  t.equal(seg(Buffer.from('abcdZfgh'), 100), -1, 'bytes read and consumed are not compared again (the reader is done with them)');
  t.equal(seg(Buffer.from('0123456789ab'), 108), -1);
  t.equal(cs.contig, 14, 'gap filled: the out-of-order bytes join');
  t.equal(Buffer.from(cs.buf.subarray(12, 14)).toString(), 'QR');
  t.equal(seg(Buffer.alloc(70, 0x2e), 123), STREAM_ANOMALY.TOO_FAR_AHEAD, 'out of order and reaching past the window: not kept');
});

t.test('the client stream hands in-order bytes on in pieces of the free room, each read before the next', async (t) => {
  const calls: number[] = [];
  let cs: ClientStream | null = null;
  const reader = {
    onClientBytes: (c: ClientStream): boolean => {
      calls.push(c.contig);
      c.consume(c.contig); // read everything
      return true;
    },
  };
  cs = new ClientStream(16, nameStreamOptions(16), new StreamMemcap(nameStreamMemcapBytes(16, 1)), createStreamCounters(), reader);
  cs.start(1);
  const big = Buffer.alloc(40, 0x61);
  cs.segment(1, big, 0, 40, 0);
  t.same(calls, [16, 16, 8], 'a 40-byte segment through a 16-byte buffer');
  t.equal(cs.anomaly, -1);
  t.equal(cs.skipInOrder(41, 10), true, 'the next bytes in order can be skipped');
  t.equal(cs.skipInOrder(60, 10), false, 'not the next ones');
  cs.segment(51, big, 0, 4, 0);
  t.same(calls, [16, 16, 8, 4], 'after a skip, bytes continue at the right offset');
});

/** Handshake on `flow`, then the client's segments [offset, length] of `data`; outcome of each data packet. */
function sendSegments(h: Harness, flow: number, data: Buffer, segs: Seg[]): ReturnType<Harness['send']>[] {
  const sport = 1024 + (flow % 60000);
  h.handshake({ flow, src: CLIENT, dst: SERVER, sport, dport: 80 });
  return segs.map(([o, l]) =>
    h.send({ flow, src: CLIENT, dst: SERVER, sport, dport: 80, flags: ACK | PSH, seq: ISN1 + o, ack: 5001, payload: data.subarray(o, o + l) }),
  );
}

t.test('through the stage: the same name under any segmentation, reordering, duplication and identical overlap', async (t) => {
  const good = Buffer.from('GET /a HTTP/1.1\r\nHost: good.example\r\nAccept: */*\r\n\r\n');
  const bad = Buffer.from('GET /a HTTP/1.1\r\nHost: evil.example\r\nAccept: */*\r\n\r\n');
  fc.assert(
    fc.property(coverings(good.length), (segs) => {
      const h = Harness.from(POLICY());
      sendSegments(h, 1, good, segs);
      const g = h.flows.getAction(1) === ACTION.PASS && h.stage.counters.namesRead === 1;
      sendSegments(h, 2, bad, segs);
      const b = h.flows.getAction(2) === ACTION.REJECT && h.logs.some((l) => l.flow === 2 && l.serverName === 'evil.example');
      return g && b && h.stage.counters.streamAnomalies === 0;
    }),
    { numRuns: 200 },
  );
});

t.test('through the stage: an overlap whose bytes differ is an anomaly, whatever the order', async (t) => {
  const good = Buffer.from('GET /a HTTP/1.1\r\nHost: good.example\r\n\r\n');
  const evil = Buffer.from('GET /a HTTP/1.1\r\nHost: evil.example\r\n\r\n');
  const at = good.indexOf('good');
  fc.assert(
    fc.property(fc.boolean(), fc.integer({ min: 1, max: 8 }), (evilFirst, before) => {
      const h = Harness.from(POLICY());
      h.handshake({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80 });
      const send = (buf: Buffer, o: number, l: number): ReturnType<Harness['send']> =>
        h.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80, flags: ACK | PSH, seq: ISN1 + o, ack: 5001, payload: buf.subarray(o, o + l) });
      // The name's bytes twice, differently; the rest of the head once.
      const first = evilFirst ? evil : good;
      const second = evilFirst ? good : evil;
      const o1 = send(first, at - before, before + 4);
      const o2 = send(second, at, 4);
      return o1.result === STAGE_RESULT.HOLD && o2.result === STAGE_RESULT.VERDICT && o2.reason === REASON.STREAM_ANOMALY && h.flows.getAction(1) === ACTION.DROP;
    }),
    { numRuns: 50 },
  );
});

t.test('through the stage: data before ISN+1 is an anomaly; names.on_anomaly decides', async (t) => {
  const req = Buffer.from('GET / HTTP/1.1\r\nHost: good.example\r\n\r\n');
  for (const [setting, expect] of [
    ['', { action: ACTION.DROP, flowAction: ACTION.DROP }],
    ['settings:\n  names:\n    on_anomaly: reject_flow', { action: ACTION.REJECT, flowAction: ACTION.REJECT }],
    ['settings:\n  names:\n    on_anomaly: drop_packet', { action: ACTION.DROP, flowAction: ACTION.NONE }],
  ] as const) {
    const h = Harness.from(POLICY(setting));
    h.handshake({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80 });
    const o = h.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80, flags: ACK | PSH, seq: ISN1 - 5, ack: 5001, payload: Buffer.concat([Buffer.from('XXXXX'), req]) });
    t.match(o, { result: STAGE_RESULT.VERDICT, reason: REASON.STREAM_ANOMALY, ...expect }, setting || 'default: drop_flow');
    t.equal(h.stage.counters.streamAnomalies, 1);
  }
  const h = Harness.from(POLICY());
  h.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80, flags: 0x02, seq: 1000 });
  const synack = h.send({ flow: 1, dir: 1, src: SERVER, dst: CLIENT, sport: 80, dport: 1, flags: 0x12, seq: 5000, ack: 0x80000000 });
  t.match(synack, { result: STAGE_RESULT.VERDICT, reason: REASON.STREAM_ANOMALY }, 'a SYN-ACK acknowledging another ISN');
  const tfo = Harness.from(POLICY());
  tfo.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80, flags: 0x02, seq: 1000 });
  t.match(tfo.send({ flow: 1, dir: 1, src: SERVER, dst: CLIENT, sport: 80, dport: 1, flags: 0x12, seq: 5000, ack: 1001 + 40 }), { result: STAGE_RESULT.CONTINUE }, 'a SYN-ACK accepting data carried on the SYN (TCP Fast Open) is fine');
  const again = Harness.from(POLICY());
  again.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80, flags: 0x02, seq: 1000 });
  t.match(again.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80, flags: 0x02, seq: 90000 }), { result: STAGE_RESULT.VERDICT, reason: REASON.STREAM_ANOMALY }, 'a second SYN with another ISN');
});

t.test('a flow picked up mid-stream cannot be allowed by a name rule: names.on_unknown', async (t) => {
  const h = Harness.from(POLICY());
  const o = h.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80, flags: ACK | PSH, seq: 1, payload: 'GET / HTTP/1.1\r\nHost: good.example\r\n\r\n' });
  t.match(o, { result: STAGE_RESULT.VERDICT, action: ACTION.DROP, flowAction: ACTION.NONE }, 'default on_unknown drop, nothing cached');
  t.equal(h.stage.counters.namesUnknown, 1);
  const p = Harness.from(POLICY('settings:\n  names:\n    on_unknown: pass'));
  t.match(p.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80, flags: ACK | PSH, seq: 1, payload: 'x' }), { result: STAGE_RESULT.CONTINUE, flowAction: ACTION.PASS }, 'on_unknown pass establishes it');
  const r = Harness.from(POLICY('settings:\n  names:\n    on_unknown: reject'));
  t.match(r.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80, flags: ACK, seq: 1 }), { action: ACTION.REJECT, flowAction: ACTION.NONE }, 'on_unknown reject resets, caches nothing');
});

t.test('every request on an HTTP connection is checked: keep-alive, pipelining, bodies skipped, not read', async (t) => {
  const req = (host: string, extra = ''): string => `GET / HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;
  const h = Harness.from(POLICY());
  let seq = ISN1;
  const send = (flow: number, text: string): ReturnType<Harness['send']> => {
    const o = h.send({ flow, src: CLIENT, dst: SERVER, sport: flow, dport: 80, flags: ACK | PSH, seq, ack: 5001, payload: text });
    seq += Buffer.byteLength(text, 'latin1');
    return o;
  };
  const open = (flow: number): void => {
    h.handshake({ flow, src: CLIENT, dst: SERVER, sport: flow, dport: 80 });
    seq = ISN1;
  };

  open(1);
  t.match(send(1, req('good.example')), { result: STAGE_RESULT.CONTINUE, flowAction: ACTION.PASS });
  t.match(send(1, req('good.example')), { result: STAGE_RESULT.CONTINUE }, 'a second allowed request');
  t.match(send(1, req('evil.example')), { result: STAGE_RESULT.VERDICT, action: ACTION.REJECT, flowAction: ACTION.REJECT }, 'a forbidden one ends the connection');
  t.equal(h.logs.at(-1)?.serverName, 'evil.example');

  open(2);
  t.match(send(2, req('good.example') + req('evil.example')), { action: ACTION.REJECT }, 'pipelined in the first packet');

  open(3);
  send(3, req('good.example'));
  const half = req('evil.example');
  t.match(send(3, half.slice(0, 20)), { result: STAGE_RESULT.CONTINUE }, 'a partial head passes (a server acts on a head only once it ends)');
  t.match(send(3, half.slice(20)), { action: ACTION.REJECT }, 'the packet completing a forbidden head is refused');

  open(4);
  const body = req('evil.example'); // a body that looks like a request: skipped by Content-Length, never read as one
  t.match(send(4, req('good.example', `Content-Length: ${body.length}\r\n`) + body.slice(0, 10)), { result: STAGE_RESULT.CONTINUE });
  t.match(send(4, body.slice(10)), { result: STAGE_RESULT.CONTINUE }, 'the body is skipped');
  t.match(send(4, req('evil.example')), { action: ACTION.REJECT }, 'the next head is read');

  open(5);
  const chunked = `5\r\nhello\r\n${(body.length).toString(16)};ext=1\r\n${body}\r\n0\r\nTrailer: x\r\n\r\n`;
  t.match(send(5, req('good.example', 'Transfer-Encoding: chunked\r\n') + chunked), { result: STAGE_RESULT.CONTINUE }, 'a chunked body is skipped');
  t.match(send(5, req('good.example')), { result: STAGE_RESULT.CONTINUE });
  t.match(send(5, req('evil.example')), { action: ACTION.REJECT });

  open(6);
  t.match(send(6, req('good.example', 'Content-Length: 3\r\nTransfer-Encoding: chunked\r\n')), { action: ACTION.DROP, reason: REASON.NAME_UNREADABLE }, 'ambiguous framing (smuggling): unreadable');

  open(7);
  send(7, req('good.example'));
  t.match(send(7, 'SSH-2.0-OpenSSH\r\n'), { action: ACTION.REJECT, reason: REASON.NAME_UNREADABLE }, 'a later request that is not HTTP: on_unreadable ends it');

  t.equal(h.stage.pendingFlows, 0, 'every slot released as its connection ended');
  t.ok(h.stage.counters.requestsChecked >= 6);
});

t.test('a big segment goes through the window in pieces', async (t) => {
  const h = Harness.from(POLICY('settings:\n  names:\n    max_bytes: 256'));
  h.handshake({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80 });
  const big = 'GET / HTTP/1.1\r\nHost: good.example\r\nContent-Length: 1000\r\n\r\n' + 'b'.repeat(1000) + 'GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n';
  t.match(h.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 80, flags: ACK | PSH, seq: ISN1, ack: 5001, payload: big }), { action: ACTION.REJECT }, 'the request after a 1000-byte body in the same segment is read');
});
