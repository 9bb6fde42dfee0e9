import t from 'tap';
import fc from 'fast-check';
import { createStreamCounters, SEGMENT_RESULT, STREAM_ANOMALY, STREAM_END, type StreamAnomaly, type StreamConsumer, type StreamEndReason } from '../../src/stream/events.js';
import { Http1Session, HTTP_END, type HttpConsumer, type HttpEndReason } from '../../src/stream/http1.js';
import { StreamMemcap } from '../../src/stream/memcap.js';
import { streamOptions } from '../../src/stream/options.js';
import { DIRECTION_STATE } from '../../src/stream/reassembler.js';
import { seqAdd } from '../../src/stream/seq.js';
import { readWindowScale } from '../../src/stream/tcp-options.js';
import { TcpStream } from '../../src/stream/tcp-stream.js';

const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;
const EMPTY = new Uint8Array(0);

class Sink implements StreamConsumer {
  data: Buffer[] = [];
  ends: StreamEndReason[] = [];
  anomalies: StreamAnomaly[] = [];
  onData(d: Uint8Array): void {
    this.data.push(Buffer.from(d));
  }
  onGap(): void {}
  onEnd(_o: number, r: StreamEndReason): void {
    this.ends.push(r);
  }
  onAnomaly(c: StreamAnomaly): void {
    this.anomalies.push(c);
  }
  text(): string {
    return Buffer.concat(this.data).toString('latin1');
  }
}

function pair(): { s: TcpStream; c2s: Sink; s2c: Sink } {
  const c2s = new Sink();
  const s2c = new Sink();
  const s = new TcpStream(streamOptions(), new StreamMemcap(), createStreamCounters(), [c2s, s2c]);
  return { s, c2s, s2c };
}

t.test('Window Scale is read from SYN options (RFC 7323 §2.2), hand-built like a Linux SYN', async (t) => {
  // MSS 1460, SACK permitted, Timestamps, NOP, Window Scale 7.
  const opts = Buffer.from('020405b4 0402 080a 0001e240 00000000 01 030307'.replace(/ /g, ''), 'hex');
  t.equal(readWindowScale(opts, 0, opts.length), 7);
  t.equal(readWindowScale(Buffer.from('020405b4', 'hex'), 0, 4), -1, 'absent');
  t.equal(readWindowScale(Buffer.from('0303', 'hex'), 0, 2), -1, 'truncated');
  t.equal(readWindowScale(Buffer.from('00030307', 'hex'), 0, 4), -1, 'after End of Option List');
  t.equal(readWindowScale(Buffer.from('0301', 'hex'), 0, 2), -1, 'a length below 2');
});

t.test('handshake with window scaling: the window bound is the peer’s scaled window', async (t) => {
  const { s, c2s } = pair();
  const cIsn = 0xffff_ff00;
  const sIsn = 1000;
  s.packet(0, SYN, cIsn, 0, 64240, 7, EMPTY, 0, 0, 0);
  s.packet(1, SYN | ACK, sIsn, seqAdd(cIsn, 1), 65160, 7, EMPTY, 0, 0, 0);
  s.packet(0, ACK, seqAdd(cIsn, 1), sIsn + 1, 502, -1, EMPTY, 0, 0, 0);
  t.equal(s.dirs[0].windowRight, 65160, 'the SYN-ACK window is not scaled');
  s.packet(1, ACK, sIsn + 1, seqAdd(cIsn, 1), 1000, -1, EMPTY, 0, 0, 0);
  t.equal(s.dirs[0].windowRight, 1000 * 128, 'later windows are scaled by the server’s shift');
  const p = Buffer.alloc(100, 0x61);
  t.equal(s.packet(0, ACK, seqAdd(cIsn, 1 + 127_900), sIsn + 1, 502, -1, p, 0, 100, 0), SEGMENT_RESULT.ACCEPT, 'inside the scaled window');
  t.equal(s.packet(0, ACK, seqAdd(cIsn, 1 + 128_000), sIsn + 1, 502, -1, p, 0, 100, 0), SEGMENT_RESULT.DROP, 'beyond it');
  t.same(c2s.anomalies, [STREAM_ANOMALY.BEYOND_WINDOW]);
});

