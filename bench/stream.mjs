#!/usr/bin/env node
/**
 * Stream reassembly and HTTP/1.x object extraction throughput on one core, on a mixed corpus. One JSON line per
 * measurement (MB/s of TCP payload, 1 MB = 10^6 bytes).
 *
 *   npm run build && node bench/stream.mjs [--ms 2000]
 *
 * Corpus (reproducible, xorshift32): 64 connections; each carries, client → server, pipelined requests (GETs, a
 * POST with a Content-Length or chunked body) and, server → client, responses whose bodies are identity, gzip or
 * chunked + gzip (text that compresses ~4:1, and incompressible bytes); plus non-HTTP connections (random bytes,
 * one opaque object per direction). Payload is cut into 1448-byte segments (a typical MSS with timestamps);
 * about 3 % of segments arrive one place late (out of order) and 1 % are retransmitted (identical bytes).
 *
 * Measures:
 *   reassembly            TcpStream with consumers that do nothing (retain-until-ACK on: the default)
 *   reassembly_no_retain  the same with retainMaxBytes = 0 (in-order bytes are never copied)
 *   reassembly_http  TcpStream feeding Http1Session with a consumer that counts body bytes (decoding included)
 */
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { createStreamCounters } from '../dist/stream/events.js';
import { Http1Session } from '../dist/stream/http1.js';
import { StreamMemcap } from '../dist/stream/memcap.js';
import { streamOptions } from '../dist/stream/options.js';
import { TcpStream } from '../dist/stream/tcp-stream.js';
import { rng } from './corpus.mjs';

const msArg = process.argv.indexOf('--ms');
const RUN_MS = msArg > 0 ? Number(process.argv[msArg + 1]) : 2000;
const MSS = 1448;
const CONNECTIONS = 64;
const SYN = 0x02;
const ACK = 0x10;
const FIN = 0x01;

const rand = rng(0x5eed);
const words = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua'.split(' ');
function text(n) {
  const parts = [];
  let len = 0;
  while (len < n) {
    const w = words[Math.floor(rand() * words.length)];
    parts.push(w);
    len += w.length + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, n);
}
function noise(n) {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}
function chunked(body) {
  const parts = [];
  for (let off = 0; off < body.length; off += 8192) {
    const c = body.subarray(off, off + 8192);
    parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}
function response(kind, body) {
  if (kind === 'identity') return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
  const gz = gzipSync(body);
  if (kind === 'gzip') return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: ${gz.length}\r\n\r\n`), gz]);
  return Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked(gz)]);
}

/** One connection: [client bytes, server bytes]. */
function connection(i) {
  if (i % 8 === 7) return [noise(20_000 + Math.floor(rand() * 50_000)), noise(100_000 + Math.floor(rand() * 200_000))];
  const req = [];
  const resp = [];
  const n = 2 + Math.floor(rand() * 4);
  for (let k = 0; k < n; k++) {
    if (k === 1) {
      const body = text(5_000 + Math.floor(rand() * 20_000));
      req.push(Buffer.from(`POST /api/${k} HTTP/1.1\r\nHost: bench.example\r\nContent-Length: ${body.length}\r\n\r\n`), body);
    } else {
      req.push(Buffer.from(`GET /page/${i}/${k} HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n`));
    }
    const size = 10_000 + Math.floor(rand() * 150_000);
    const kind = ['identity', 'gzip', 'chunked-gzip'][k % 3];
    resp.push(response(kind, rand() < 0.3 ? noise(size) : text(size)));
  }
  return [Buffer.concat(req), Buffer.concat(resp)];
}

/** Packets of a connection: [dir, flags, seq, ack, payload offset, length], with reordering and retransmissions. */
function packets(conn) {
  const isn = [Math.floor(rand() * 2 ** 32), Math.floor(rand() * 2 ** 32)];
  const out = [[0, SYN, isn[0], 0, 0, 0], [1, SYN | ACK, isn[1], (isn[0] + 1) >>> 0, 0, 0]];
  // Requests and responses alternate in bursts; each direction's segments in order except for swaps.
  for (let dir = 0; dir < 2; dir++) {
    const segs = [];
    for (let off = 0; off < conn[dir].length; off += MSS) segs.push([dir, ACK, (isn[dir] + 1 + off) >>> 0, (isn[1 - dir] + 1) >>> 0, off, Math.min(MSS, conn[dir].length - off)]);
    for (let k = 0; k + 1 < segs.length; k++) {
      if (rand() < 0.03) [segs[k], segs[k + 1]] = [segs[k + 1], segs[k]];
      if (rand() < 0.01) segs.splice(k + 2, 0, segs[k]);
    }
    out.push(...segs);
    out.push([dir, FIN | ACK, (isn[dir] + 1 + conn[dir].length) >>> 0, (isn[1 - dir] + 1) >>> 0, 0, 0]);
  }
  return out;
}

const corpus = [];
let payloadBytes = 0;
for (let i = 0; i < CONNECTIONS; i++) {
  const conn = connection(i);
  corpus.push({ conn, pkts: packets(conn) });
  payloadBytes += conn[0].length + conn[1].length;
}

const defaultOpts = streamOptions();
const noRetainOpts = streamOptions({ retainMaxBytes: 0 });
const nop = { onData() {}, onGap() {}, onEnd() {}, onAnomaly() {} };
let bodyBytes = 0;
let objects = 0;
const httpConsumer = {
  onObjectStart() {
    objects++;
  },
  onBody(_dir, d) {
    bodyBytes += d.length;
  },
  onObjectEnd() {},
  onAnomaly() {},
};

function runOnce(withHttp, memcap, counters, opts) {
  for (const { conn, pkts } of corpus) {
    const http = withHttp ? new Http1Session(httpConsumer) : null;
    const s = new TcpStream(opts, memcap, counters, http ? [http.request, http.response] : [nop, nop]);
    for (const [dir, flags, seq, ack, off, len] of pkts) s.packet(dir, flags, seq, ack, 65535, -1, conn[dir], off, len, 0);
    s.close();
    if (http) http.close();
  }
}

function measure(name, withHttp, opts = defaultOpts) {
  const memcap = new StreamMemcap();
  const counters = createStreamCounters();
  runOnce(withHttp, memcap, counters, opts); // warm-up
  bodyBytes = 0;
  objects = 0;
  let bytes = 0;
  let rounds = 0;
  const t0 = performance.now();
  let elapsed = 0;
  do {
    runOnce(withHttp, memcap, counters, opts);
    bytes += payloadBytes;
    rounds++;
    elapsed = performance.now() - t0;
  } while (elapsed < RUN_MS);
  console.log(
    JSON.stringify({
      measure: name,
      mb_per_s: +(bytes / 1e6 / (elapsed / 1000)).toFixed(1),
      payload_mb: +(bytes / 1e6).toFixed(1),
      rounds,
      connections: CONNECTIONS,
      ...(withHttp ? { objects_per_round: objects / rounds, decoded_body_mb_per_round: +(bodyBytes / rounds / 1e6).toFixed(2) } : {}),
      memcap_in_use_after: memcap.usedBytes,
      node: process.version,
    }),
  );
}

measure('reassembly', false);
measure('reassembly_no_retain', false, noRetainOpts);
measure('reassembly_http', true);
