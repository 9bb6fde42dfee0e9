/**
 * Decoding allocates nothing per packet (docs/architecture.md §3, "Fast path without allocation"). Measured as the
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
import { buildIPv6Tcp } from '../../src/packet/build.js';

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