t.test('RST: in-window ends both directions, out-of-window is ignored (RFC 5961 §3.2)', async (t) => {
  const { s, c2s, s2c } = pair();
  s.packet(0, SYN, 100, 0, 64240, -1, EMPTY, 0, 0, 0);
  s.packet(1, SYN | ACK, 500, 101, 65535, -1, EMPTY, 0, 0, 0);
  s.packet(0, ACK, 101, 501, 64240, -1, Buffer.from('abc'), 0, 3, 0);
  s.packet(0, RST, 101 + 1_000_000, 0, 0, -1, EMPTY, 0, 0, 0);
  t.same(c2s.anomalies, [STREAM_ANOMALY.RST_OUT_OF_WINDOW]);
  t.equal(s.dirs[0].state, DIRECTION_STATE.OPEN, 'a blind RST does not end inspection');
  s.packet(0, RST, 104, 0, 0, -1, EMPTY, 0, 0, 0);
  t.same(c2s.ends, [STREAM_END.RST]);
  t.same(s2c.ends, [STREAM_END.RST]);
});

t.test('an RST answering a SYN must acknowledge it (RFC 9293 §3.10.7.3)', async (t) => {
  const { s, c2s } = pair();
  s.packet(0, SYN, 100, 0, 64240, -1, EMPTY, 0, 0, 0);
  s.packet(1, RST | ACK, 0, 5000, 0, -1, EMPTY, 0, 0, 0);
  t.same(c2s.anomalies, [STREAM_ANOMALY.RST_OUT_OF_WINDOW], 'a guessed RST is ignored');
  t.same(c2s.ends, []);
  s.packet(1, RST | ACK, 0, 101, 0, -1, EMPTY, 0, 0, 0);
  t.same(c2s.ends, [STREAM_END.RST], 'port closed: the RST acknowledges the SYN');
});

t.test('midstream pickup: flagged, starts at the first seen byte, window unknown', async (t) => {
  const { s, c2s } = pair();
  s.packet(0, ACK, 7777, 1, 500, -1, Buffer.from('ET / HTTP/1.1\r\n'), 0, 15, 0);
  s.packet(1, ACK, 1, 7777 + 15, 500, -1, EMPTY, 0, 0, 0);
  t.ok(s.dirs[0].midstream);
  t.same(c2s.anomalies, [STREAM_ANOMALY.MIDSTREAM]);
  t.equal(c2s.text(), 'ET / HTTP/1.1\r\n');
  t.equal(s.dirs[0].windowRight, -1, 'no scale known: no window bound');
  s.packet(0, ACK, 7776, 1, 500, -1, Buffer.from('GE'), 0, 2, 0);
  t.equal(c2s.text(), 'ET / HTTP/1.1\r\n', 'bytes before the pickup point are not inspected');
});

t.test('reassembly feeding HTTP: a reordered, duplicated, 1-byte-segmented connection yields the objects (fast-check)', async (t) => {
  const req = 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n';
  const resp = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\nclosed';
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 0xffff_ffff }), fc.array(fc.nat(), { minLength: 1, maxLength: 200 }), (cIsn, sIsn, order) => {
      const bodies: string[][] = [[], []];
      const ends: HttpEndReason[][] = [[], []];
      const consumer: HttpConsumer = {
        onObjectStart: (dir) => void bodies[dir]!.push(''),
        onBody: (dir, d) => {
          const b = bodies[dir]!;
          b[b.length - 1] += Buffer.from(d).toString('latin1');
        },
        onObjectEnd: (dir, r) => void ends[dir]!.push(r),
        onAnomaly: () => {},
      };
      const http = new Http1Session(consumer);
      const s = new TcpStream(streamOptions(), new StreamMemcap(), createStreamCounters(), [http.request, http.response]);
      s.packet(0, SYN, cIsn, 0, 65535, -1, EMPTY, 0, 0, 0);
      s.packet(1, SYN | ACK, sIsn, seqAdd(cIsn, 1), 65535, -1, EMPTY, 0, 0, 0);
      // 1-byte segments of both directions, shuffled, some twice.
      const segs: [number, number][] = [];
      for (let i = 0; i < req.length; i++) segs.push([0, i]);
      for (let i = 0; i < resp.length; i++) segs.push([1, i]);
      for (let i = segs.length - 1; i > 0; i--) {
        const j = (order[i % order.length] ?? 0) % (i + 1);
        [segs[i], segs[j]] = [segs[j]!, segs[i]!];
      }
      for (const k of order.slice(0, 20)) segs.push(segs[k % segs.length]!);
      const wire = [Buffer.from(req, 'latin1'), Buffer.from(resp, 'latin1')];
      for (const [dir, i] of segs) {
        const isn = dir === 0 ? cIsn : sIsn;
        const peer = dir === 0 ? sIsn : cIsn;
        s.packet(dir, ACK, seqAdd(isn, 1 + i), seqAdd(peer, 1), 65535, -1, wire[dir]!, i, 1, 0);
      }
      s.packet(1, FIN | ACK, seqAdd(sIsn, 1 + resp.length), seqAdd(cIsn, 1), 65535, -1, EMPTY, 0, 0, 0);
      return (
        JSON.stringify(bodies) === JSON.stringify([['wikipedia', ''], ['ok', 'closed']]) &&
        JSON.stringify(ends[1]) === JSON.stringify([HTTP_END.COMPLETE, HTTP_END.STREAM_END])
      );
    }),
    { numRuns: 100 },
  );
  t.pass();
});

