import t from 'tap';
import fc from 'fast-check';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { STREAM_END } from '../../src/stream/events.js';
import {
  createHttpCounters,
  DEFAULT_HTTP_OPTIONS,
  Http1Session,
  HTTP_ANOMALY,
  HTTP_COUNTER,
  HTTP_END,
  HTTP_OBJECT,
  type HttpAnomaly,
  type HttpConsumer,
  type HttpEndReason,
  type HttpHead,
  type HttpObjectKind,
  type HttpOptions,
} from '../../src/stream/http1.js';

interface Obj {
  kind: HttpObjectKind;
  head: HttpHead | null;
  body: Buffer[];
  end: HttpEndReason | -1;
}

class Recorder implements HttpConsumer {
  objs: [Obj[], Obj[]] = [[], []];
  anomalies: [HttpAnomaly[], HttpAnomaly[]] = [[], []];
  onObjectStart(dir: number, kind: HttpObjectKind, head: HttpHead | null): void {
    const list = this.objs[dir as 0 | 1];
    if (list.length > 0 && list[list.length - 1]!.end === -1) throw new Error('object started inside another');
    list.push({ kind, head: head === null ? null : { ...head, raw: Buffer.from(head.raw) }, body: [], end: -1 });
  }
  onBody(dir: number, data: Uint8Array): void {
    const o = this.objs[dir as 0 | 1].at(-1);
    if (o === undefined || o.end !== -1) throw new Error('body outside an object');
    o.body.push(Buffer.from(data));
  }
  onObjectEnd(dir: number, reason: HttpEndReason): void {
    const o = this.objs[dir as 0 | 1].at(-1);
    if (o === undefined || o.end !== -1) throw new Error('end outside an object');
    o.end = reason;
  }
  onAnomaly(dir: number, code: HttpAnomaly): void {
    this.anomalies[dir as 0 | 1].push(code);
  }
  bodies(dir: 0 | 1): string[] {
    return this.objs[dir].map((o) => Buffer.concat(o.body).toString('latin1'));
  }
}

function feed(text: string | Buffer, dir: 0 | 1 = 0, opts?: Partial<HttpOptions>, cuts: number[] = []): { r: Recorder; s: Http1Session; counters: Float64Array } {
  const r = new Recorder();
  const counters = createHttpCounters();
  const s = new Http1Session(r, { ...DEFAULT_HTTP_OPTIONS, ...opts }, counters);
  const b = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  const side = dir === 0 ? s.request : s.response;
  let off = 0;
  for (const c of [...cuts, b.length]) {
    side.onData(b.subarray(off, c), off);
    off = c;
  }
  return { r, s, counters };
}

t.test('a chunked body with extensions and trailers, built by hand (RFC 9112 §7.1)', async (t) => {
  const wire =
    'POST /upload HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n' +
    '5;name=value\r\nhello\r\n' +
    '6 ; q\r\n world\r\n' +
    'A\r\n0123456789\r\n' +
    '0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n' +
    'GET /next HTTP/1.1\r\nHost: a.example\r\n\r\n';
  for (const cuts of [[], [1, 50, 73, 74, 75, 90, 120]]) {
    const { r } = feed(wire, 0, {}, cuts);
    t.equal(r.objs[0].length, 2, 'two requests');
    const [post, get] = r.objs[0] as [Obj, Obj];
    t.equal(post.kind, HTTP_OBJECT.REQUEST);
    t.equal(post.head?.method, 'POST');
    t.equal(post.head?.target, '/upload');
    t.equal(post.head?.chunked, true);
    t.equal(Buffer.concat(post.body).toString(), 'hello world0123456789', 'dechunked');
    t.equal(post.end, HTTP_END.COMPLETE);
    t.equal(get.head?.target, '/next');
    t.equal(get.head?.bodyless, true);
    t.equal(get.end, HTTP_END.COMPLETE);
    t.same(r.anomalies[0], []);
  }
});

t.test('responses: HEAD, 1xx, 204, 304 have no body; close-delimited ends at FIN', async (t) => {
  const r = new Recorder();
  const s = new Http1Session(r);
  s.request.onData(Buffer.from('HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\nGET /e HTTP/1.0\r\n\r\n'), 0);
  const resp =
    'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' + // HEAD: no body despite Content-Length
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n' + // interim + final for /b
    'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n' +
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc' +
    'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close';
  s.response.onData(Buffer.from(resp), 0);
  s.response.onEnd(resp.length, STREAM_END.FIN);
  t.same(
    r.objs[1].map((o) => [o.head?.status, o.head?.bodyless, o.end]),
    [
      [200, true, HTTP_END.COMPLETE],
      [100, true, HTTP_END.COMPLETE],
      [204, true, HTTP_END.COMPLETE],
      [304, true, HTTP_END.COMPLETE],
      [200, false, HTTP_END.COMPLETE],
      [200, false, HTTP_END.STREAM_END],
    ],
  );
  t.same(r.bodies(1), ['', '', '', '', 'abc', 'until the close']);
  t.same(r.anomalies[1], []);
});

