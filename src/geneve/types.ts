/**
 * The decoded view of one GENEVE header (RFC 8926 §3.4) with the AWS GWLB options (class 0x0108).
 * One instance per worker, reset on every decode. The raw header bytes stay in the receive buffer at
 * [offset, offset + headerLength): the return path re-sends exactly those bytes.
 */
export interface GeneveHeader {
  /** GENEVE_ANOMALY code of the last decode; 0 (OK) when usable. */
  anomaly: number;
  /** Offset of the GENEVE header in the buffer. */
  offset: number;
  /** 8 + Opt Len * 4: bytes from the start of the GENEVE header to the inner packet. */
  headerLength: number;
  version: number;
  /** O bit (control packet). */
  oam: boolean;
  /** C bit (critical options present). */
  critical: boolean;
  /** 0x0800 IPv4 or 0x86DD IPv6 for GWLB. */
  protocolType: number;
  vni: number;
  /** Number of options seen, AWS and others. */
  optionCount: number;
  /** AWS option type 1: GWLB endpoint id, 8 bytes as two 32-bit halves; hasEndpointId false when absent. */
  hasEndpointId: boolean;
  endpointIdHi: number;
  endpointIdLo: number;
  /** AWS option type 2: attachment id (zero today). */
  hasAttachmentId: boolean;
  attachmentIdHi: number;
  attachmentIdLo: number;
  /** AWS option type 3: flow cookie. */
  hasFlowCookie: boolean;
  flowCookie: number;
  /** Offset of the (last) flow cookie's 4 data bytes from the start of the header; -1 without the option. */
  flowCookieOffset: number;
  /** Number of options not understood (non-critical ones are kept and re-sent verbatim). */
  unknownOptionCount: number;
}

export function createGeneveHeader(): GeneveHeader {
  return {
    anomaly: 0,
    offset: 0,
    headerLength: 0,
    version: 0,
    oam: false,
    critical: false,
    protocolType: 0,
    vni: 0,
    optionCount: 0,
    hasEndpointId: false,
    endpointIdHi: 0,
    endpointIdLo: 0,
    hasAttachmentId: false,
    attachmentIdHi: 0,
    attachmentIdLo: 0,
    hasFlowCookie: false,
    flowCookie: 0,
    flowCookieOffset: -1,
    unknownOptionCount: 0,
  };
}
