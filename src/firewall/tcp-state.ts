/**
 * A small TCP connection tracker: enough to tell a connection that opened in front of us from one picked up
 * mid-stream, to know who the real client is, to see the end of a connection, and to flag packets that no valid
 * connection would carry in its current state. No sequence-window tracking (RFC 9293 §3.10.7.4 checks stay with
 * the end hosts).
 *
 * The state is one byte per flow (FlowAccess.get/setTcpState):
 *
 *    7   6   5   4   3   2   1   0
 *  +---+---+---+---+---+---+---+---+
 *  | - | M | R | F1| F0|  phase    |     phase: NONE, SYN_SENT, SYN_RCVD, ESTABLISHED, CLOSED
 *  +---+---+---+---+---+---+---+---+     F0/F1: FIN seen in flow direction 0 / 1
 *                                        R: reversed (the flow's initiator per the flow table is the real server)
 *                                        M: picked up mid-stream without seeing the handshake (the sender of
 *                                           the first packet seen is taken as the client; stream start unknown)
 *
 * `track` is a pure function of (state, direction, flags, midstream pickup): it returns the new
 * state in bits 0-7 and an event in bits 8-15. Tested exhaustively on its own.
 */
import { TCP_FLAG } from '../packet/types.js';

export const TCP_PHASE = { NONE: 0, SYN_SENT: 1, SYN_RCVD: 2, ESTABLISHED: 3, CLOSED: 4 } as const;
export const TCP_PHASE_NAMES = ['none', 'syn_sent', 'syn_rcvd', 'established', 'closed'] as const;
export const PHASE_MASK = 0x07;
export const FIN0 = 0x08;
export const FIN1 = 0x10;
export const REVERSED = 0x20;
export const MIDSTREAM = 0x40;

/** What happened on this packet. */
export const TCP_EVENT = {
  OK: 0,
  /** Not valid in the tracked state: the on_invalid exception policy applies. */
  INVALID: 1,
  /** First packet of a flow without its SYN and midstream pickup is on: state set up, counted. */
  MIDSTREAM_PICKUP: 2,
  /** First packet of a flow without its SYN and midstream pickup is off: on_midstream applies. */
  MIDSTREAM_REFUSED: 3,
  /** The connection ended (RST, or FIN both ways): the flow may expire sooner. */
  CLOSED: 4,
  /** A fresh SYN on a finished connection reusing the 5-tuple: a new connection, to be decided afresh. */
  NEW_CONNECTION: 5,
} as const;
export type TcpEvent = (typeof TCP_EVENT)[keyof typeof TCP_EVENT];
export const TCP_EVENT_SHIFT = 8;

const { FIN, SYN, RST, ACK } = TCP_FLAG;

function result(state: number, event: TcpEvent): number {
  return (state & 0xff) | (event << TCP_EVENT_SHIFT);
}

/**
 * @param state   the flow's byte (0 for a new flow)
 * @param dir     DIRECTION of the packet in the flow table (0 = from the flow's initiator)
 * @param flags   TCP flags byte
 * @param pickup  settings.tcp.midstream_pickup
 */