t.test('content codings are decoded; fixtures built by hand (RFC 1951 stored block, RFC 1950 wrapper)', async (t) => {
  // A stored deflate block: BFINAL=1 BTYPE=00, LEN=5, NLEN=~5, "hello".
  const rawDeflate = Buffer.from('0105 00fa ff68 656c 6c6f'.replace(/ /g, ''), 'hex');
  // zlib: CMF 0x78 FLG 0x01 (0x7801 % 31 = 0), the block, Adler-32 of "hello" = 0x062c0215.
  const zlibDeflate = Buffer.concat([Buffer.from([0x78, 0x01]), rawDeflate, Buffer.from([0x06, 0x2c, 0x02, 0x15])]);
  for (const [name, body] of [['raw', rawDeflate], ['zlib', zlibDeflate]] as const) {
    const wire = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
    for (let cut = 1; cut < wire.length; cut += 7) {
      const { r } = feed(wire, 1, {}, [wire.length - body.length + 1, cut].sort((a, b) => a - b));
      t.same(r.bodies(1), ['hello'], `deflate (${name}) split at ${cut}`);
    }
  }
  const text = 'The quick brown fox jumps over the lazy dog. '.repeat(300);
  const br = Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Encoding: gzip, br\r\nTransfer-Encoding: chunked\r\n\r\n')]);
  const enc = brotliCompressSync(gzipSync(Buffer.from(text)));
  const chunked = Buffer.concat([br, Buffer.from(`${enc.length.toString(16)}\r\n`), enc, Buffer.from('\r\n0\r\n\r\n')]);
  const { r } = feed(chunked, 1);
  t.equal(Buffer.concat(r.objs[1][0]!.body).toString(), text, 'stacked codings are undone in reverse order');
  t.same(r.objs[1][0]!.head?.codings, ['gzip', 'br']);
  const unknown = feed('HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\nContent-Length: 4\r\n\r\nabcd', 1);
  t.same(unknown.r.anomalies[1], [HTTP_ANOMALY.UNKNOWN_ENCODING]);
  t.equal(unknown.r.objs[1][0]!.head?.decoded, false);
  t.same(unknown.r.bodies(1), ['abcd'], 'an unknown coding is delivered as it is, flagged');
});

t.test('a gzip bomb (10 MiB of zeros) stops at the limit with the anomaly; the next response still parses', async (t) => {
  const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024));
  const wire = Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: ${bomb.length}\r\n\r\n`),
    bomb,
    Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
  ]);
  const cuts: number[] = [];
  for (let c = 1460; c < wire.length; c += 1460) cuts.push(c);
  const before = process.memoryUsage().arrayBuffers;
  const { r, counters } = feed(wire, 1, {}, cuts);
  const delivered = Buffer.concat(r.objs[1][0]!.body).length;
  t.ok(delivered <= DEFAULT_HTTP_OPTIONS.decodeRatioFloorBytes + 16 * 1024, `stopped near the ratio floor (${delivered} bytes)`);
  t.ok(delivered >= DEFAULT_HTTP_OPTIONS.decodeRatioFloorBytes - 16 * 1024, 'delivered up to the bound');
  t.same(r.anomalies[1], [HTTP_ANOMALY.DECOMPRESSION_BOMB]);
  t.equal(r.objs[1][0]!.end, HTTP_END.DECODE_LIMIT);
  t.same(r.bodies(1)[1], 'ok');
  t.equal(counters[HTTP_COUNTER.BODY_BYTES_WIRE], bomb.length + 2, 'framing followed to the end of the bomb');
  t.ok(process.memoryUsage().arrayBuffers - before < 8 * 1024 * 1024, 'no 10 MiB buffer was made');

  // The absolute bound, with the ratio out of the way.
  const abs = feed(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n`), brotliCompressSync(Buffer.alloc(5 * 1024 * 1024, 7))]), 1, {
    decodedMaxBytes: 100_000,
    decodeMaxRatio: 1e12,
  });
  t.ok(Buffer.concat(abs.r.objs[1][0]!.body).length <= 100_000);
  t.same(abs.r.anomalies[1], [HTTP_ANOMALY.DECOMPRESSION_BOMB]);
  const bad = feed('HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\nnot gzip!!', 1);
  t.same(bad.r.anomalies[1], [HTTP_ANOMALY.DECODE_ERROR]);
  t.equal(bad.r.objs[1][0]!.end, HTTP_END.DECODE_ERROR);
});

