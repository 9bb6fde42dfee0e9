/**
 * Decoding, and the engine's whole pass-through path, allocate nothing per packet (docs/architecture.md §3, "Fast path without allocation"). Measured as the
 * young-generation collections (scavenges) during a long decode loop: packets whose 32-bit fields are ≥ 2^31 (flow
 * cookie, endpoint id, TCP sequence numbers, IPv6 address words) against the same packets with small values. With
 * buf.readUInt32BE() in the decoders, the large values cost one heap number per field per packet: a few dozen
 * scavenges where the small ones cost none.
 */
import t from 'tap';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { encodeGeneve, decodeGeneve } from '../../src/geneve/codec.js';
import { createGeneveHeader } from '../../src/geneve/types.js';
import { decodeInner } from '../../src/packet/decode.js';
import { createInnerPacket } from '../../src/packet/types.js';
import { buildIPv4Udp, buildIPv6Tcp } from '../../src/packet/build.js';
import { PacketEngine, SLOT_BYTES, HEADROOM_BYTES, createRecvArrays } from '../../src/dataplane/engine.js';
import { createCounters, COUNTER } from '../../src/dataplane/counters.js';
import { FlowTable } from '../../src/flow/table.js';
import { resolveSettings } from '../../src/config/settings.js';

const N = 2_000_000;

function datagram(big: boolean): Buffer {
  const v = (x: number) => (big ? 0x80000000 + x : x);
  const inner = buildIPv6Tcp({
    src: big ? 'fe80:8000:8000:8000:8000:8000:8000:8001' : '::1',
    dst: big ? 'ff02:9000:9000:9000:9000:9000:9000:9001' : '::2',
    srcPort: 40000,
    dstPort: 443,
    seq: v(17),
    ack: v(99),
    flags: 0x10,
    payload: Buffer.alloc(32),
  });
  return encodeGeneve({ flowCookie: v(5), endpointIdHi: v(1), endpointIdLo: v(2), attachmentIdHi: v(3), attachmentIdLo: v(4) }, inner);
}

async function scavengesWhile(fn: () => void): Promise<number> {
  let n = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e.detail as { kind?: number } | undefined)?.kind === constants.NODE_PERFORMANCE_GC_MINOR) n++;
  });
  obs.observe({ entryTypes: ['gc'] });
  fn();
  await new Promise((r) => setTimeout(r, 50)); // gc entries are delivered asynchronously
  obs.disconnect();
  return n;
}

function decodeLoop(d: Buffer): () => void {
  const gh = createGeneveHeader();
  const pkt = createInnerPacket();
  return () => {
    for (let i = 0; i < N; i++) {
      decodeGeneve(d, 0, d.length, gh);
      decodeInner(d, gh.headerLength, d.length - gh.headerLength, gh.protocolType, pkt);
    }
  };
}

t.test('decoding GENEVE and the inner packet allocates nothing, whatever the field values', async (t) => {
  const big = datagram(true);
  const small = datagram(false);
  // Warm up both (optimized code, feedback for both value ranges).
  decodeLoop(big)();
  decodeLoop(small)();
  const gh = createGeneveHeader();
  decodeGeneve(big, 0, big.length, gh);
  t.ok(gh.flowCookie >= 2 ** 31 && gh.endpointIdLo >= 2 ** 31, 'the big datagram really carries values ≥ 2^31');
  const withSmall = await scavengesWhile(decodeLoop(small));
  const withBig = await scavengesWhile(decodeLoop(big));
  t.ok(withBig <= withSmall + 2, `scavenges during ${N} decodes: ${withBig} with values ≥ 2^31, ${withSmall} with small values`);
});

/**
 * The engine (decode, flow lookup, header kept, return queued) over one batch of 16 flows, again and again: GWLB
 * endpoint ids and cookies with the high bit set against small ones. An endpoint id ≥ 2^31 read from the decode
 * object is a double; passed as such to the (not inlined) flow table it became a heap number per packet.
 */
/** Two heap numbers of 16 bytes per packet on the old code: ~128 MB, several scavenges over a 16 MB young generation. */
const ENGINE_PACKETS = 4_000_000;

function engineLoop(big: boolean): { run: () => void; engine: PacketEngine } {
  const settings = { ...resolveSettings({}, {}), batchSize: 16 };
  const engine = new PacketEngine({ settings, counters: createCounters(), flows: new FlowTable({ maxFlows: 1024 }), stages: [], probeNonce: Buffer.alloc(16) });
  const v = (x: number) => (big ? (0x80000000 + x) >>> 0 : x);
  const buf = Buffer.alloc(16 * SLOT_BYTES);
  const meta = createRecvArrays(16);
  for (let i = 0; i < 16; i++) {
    const inner = buildIPv4Udp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1000 + i, dstPort: 53, payload: Buffer.alloc(18) });
    const d = encodeGeneve({ flowCookie: v(100 + i), endpointIdHi: v(1), endpointIdLo: v(2 + (i & 1)) }, inner);
    d.copy(buf, i * SLOT_BYTES + HEADROOM_BYTES);
    meta.lens[i] = d.length;
    meta.srcAddr[i] = 0x7f000002;
    meta.srcPort[i] = 40000;
    meta.dstAddr[i] = 0x7f000001;
  }
  return {
    engine,
    run: () => {
      for (let n = 0; n < ENGINE_PACKETS / 16; n++) engine.processBatch(buf, SLOT_BYTES, 16, meta, 1000);
    },
  };
}

t.test('the engine passes packets without allocating, whatever the endpoint ids (regression: ids ≥ 2^31 were boxed)', async (t) => {
  const big = engineLoop(true);
  const small = engineLoop(false);
  big.run();
  small.run();
  t.equal(big.engine.counters[COUNTER.PASSED], ENGINE_PACKETS, 'every packet of the big run passed');
  t.equal(big.engine.flows.size, 16, 'as 16 flows');
  t.ok(big.engine.flows.endpointIdHiOf(0) >= 2 ** 31, 'keyed by an endpoint id ≥ 2^31');
  const withSmall = await scavengesWhile(small.run);
  const withBig = await scavengesWhile(big.run);
  t.ok(withBig <= withSmall + 2, `scavenges during ${ENGINE_PACKETS} packets: ${withBig} with endpoint ids ≥ 2^31, ${withSmall} with small ones`);
});
