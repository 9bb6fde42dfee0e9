/**
 * Both directions of one TCP connection: reads the header fields reassembly needs (flags, sequence and
 * acknowledgment numbers, window, Window Scale from the SYNs) and feeds each direction's StreamDirection.
 *
 * Direction 0 is the flow's initiator → responder (the SYN's sender), direction 1 the reverse; the caller maps
 * packets to directions. A direction's receive window is what the *other* direction's ACKs advertise:
 *   right edge = SEG.ACK + SEG.WND << Snd.Wind.Shift                              (RFC 7323 §2.3)
 * where the shift is the one the advertiser announced in its own SYN, used only when both SYNs carried the option
 * (RFC 7323 §2.2: "the window field in a segment where the SYN bit is set MUST NOT be scaled"; scaling is enabled
 * only if both sides sent the option). Midstream, the scale is unknown, so the window is unknown and only
 * maxAheadBytes bounds how far ahead bytes may be buffered.
 */
import { STREAM_ANOMALY, SEGMENT_RESULT, type SegmentResult, type StreamConsumer } from './events.js';
import type { StreamMemcap } from './memcap.js';
import type { StreamOptions } from './options.js';
import { DIRECTION_STATE, StreamDirection } from './reassembler.js';
import { seqAdd } from './seq.js';

/** TCP header flag bits, RFC 9293 §3.1. */
const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;
/** RFC 7323 §2.3: "If a Window Scale option is received with a shift.cnt value larger than 14, the TCP SHOULD log
 * the error but MUST use 14 instead of the specified value." */
const MAX_WSCALE = 14;

export class TcpStream {
  readonly dirs: readonly [StreamDirection, StreamDirection];
  /** Window Scale shift each direction's SYN announced, −1 when absent; −2 while that SYN was not seen. */
  private readonly wscale = [-2, -2];
  private readonly isn = [0, 0];

  constructor(opts: StreamOptions, memcap: StreamMemcap, counters: Float64Array, consumers: readonly [StreamConsumer, StreamConsumer]) {
    this.dirs = [new StreamDirection(opts, memcap, counters, consumers[0]), new StreamDirection(opts, memcap, counters, consumers[1])];
  }

  /**
   * One TCP segment of direction `dir` (0 or 1). `wscale` is the Window Scale shift.cnt of a SYN's options (−1
   * when absent; see tcp-options.ts). The payload is data[off, off + len). Returns the exception verdict.
   */
  packet(dir: number, flags: number, seq: number, ack: number, window: number, wscale: number, data: Uint8Array, off: number, len: number, nowMs: number): SegmentResult {
    const me = dir === 0 ? this.dirs[0] : this.dirs[1];
    const peer = dir === 0 ? this.dirs[1] : this.dirs[0];

    if ((flags & RST) !== 0) {
      this.rst(me, peer, flags, seq, ack);
      return SEGMENT_RESULT.ACCEPT;
    }

    let dataSeq = seq;
    if ((flags & SYN) !== 0) {
      dataSeq = seqAdd(seq, 1);
      this.syn(dir, me, seq, wscale);
    } else if (me.state === DIRECTION_STATE.NEW) {
      me.start(seq, true);
    }

    if ((flags & ACK) !== 0 && peer.state === DIRECTION_STATE.OPEN) peer.ack(ack, this.windowBytes(dir, flags, window));

    return me.segment(dataSeq, data, off, len, (flags & FIN) !== 0, nowMs);
  }

  /**
   * Anchors direction `dir` at ISN+1 = `isn1` when its owner saw the SYN before the stream existed (the firewall
   * creates a stream only when a client sends its first byte, so a SYN flood costs no stream). Not midstream;
   * the Window Scale is unknown, so only maxAheadBytes bounds how far ahead bytes are buffered.
   */
  startAt(dir: number, isn1: number): void {
    const me = dir === 0 ? this.dirs[0] : this.dirs[1];
    me.start(isn1, false);
    this.isn[dir] = seqAdd(isn1, -1);
    this.wscale[dir] = -2;
  }

  /** Hole timers of both directions. */
  poll(nowMs: number): void {
    this.dirs[0].poll(nowMs);
    this.dirs[1].poll(nowMs);
  }

  /** Frees both directions (flow expired or evicted). */
  close(): void {
    this.dirs[0].close();
    this.dirs[1].close();
  }

  private syn(dir: number, me: StreamDirection, seq: number, wscale: number): void {
    const fresh = me.state === DIRECTION_STATE.NEW;
    // A new ISN before any byte was seen (a SYN retransmitted after a timeout, a reused port) re-anchors the
    // direction; after bytes were seen it is an anomaly and the first anchor stays.
    const reanchor = !fresh && me.state === DIRECTION_STATE.OPEN && this.isn[dir] !== seq && me.delivered === 0 && me.pendingBytes === 0;
    if (!fresh && !reanchor) {
      if (this.isn[dir] !== seq || me.midstream) me.reportAnomaly(STREAM_ANOMALY.SYN_CHANGED);
      return;
    }
    me.start(seqAdd(seq, 1), false);
    this.isn[dir] = seq;
    if (wscale > MAX_WSCALE) {
      me.reportAnomaly(STREAM_ANOMALY.WSCALE_TOO_LARGE);
      wscale = MAX_WSCALE;
    }
    this.wscale[dir] = wscale;
  }

  /** Receive-window bytes advertised by this segment of `dir`, −1 when the scale is unknown. */
  private windowBytes(dir: number, flags: number, window: number): number {
    if ((flags & SYN) !== 0) return window;
    const mine = this.wscale[dir]!;
    const theirs = this.wscale[1 - dir]!;
    if (mine === -2 || theirs === -2) return -1;
    return mine >= 0 && theirs >= 0 ? window * 2 ** mine : window;
  }

  private rst(me: StreamDirection, peer: StreamDirection, flags: number, seq: number, ack: number): void {
    if (me.state === DIRECTION_STATE.NEW) {
      // An answer to a SYN (RFC 9293 §3.10.7.3, SYN-SENT): acceptable only when it acknowledges bytes of the peer
      // that were seen (the SYN: offset 0).
      const a = peer.state === DIRECTION_STATE.NEW ? -1 : peer.offsetOf(ack);
      if ((flags & ACK) === 0 || a < 0 || a > peer.delivered) {
        peer.reportAnomaly(STREAM_ANOMALY.RST_OUT_OF_WINDOW);
        return;
      }
    } else {
      // RFC 5961 §3.2 / RFC 9293 §3.10.7.4: an RST is acceptable when its sequence number is in the receive
      // window; one the receiver would ignore must not end inspection while the connection goes on.
      const o = me.offsetOf(seq);
      if (o < me.delivered || o > me.aheadLimit()) {
        me.reportAnomaly(STREAM_ANOMALY.RST_OUT_OF_WINDOW);
        return;
      }
    }
    me.reset();
    peer.reset();
  }
}