t.test('smuggling signals and broken framing are anomalies; the rest of the direction is opaque', async (t) => {
  const both = feed('POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
  t.same(both.r.anomalies[0], [HTTP_ANOMALY.CONFLICTING_LENGTH]);
  t.same(both.r.bodies(0), ['abc'], 'Transfer-Encoding wins (RFC 9112 §6.3)');
  const cls = feed('POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd');
  t.same(cls.r.anomalies[0], [HTTP_ANOMALY.BAD_CONTENT_LENGTH]);
  t.equal(cls.r.objs[0][0]!.kind, HTTP_OBJECT.OPAQUE);
  t.match(cls.r.bodies(0)[0], /^POST \/ HTTP\/1\.1.*abcd$/s, 'the opaque object carries the bytes');
  const te = feed('POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n');
  t.same(te.r.anomalies[0], [HTTP_ANOMALY.BAD_TRANSFER_ENCODING]);
  const chunk = feed('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n');
  t.same(chunk.r.anomalies[0], [HTTP_ANOMALY.BAD_CHUNK]);
  t.same(chunk.r.objs[0].map((o) => [o.kind, o.end]), [[HTTP_OBJECT.REQUEST, HTTP_END.ERROR], [HTTP_OBJECT.OPAQUE, -1]]);
  const space = feed('GET / HTTP/1.1\r\nHost : a\r\n\r\n');
  t.same(space.r.anomalies[0], [HTTP_ANOMALY.BAD_HEADER_LINE], 'whitespace before the colon');
  const fold = feed('GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n');
  t.same(fold.r.anomalies[0], [HTTP_ANOMALY.BAD_HEADER_LINE], 'obs-fold');
});

t.test('heads are bounded in bytes and field count', async (t) => {
  const big = feed(`GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}\r\n\r\n`, 0, { maxHeadBytes: 1024 });
  t.same(big.r.anomalies[0], [HTTP_ANOMALY.HEAD_TOO_LARGE]);
  t.equal(big.r.objs[0][0]!.kind, HTTP_OBJECT.OPAQUE);
  const many = feed(`GET / HTTP/1.1\r\n${'X: 1\r\n'.repeat(20)}\r\n`, 0, { maxHeaderCount: 10 });
  t.same(many.r.anomalies[0], [HTTP_ANOMALY.TOO_MANY_HEADERS]);
});

t.test('a non-HTTP stream is one opaque object per direction up to the depth', async (t) => {
  const ssh = feed('SSH-2.0-OpenSSH_9.6\r\n' + 'x'.repeat(100), 0, { opaqueDepthBytes: 50 });
  t.same(ssh.r.objs[0].map((o) => [o.kind, o.end]), [[HTTP_OBJECT.OPAQUE, HTTP_END.DEPTH]]);
  t.equal(ssh.r.bodies(0)[0], ('SSH-2.0-OpenSSH_9.6\r\n' + 'x'.repeat(100)).slice(0, 50));
  const bin = feed(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]), 1);
  t.equal(bin.r.objs[1][0]!.kind, HTTP_OBJECT.OPAQUE);
  const tunnel = new Recorder();
  const s = new Http1Session(tunnel);
  s.request.onData(Buffer.from('CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n\x16\x03\x01'), 0);
  s.response.onData(Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03'), 0);
  t.same(tunnel.objs[0].map((o) => o.kind), [HTTP_OBJECT.REQUEST, HTTP_OBJECT.OPAQUE], 'CONNECT: the tunnel is opaque');
  t.same(tunnel.objs[1].map((o) => o.kind), [HTTP_OBJECT.RESPONSE, HTTP_OBJECT.OPAQUE]);
  t.same(tunnel.anomalies, [[], []]);
});