export function track(state: number, dir: number, flags: number, pickup: boolean): number {
  // Flag combinations no valid segment carries (RFC 9293 §3.10.7: SYN and FIN/RST are exclusive in practice;
  // every segment after the first SYN carries ACK, so a segment with none of SYN, ACK, RST is a scan artefact).
  const syn = (flags & SYN) !== 0;
  const ack = (flags & ACK) !== 0;
  const rst = (flags & RST) !== 0;
  const fin = (flags & FIN) !== 0;
  if ((syn && (fin || rst)) || (flags & (SYN | ACK | RST)) === 0) return result(state, TCP_EVENT.INVALID);

  const phase = state & PHASE_MASK;
  const reversed = (state & REVERSED) !== 0;
  // Direction relative to the real client (0 = client → server).
  const fromClient = (dir === 0) !== reversed;

  if (phase === TCP_PHASE.NONE) {
    if (syn && !ack) return result(TCP_PHASE.SYN_SENT | (dir === 1 ? REVERSED : 0), TCP_EVENT.OK);
    if (!pickup) return result(0, TCP_EVENT.MIDSTREAM_REFUSED);
    // No handshake seen: the packet's own sender is taken as the client, whatever its flags say (a SYN-ACK too:
    // flags are the sender's to choose, so they cannot be trusted to name the server). The firewall judges the
    // packet in that one reading only (docs/policy.md, "Mid-stream pickup").
    const rev = dir === 1 ? REVERSED : 0;
    if (rst) return result(TCP_PHASE.CLOSED | MIDSTREAM | rev, TCP_EVENT.MIDSTREAM_PICKUP);
    return result(TCP_PHASE.ESTABLISHED | MIDSTREAM | rev | (fin ? (dir === 0 ? FIN0 : FIN1) : 0), TCP_EVENT.MIDSTREAM_PICKUP);
  }

  const keep = state & (REVERSED | MIDSTREAM);
  const finBits = state & (FIN0 | FIN1);

  if (syn && !ack) {
    // A new connection on a finished one (the peer reuses the 5-tuple; GWLB does too after its idle timeout).
    if (phase === TCP_PHASE.CLOSED || finBits === (FIN0 | FIN1)) return result(TCP_PHASE.SYN_SENT | (dir === 1 ? REVERSED : 0), TCP_EVENT.NEW_CONNECTION);
    // Retransmitted SYN while opening.
    if (fromClient && (phase === TCP_PHASE.SYN_SENT || phase === TCP_PHASE.SYN_RCVD)) return result(state, TCP_EVENT.OK);
    return result(state, TCP_EVENT.INVALID);
  }

  if (rst) {
    if (phase === TCP_PHASE.CLOSED) return result(state, TCP_EVENT.OK);
    return result(TCP_PHASE.CLOSED | keep | finBits, TCP_EVENT.CLOSED);
  }

  switch (phase) {
    case TCP_PHASE.SYN_SENT:
      if (!fromClient && syn && ack) return result(TCP_PHASE.SYN_RCVD | keep, TCP_EVENT.OK);
      // Data, ACK or FIN before the server answered; or a SYN-ACK from the client side.
      return result(state, TCP_EVENT.INVALID);
    case TCP_PHASE.SYN_RCVD:
      if (syn) return fromClient ? result(state, TCP_EVENT.INVALID) : result(state, TCP_EVENT.OK); // SYN-ACK retransmit
      if (fromClient) return finish(TCP_PHASE.ESTABLISHED | keep | finBits, dir, fin);
      // The server's ACKs (window updates) before the client's final ACK are harmless.
      return finish(state, dir, fin);
    case TCP_PHASE.ESTABLISHED:
      // A retransmitted SYN-ACK (the client's ACK was lost) is fine; a SYN-ACK from the client is not.
      if (syn) return result(state, !fromClient || (state & MIDSTREAM) !== 0 ? TCP_EVENT.OK : TCP_EVENT.INVALID);
      return finish(state, dir, fin);
    default:
      // CLOSED: stray segments after a reset follow the flow's verdict.
      return result(state, TCP_EVENT.OK);
  }
}

function finish(state: number, dir: number, fin: boolean): number {
  if (!fin) return result(state, TCP_EVENT.OK);
  const s = state | (dir === 0 ? FIN0 : FIN1);
  if ((s & (FIN0 | FIN1)) === (FIN0 | FIN1) && (state & (FIN0 | FIN1)) !== (FIN0 | FIN1)) return result(s, TCP_EVENT.CLOSED);
  return result(s, TCP_EVENT.OK);
}

/** Is the packet from the client? (For mid-stream flows: the side whose packet was picked up.) */
export function fromClient(state: number, dir: number): boolean {
  return (dir === 0) !== ((state & REVERSED) !== 0);
}
