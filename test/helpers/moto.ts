/**
 * A real moto_server (CloudWatch Logs emulator) on 127.0.0.1 for the tests that speak to CloudWatch Logs, a tiny
 * recording/fault-injecting HTTP proxy in front of it, and a free-port helper. moto is not installable from apt or
 * npm; it is on the development image. A missing moto_server is a thrown error (a failed test), never a skip.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer, connect } from 'node:net';
import { once } from 'node:events';
import { waitFor } from './wait.js';

const MOTO_CANDIDATES = ['/root/.pyenv/shims/moto_server', '/usr/local/bin/moto_server', '/usr/bin/moto_server'];

export function motoServerPath(): string {
  const fromEnv = process.env.MOTO_SERVER;
  for (const p of [...(fromEnv !== undefined ? [fromEnv] : []), ...MOTO_CANDIDATES]) if (existsSync(p)) return p;
  throw new Error(`moto_server is not installed (looked in ${MOTO_CANDIDATES.join(', ')}; set MOTO_SERVER=PATH): the CloudWatch Logs integration tests cannot run`);
}

export async function freePort(): Promise<number> {
  const srv = createNetServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface Moto {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** Starts moto_server on a free loopback port and waits until it accepts connections. */
export async function startMoto(): Promise<Moto> {
  const bin = motoServerPath();
  const port = await freePort();
  const child: ChildProcess = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  let exited = false;
  child.once('exit', () => (exited = true));
  const stop = async (): Promise<void> => {
    if (exited || child.pid === undefined) return;
    const gone = once(child, 'exit');
    process.kill(child.pid, 'SIGTERM');
    await gone;
  };
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`moto_server exited: ${stderr}`);
      return canConnect(port);
    }, 60_000, `moto_server listening on 127.0.0.1:${port}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, url: `http://127.0.0.1:${port}`, stop };
}

export interface RecordedCall {
  target: string;
  /** Events in a PutLogEvents body. */
  events: number;
  /** Σ (UTF-8 message bytes + 26) of a PutLogEvents body. */
  apiBytes: number;
  timestamps: number[];
  /** Status the proxy answered with (injected or moto's). */
  status: number;
  injected: boolean;
  headers: IncomingHttpHeaders;
  /** PutLogEvents calls in flight when this one arrived (this one included). */
  concurrent: number;
}

export interface Injection {
  status: number;
  type: string;
}

/** An HTTP proxy to moto that records every call and answers planned faults for the next PutLogEvents calls. */
export class LogsProxy {
  readonly calls: RecordedCall[] = [];
  readonly plan: Injection[] = [];
  private server: Server;
  private inFlight = 0;
  port = 0;

  constructor(private readonly upstreamPort: number) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const target = String(req.headers['x-amz-target'] ?? '').replace('Logs_20140328.', '');
        const call: RecordedCall = { target, events: 0, apiBytes: 0, timestamps: [], status: 0, injected: false, headers: req.headers, concurrent: 0 };
        if (target === 'PutLogEvents') {
          const input = JSON.parse(body.toString('utf8')) as { logEvents: { timestamp: number; message: string }[] };
          call.events = input.logEvents.length;
          for (const e of input.logEvents) {
            call.apiBytes += Buffer.byteLength(e.message) + 26;
            call.timestamps.push(e.timestamp);
          }
          call.concurrent = ++this.inFlight;
          res.once('close', () => this.inFlight--);
          const fault = this.plan.shift();
          if (fault !== undefined) {
            call.status = fault.status;
            call.injected = true;
            this.calls.push(call);
            res.writeHead(fault.status, { 'content-type': 'application/x-amz-json-1.1' });
            res.end(JSON.stringify({ __type: fault.type, message: `injected ${fault.type}` }));
            return;
          }
        }
        this.calls.push(call);
        const up = httpRequest({ host: '127.0.0.1', port: this.upstreamPort, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
          call.status = upRes.statusCode ?? 0;
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        });
        up.on('error', (err) => {
          res.writeHead(502);
          res.end(String(err));
        });
        up.end(body);
      });
    });
  }

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as { port: number }).port;
    return `http://127.0.0.1:${this.port}`;
  }

  puts(): RecordedCall[] {
    return this.calls.filter((c) => c.target === 'PutLogEvents');
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
  }
}
