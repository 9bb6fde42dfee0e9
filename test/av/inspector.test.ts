/**
 * The antivirus stage in the real packet engine and content inspector (src/content/inspector.ts), with real
 * GENEVE + IPv4 + TCP bytes and a real clamd: what the test checks is what the engine sends toward each end.
 */
import t from 'tap';
import { PacketEngine } from '../../src/dataplane/engine.js';
import { runBatch as run, drainTx } from '../helpers/engine-batch.js';
import { createCounters, namedCounters } from '../../src/dataplane/counters.js';
import { FlowTable } from '../../src/flow/table.js';
import { resolveSettings, type Settings } from '../../src/config/settings.js';
import { encodeGeneve, decodeGeneve } from '../../src/geneve/codec.js';
import { createGeneveHeader } from '../../src/geneve/types.js';
import { decodeInner } from '../../src/packet/decode.js';
import { createInnerPacket, TCP_FLAG } from '../../src/packet/types.js';
import { buildIPv4Tcp } from '../../src/packet/build.js';
import { writeReject } from '../../src/packet/reject.js';
import { DEFAULT_CONTENT_POLICY } from '../../src/content/inspector.js';
import { AntivirusStage } from '../../src/av/stage.js';
import { AntivirusSectionSchema } from '../../src/av/policy.js';
import { eicarTestObject } from '../../src/av/eicar.js';
import type { UnstampedEvent } from '../../src/log/router.js';
import { startTestClamd } from '../helpers/clamd.js';
import { waitFor } from '../helpers/wait.js';

const NONCE = Buffer.from('0123456789abcdef');
const C = '10.0.0.1';
const S = '10.0.0.2';
const CPORT = 40000;
const SPORT = 80;
const ISN_C = 1000;
const ISN_S = 900000;
const SEGMENT = 1000;
const WAIT_MS = 30_000;
const EICAR_SIGNATURE = 'GWI.Test.EICAR.UNOFFICIAL';

function engine(stage: AntivirusStage) {
  const settings = { ...resolveSettings({}, {}), batchSize: 64 } as Settings;
  const counters = createCounters();
  const flows = new FlowTable({ maxFlows: 1024, tcpIdleMs: 350_000, otherIdleMs: 120_000 });
  const logs: unknown[] = [];
  const e = new PacketEngine({ settings, counters, flows, stages: [], probeNonce: NONCE, rejectBuilder: writeReject, onContentLog: (ev) => logs.push(ev) });
  e.content.configure([stage], DEFAULT_CONTENT_POLICY, () => ({ index: 0, name: 'default' }));
  return { e, counters, logs };
}



const gen = (inner: Buffer) => encodeGeneve({ flowCookie: 7, endpointIdHi: 1, endpointIdLo: 2 }, inner);
const tcp = (fromClient: boolean, seq: number, ack: number, payload: Buffer, flags: number = TCP_FLAG.ACK | TCP_FLAG.PSH) =>
  gen(
    fromClient
      ? buildIPv4Tcp({ src: C, dst: S, srcPort: CPORT, dstPort: SPORT, seq, ack, flags, window: 65535, payload })
      : buildIPv4Tcp({ src: S, dst: C, srcPort: SPORT, dstPort: CPORT, seq, ack, flags, window: 65535, payload }),
  );

interface Sent {
  readonly flags: number;
  readonly fromClient: boolean;
  readonly payload: Buffer;
}

function decode(d: Buffer): Sent {
  const gh = createGeneveHeader();
  decodeGeneve(d, 0, d.length, gh);
  const p = createInnerPacket();
  decodeInner(d, gh.headerLength, d.length - gh.headerLength, gh.protocolType, p);
  return { flags: p.tcpFlags, fromClient: p.srcPort === CPORT, payload: Buffer.from(d.subarray(p.payloadOffset, p.payloadOffset + p.payloadLength)) };
}

