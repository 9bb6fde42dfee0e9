/**
 * Symmetric flow hashing: both directions of a flow hash to the same 32-bit value, so the flow table (and any
 * worker sharding keyed on it) finds one entry for A→B and B→A without first deciding which side is which.
 *
 * The key is (GWLB endpoint id, IP version, protocol, {(src address, src port), (dst address, dst port)}): an
 * unordered pair of endpoints within one tenant.
 * - GWLB endpoint id (GENEVE option type 1, 64 bits as hi/lo halves; 0, 0 when GWLB sent none): one fleet
 *   serves many VPCs, and VPCs overlap (every VPC can have 10.0.0.5), so the same 5-tuple through two
 *   endpoints is two flows that must never share state (docs/architecture.md §2).
 * - IP version: addresses are compared IPv4-mapped (below), so an IPv6 packet between ::ffff:a.b.c.d addresses
 *   would otherwise be the same key as the IPv4 flow.
 * - TCP / UDP: the 5-tuple.
 * - ICMP / ICMPv6 echo: the 3-tuple plus the echo identifier, which the decoder puts in both srcPort and dstPort
 *   (see InnerPacket), so request and reply share a key.
 * - Everything else: the 3-tuple (the decoder leaves the ports 0).
 * - Non-first fragments (pkt.isLaterFragment) carry no transport header, so they cannot be matched to their
 *   5-tuple flow without reassembly, which we do not do. Their ports are forced to 0 here (whatever the decoder
 *   left): a later fragment is keyed by its 3-tuple flow (protocol, addresses, ports 0), a flow of its own.
 *   The data plane does not look them up at all: it hands them to the fragment tracker (src/flow/fragments.ts),
 *   which makes them follow their datagram's first fragment. `effectiveSrcPort` / `effectiveDstPort` give the
 *   ports the key would use.
 *
 * Addresses are the InnerPacket's four 32-bit words, IPv4 stored IPv4-mapped, so one function serves both families
 * and an IPv4 flow can never collide structurally with an IPv6 one.
 */
import type { InnerPacket } from '../packet/types.js';

// MurmurHash3 x86_32 constants (Austin Appleby, public domain): well-studied 32-bit mixing with Math.imul.
const MURMUR_C1 = 0xcc9e2d51;
const MURMUR_C2 = 0x1b873593;
const MURMUR_ROUND_ADD = 0xe6546b64;
const FMIX_M1 = 0x85ebca6b;
const FMIX_M2 = 0xc2b2ae35;
/** Golden-ratio constant: spreads the protocol number before it joins the endpoint sum. */
const PROTOCOL_SPREAD = 0x9e3779b9;

function mixWord(h: number, word: number): number {
  let k = Math.imul(word, MURMUR_C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, MURMUR_C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + MURMUR_ROUND_ADD) | 0;
}

/** MurmurHash3 finalizer: every input bit affects every output bit (full avalanche). */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, FMIX_M1);
  h ^= h >>> 13;
  h = Math.imul(h, FMIX_M2);
  h ^= h >>> 16;
  return h;
}

/** Hash of one endpoint (address words + port), independent of which side of the flow it is on. */
function endpointHash(a0: number, a1: number, a2: number, a3: number, port: number, seed: number): number {
  let h = seed;
  h = mixWord(h, a0);
  h = mixWord(h, a1);
  h = mixWord(h, a2);
  h = mixWord(h, a3);
  h = mixWord(h, port);
  return fmix32(h ^ 20); // 20 = bytes hashed, as MurmurHash3 folds the length in before the finalizer
}

/** The source port the flow key uses: 0 for a non-first fragment (no transport header), else pkt.srcPort. */
export function effectiveSrcPort(pkt: InnerPacket): number {
  return pkt.isLaterFragment ? 0 : pkt.srcPort;
}

/** The destination port the flow key uses: 0 for a non-first fragment, else pkt.dstPort. */
export function effectiveDstPort(pkt: InnerPacket): number {
  return pkt.isLaterFragment ? 0 : pkt.dstPort;
}

/**
 * Symmetric hash of an explicit 5-tuple (addresses as 4-word arrays), without tenant or IP version: what a
 * 5-tuple load balancer hashes (the lab's GWLB emulator uses it). The flow table uses flowKeyHash.
 *
 * Why it is symmetric: each endpoint is hashed on its own by the same function, and the two endpoint hashes are
 * combined with addition mod 2^32, which is commutative. Reversing the packet swaps the operands of that
 * addition, not its result; the protocol and the final mix are applied to the sum, so they see the same input
 * for both directions. (gopacket's Flow.FastHash does the same.) Addition rather than XOR: with XOR a flow whose
 * two endpoints are equal would hash to a constant (e ^ e = 0).
 *
 * `seed` keys the hash: the flow table draws a random one so outsiders cannot aim many flows at one hash bucket
 * (Linux conntrack seeds its jhash at boot for the same reason). It is a mitigation, not a cryptographic
 * guarantee: MurmurHash3's round function admits seed-independent multicollisions for long inputs.
 */
/** The symmetric core of both hashes: the two endpoints' hashes added (order-free), then the protocol. */
function endpointSum(protocol: number, src: ArrayLike<number>, srcPort: number, dst: ArrayLike<number>, dstPort: number, seed: number): number {
  const a = endpointHash(src[0]!, src[1]!, src[2]!, src[3]!, srcPort, seed);
  const b = endpointHash(dst[0]!, dst[1]!, dst[2]!, dst[3]!, dstPort, seed);
  return ((a + b) | 0) ^ Math.imul(protocol + 1, PROTOCOL_SPREAD);
}

export function tupleHash(
  protocol: number,
  src: ArrayLike<number>,
  srcPort: number,
  dst: ArrayLike<number>,
  dstPort: number,
  seed = 0,
): number {
  return fmix32(endpointSum(protocol, src, srcPort, dst, dstPort, seed) ^ seed) >>> 0;
}

/**
 * Symmetric hash of a whole flow key: tupleHash's endpoint sum, with the GWLB endpoint id and the IP version
 * mixed into that sum. Both are the same for the two directions of a flow, so the result stays symmetric, and
 * the final mix sees every bit of them (full avalanche), so two tenants' identical 5-tuples land in unrelated
 * buckets.
 */
export function flowKeyHash(
  endpointHi: number,
  endpointLo: number,
  ipVersion: number,
  protocol: number,
  src: ArrayLike<number>,
  srcPort: number,
  dst: ArrayLike<number>,
  dstPort: number,
  seed = 0,
): number {
  let h = endpointSum(protocol, src, srcPort, dst, dstPort, seed);
  h = mixWord(h, endpointHi);
  h = mixWord(h, endpointLo);
  h = mixWord(h, ipVersion);
  return fmix32(h ^ seed) >>> 0;
}

/**
 * 32-bit hash of the flow key of `pkt` received through GWLB endpoint (endpointHi, endpointLo), identical for
 * both directions of the flow (see tupleHash for why). Allocation-free: reads the address words in place.
 */
export function flowHash(pkt: InnerPacket, endpointHi: number, endpointLo: number, seed = 0): number {
  return flowKeyHash(endpointHi, endpointLo, pkt.ipVersion, pkt.protocol, pkt.src, effectiveSrcPort(pkt), pkt.dst, effectiveDstPort(pkt), seed);
}