t.test('truncation and gaps end the object with their reason', async (t) => {
  const r = new Recorder();
  const s = new Http1Session(r);
  s.response.onData(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'), 0);
  s.response.onEnd(44, STREAM_END.RST);
  t.same(r.objs[1].map((o) => o.end), [HTTP_END.TRUNCATED]);
  t.same(r.anomalies[1], [HTTP_ANOMALY.TRUNCATED]);
  s.request.onData(Buffer.from('POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab'), 0);
  s.request.onGap(100, 5);
  t.same(r.objs[0].map((o) => o.end), [HTTP_END.GAP]);
});

t.test('the stream depth inside a length-delimited or chunked body ends the object as DEPTH, not TRUNCATED', async (t) => {
  // Regression: a download longer than the stream depth ended TRUNCATED, which the AV stage must treat as an
  // incomplete object (on_incomplete, closed by default) instead of one past the inspection limit (on_oversize).
  for (const head of ['Content-Length: 100000', 'Transfer-Encoding: chunked']) {
    const r = new Recorder();
    const s = new Http1Session(r);
    const body = head.startsWith('Content') ? 'x'.repeat(50) : `32\r\n${'x'.repeat(50)}\r\n`;
    const data = Buffer.from(`HTTP/1.1 200 OK\r\n${head}\r\n\r\n${body}`);
    s.response.onData(data, 0);
    s.response.onEnd(data.length, STREAM_END.DEPTH);
    t.same(r.objs[1].map((o) => o.end), [HTTP_END.DEPTH], head);
    t.same(r.anomalies[1], [], `${head}: not an anomaly`);
  }
});

/** Builds one message: head + framed, encoded body; returns the wire bytes and the body the consumer must get. */
function message(isReq: boolean, body: Buffer, framing: 'length' | 'chunked', coding: string, chunkSizes: number[]): Buffer {
  const enc =
    coding === 'gzip' ? gzipSync(body) : coding === 'deflate' ? deflateSync(body) : coding === 'deflate-raw' ? deflateRawSync(body) : coding === 'br' ? brotliCompressSync(body) : body;
  const ce = coding === 'identity' ? '' : `Content-Encoding: ${coding === 'deflate-raw' ? 'deflate' : coding}\r\n`;
  const start = isReq ? 'POST /p HTTP/1.1\r\nHost: h\r\n' : 'HTTP/1.1 200 OK\r\n';
  if (framing === 'length') return Buffer.concat([Buffer.from(`${start}${ce}Content-Length: ${enc.length}\r\n\r\n`), enc]);
  // Chunked by hand: hex size, CRLF, data, CRLF; then the last chunk and an empty trailer section.
  const parts: Buffer[] = [Buffer.from(`${start}${ce}Transfer-Encoding: chunked\r\n\r\n`)];
  let off = 0;
  let k = 0;
  while (off < enc.length) {
    const n = Math.min(enc.length - off, 1 + ((chunkSizes[k++ % Math.max(1, chunkSizes.length)] ?? 7) % 300));
    parts.push(Buffer.from(`${n.toString(16)}\r\n`), enc.subarray(off, off + n), Buffer.from('\r\n'));
    off += n;
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

t.test('pipelined requests and responses under any segmentation, chunk sizes and codings yield exactly the bodies (fast-check)', async (t) => {
  const msg = fc.record({
    body: fc.oneof(fc.uint8Array({ maxLength: 600 }), fc.string({ maxLength: 800 }).map((s) => Buffer.from(s.repeat(3)))),
    framing: fc.constantFrom('length' as const, 'chunked' as const),
    coding: fc.constantFrom('identity', 'gzip', 'deflate', 'deflate-raw', 'br'),
    chunkSizes: fc.array(fc.nat(), { minLength: 1, maxLength: 5 }),
  });
  fc.assert(
    fc.property(fc.array(fc.tuple(msg, msg), { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 30 }), (pairs, cutsA, cutsB) => {
      const reqWire = Buffer.concat(pairs.map(([q]) => message(true, Buffer.from(q.body), q.framing, q.coding, q.chunkSizes)));
      const respWire = Buffer.concat(pairs.map(([, p]) => message(false, Buffer.from(p.body), p.framing, p.coding, p.chunkSizes)));
      const r = new Recorder();
      const s = new Http1Session(r);
      const split = (b: Buffer, cuts: number[]): Buffer[] => {
        const pts = [...new Set([0, b.length, ...cuts.map((c) => c % (b.length + 1))])].sort((x, y) => x - y);
        return pts.slice(1).map((p, i) => b.subarray(pts[i], p));
      };
      // Interleave: requests first (a client sends its pipeline), responses as they come.
      let off = 0;
      for (const piece of split(reqWire, cutsA)) {
        s.request.onData(piece, off);
        off += piece.length;
      }
      off = 0;
      for (const piece of split(respWire, cutsB)) {
        s.response.onData(piece, off);
        off += piece.length;
      }
      const want = (i: 0 | 1) => pairs.map((p) => Buffer.from(p[i].body).toString('latin1'));
      return (
        JSON.stringify(r.bodies(0)) === JSON.stringify(want(0)) &&
        JSON.stringify(r.bodies(1)) === JSON.stringify(want(1)) &&
        r.objs[0].every((o) => o.end === HTTP_END.COMPLETE && o.kind === HTTP_OBJECT.REQUEST) &&
        r.objs[1].every((o) => o.end === HTTP_END.COMPLETE && o.kind === HTTP_OBJECT.RESPONSE) &&
        r.anomalies[0].length === 0 &&
        r.anomalies[1].length === 0
      );
    }),
    { numRuns: 200 },
  );
  t.pass();
});