t.test('a segment starting before ISN+1 is refused whole: BEFORE_START, DROP, none of its bytes taken', async (t) => {
  const { s, c2s } = pair();
  s.packet(0, SYN, 999, 0, 64240, -1, EMPTY, 0, 0, 0);
  const bytes = Buffer.from('XXXXXhello');
  t.equal(s.packet(0, ACK, 995, 0, 0, -1, bytes, 0, bytes.length, 0), SEGMENT_RESULT.DROP);
  t.same(c2s.anomalies, [STREAM_ANOMALY.BEFORE_START]);
  t.equal(s.dirs[0].delivered, 0, 'not even the bytes from ISN+1 on');
  t.equal(s.packet(0, ACK, 1000, 0, 0, -1, bytes, 5, 5, 0), SEGMENT_RESULT.ACCEPT);
  t.equal(c2s.text(), 'hello');
  const mid = pair();
  mid.s.packet(0, ACK, 5000, 0, 0, -1, bytes, 5, 5, 0);
  t.equal(mid.s.packet(0, ACK, 4995, 0, 0, -1, bytes, 0, 10, 0), SEGMENT_RESULT.ACCEPT, 'midstream: bytes before the first seen are old data, not an anomaly');
  t.same(mid.c2s.anomalies, [STREAM_ANOMALY.MIDSTREAM]);
});

t.test('startAt anchors a direction at an ISN+1 its owner saw: not midstream, then segments as after a SYN', async (t) => {
  const { s, c2s } = pair();
  s.startAt(0, 0xffff_fffe);
  t.equal(s.dirs[0].state, DIRECTION_STATE.OPEN);
  t.equal(s.dirs[0].midstream, false);
  const b = Buffer.from('abcdef');
  t.equal(s.packet(0, ACK, 0, 0, 0, -1, b, 2, 4, 0), SEGMENT_RESULT.ACCEPT, 'out of order across the 2^32 wrap');
  t.equal(c2s.text(), '');
  s.packet(0, ACK, 0xffff_fffe, 0, 0, -1, b, 0, 2, 0);
  t.equal(c2s.text(), 'abcdef');
  t.equal(s.packet(0, ACK, 0xffff_fffd, 0, 0, -1, b, 0, 1, 0), SEGMENT_RESULT.DROP, 'before the anchor');
  t.same(c2s.anomalies, [STREAM_ANOMALY.BEFORE_START]);
  s.close();
  s.startAt(0, 100);
  t.equal(s.dirs[0].delivered, 0, 'a closed stream starts again');
  s.packet(0, ACK, 100, 0, 0, -1, b, 0, 3, 0);
  t.equal(c2s.text(), 'abcdefabc');
});

t.test('skip moves past the next bytes in order without delivering them, and only then', async (t) => {
  const { s, c2s } = pair();
  s.startAt(0, 1000);
  const b = Buffer.from('0123456789');
  t.equal(s.dirs[0].skip(1000, 4), true, 'next in order');
  t.equal(s.dirs[0].delivered, 4);
  t.equal(c2s.text(), '', 'nothing delivered');
  t.equal(s.dirs[0].skip(1010, 2), false, 'not next in order');
  s.packet(0, ACK, 1008, 0, 0, -1, b, 8, 2, 0);
  t.equal(s.dirs[0].skip(1004, 2), false, 'bytes pending behind a hole: segment() must merge them');
  s.packet(0, ACK, 1004, 0, 0, -1, b, 4, 4, 0);
  t.equal(c2s.text(), '456789');
  t.equal(s.dirs[0].skip(1010, 0), true, 'nothing to skip');
});