/** Handshake, a GET, then the response in SEGMENT-byte segments (one batch each); returns what went out toward the client. */
function download(e: PacketEngine, body: Buffer): { response: Buffer; toClient: Buffer[] } {
  const empty = Buffer.alloc(0);
  run(e, [tcp(true, ISN_C, 0, empty, TCP_FLAG.SYN), tcp(false, ISN_S, ISN_C + 1, empty, TCP_FLAG.SYN | TCP_FLAG.ACK), tcp(true, ISN_C + 1, ISN_S + 1, empty, TCP_FLAG.ACK)]);
  const get = Buffer.from('GET /dl/file.bin HTTP/1.1\r\nHost: files.example\r\n\r\n');
  const sentGet = run(e, [tcp(true, ISN_C + 1, ISN_S + 1, get)]).map(decode);
  if (sentGet.length !== 1) throw new Error('the bodyless GET must go out at once');
  const response = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nContent-Type: application/octet-stream\r\n\r\n`), body]);
  const toClient: Buffer[] = [];
  for (let off = 0; off < response.length; off += SEGMENT) {
    const seg = response.subarray(off, Math.min(response.length, off + SEGMENT));
    for (const s of run(e, [tcp(false, ISN_S + 1 + off, ISN_C + 1 + get.length, seg)]).map(decode)) if (!s.fromClient) toClient.push(s.payload);
  }
  return { response, toClient };
}

function makeStage(address: string, section: Record<string, unknown> = {}) {
  const events: UnstampedEvent[] = [];
  const stage = new AntivirusStage(
    { section: AntivirusSectionSchema.parse({ enabled: true, ...section }), scopes: new Map() },
    address,
    { log: (ev) => events.push(ev), wallNowMs: Date.now },
  );
  return { stage, events };
}

function cleanBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 0x20 + ((i * 7) % 90);
  return b;
}

const clamd = await startTestClamd(t);

t.test('a clean download: everything but the last segment flows at once, the last after clamd answers', async (t) => {
  const { stage } = makeStage(clamd.unixAddress);
  const { e } = engine(stage);
  const { response, toClient } = download(e, cleanBytes(20_000));
  const lastStart = Math.floor((response.length - 1) / SEGMENT) * SEGMENT;
  t.same(Buffer.concat(toClient), response.subarray(0, lastStart), 'all but the segment completing the object, in order');
  const later: Buffer[] = [];
  await waitFor(() => {
    later.push(...drainTx(e).map(decode).filter((s) => !s.fromClient).map((s) => s.payload));
    return later.length > 0;
  }, WAIT_MS, 'the tail after the clean answer');
  t.same(Buffer.concat([...toClient, ...later]), response, 'the whole response, byte-identical');
  t.equal(stage.counters.clean, 1);
});

t.test('an EICAR download: the segment completing it never goes out; RSTs to both ends; verdict and finding logged', async (t) => {
  const { stage, events } = makeStage(clamd.unixAddress);
  const { e, counters, logs } = engine(stage);
  const body = Buffer.concat([cleanBytes(4000), eicarTestObject(), cleanBytes(3000)]);
  const { response, toClient } = download(e, body);
  const after: Sent[] = [];
  await waitFor(() => {
    after.push(...drainTx(e).map(decode));
    return after.filter((s) => (s.flags & TCP_FLAG.RST) !== 0).length >= 2;
  }, WAIT_MS, 'the RSTs');
  const received = Buffer.concat([...toClient, ...after.filter((s) => !s.fromClient).map((s) => s.payload)]);
  t.ok(received.length < response.length, `the client got ${received.length} of ${response.length} bytes`);
  t.same(received, response.subarray(0, received.length), 'what it got is a prefix');
  t.equal(after.filter((s) => (s.flags & TCP_FLAG.RST) !== 0).length, 2, 'one RST toward each end');
  t.equal(after.filter((s) => s.payload.length > 0).length, 0, 'no data after the verdict');
  t.equal(namedCounters(counters)['content_verdict_reject'], 1);
  t.match(logs, [{ kind: 'flow_verdict', stage: 'av', action: 'reject', signature: EICAR_SIGNATURE, reason: 'av.infected', direction: 'to_client' }]);
  t.match(events, [{ kind: 'content_finding', finding: { objectName: 'files.example/dl/file.bin', objectBytes: body.length } }]);
});

t.test('clamd down, fail closed: the tail is discarded, the verdict says not scanned', async (t) => {
  const dead = await startTestClamd(t);
  await dead.stop('SIGKILL');
  const { stage, events } = makeStage(dead.unixAddress);
  const { e, logs } = engine(stage);
  const { response, toClient } = download(e, cleanBytes(5000));
  await waitFor(() => logs.length > 0, WAIT_MS, 'the verdict');
  t.ok(Buffer.concat(toClient).length < response.length, 'the tail never went');
  t.equal(drainTx(e).filter((d) => decode(d).payload.length > 0).length, 0, 'nothing released');
  t.match(logs, [{ kind: 'flow_verdict', stage: 'av', action: 'drop', reason: 'av.not_scanned' }]);
  t.match(events, [{ kind: 'anomaly', code: 'av.not_scanned.unreachable', action: 'drop' }]);
});
