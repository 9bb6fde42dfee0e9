/**
 * A GWLB stand-in on its own loopback address for tests of the running appliance: it sends GENEVE from an ephemeral
 * port and receives the returns on 6081 (the return path keeps GWLB's source port as the source and sends to
 * 6081), counting them by payload.
 */
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { encodeGeneve } from '../../src/geneve/codec.js';
import { buildIPv4Udp } from '../../src/packet/build.js';

export interface GwlbStandIn {
  sock: Socket;
  rx: Socket;
  /** Returned datagrams by hex, with where they came from. */
  returns: Map<string, { address: string; port: number }>;
  count: () => number;
  close: () => void;
}

export async function gwlbStandIn(address: string): Promise<GwlbStandIn> {
  const rx = createSocket('udp4');
  const sock = createSocket('udp4');
  const returns = new Map<string, { address: string; port: number }>();
  let n = 0;
  rx.on('message', (msg, rinfo) => {
    n++;
    returns.set(msg.toString('hex'), { address: rinfo.address, port: rinfo.port });
  });
  rx.bind(6081, address);
  sock.bind(0, address);
  await Promise.all([once(rx, 'listening'), once(sock, 'listening')]);
  return { sock, rx, returns, count: () => n, close: () => (rx.close(), sock.close()) };
}

/** One GENEVE datagram of UDP flow `flow` (distinct inner addresses and ports per flow). */
export function flowDatagram(flow: number, payload = `flow ${flow}`): Buffer {
  const inner = buildIPv4Udp({ src: `10.9.${flow >> 8}.${flow & 255}`, dst: '10.8.0.1', srcPort: 1024 + flow, dstPort: 53, payload: Buffer.from(payload) });
  return encodeGeneve({ endpointIdHi: 0x01234567, endpointIdLo: 0x89abcdef, flowCookie: 0x5000 + flow }, inner);
}

export function sendTo(sock: Socket, d: Buffer, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => sock.send(d, port, address, (err) => (err ? reject(err) : resolve())));
}
