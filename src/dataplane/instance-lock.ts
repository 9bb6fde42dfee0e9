/**
 * One appliance per GENEVE address and port (docs/configuration.md, "Sources and instances"). The data plane
 * binds its sockets with SO_REUSEPORT, so the kernel would happily let a second process join the group; the two
 * then receive each other's health probes and returns and bounce them forever.
 *
 * The lock is a listening Unix socket in the *abstract* namespace, named after the listen address and port:
 *  - abstract names belong to the network namespace, exactly the scope in which two binds of the port collide
 *    (containers with host networking share it even when their /run differs; lab namespaces don't);
 *  - the kernel releases it when the process dies, kill -9 included: no stale lock files;
 *  - the holder answers a connection with its PID, so the refusal names it.
 * 0.0.0.0:P overlaps every ADDR:P, so after taking its own name an instance looks for overlapping names in
 * /proc/net/unix (this namespace's Unix sockets) and gives up if it finds one.
 */
import { connect, createServer, type Server } from 'node:net';
import { readFileSync } from 'node:fs';

const NAME_PREFIX = 'gwlb-inspector/udp/';
/** How long a starting instance waits for the holder to say who it is (ms). */
const HOLDER_QUERY_TIMEOUT_MS = 1000;
/** The holder's answer is one short JSON line; more is not read. */
const HOLDER_REPLY_MAX_BYTES = 1024;

export interface HolderInfo {
  pid: number | undefined;
  listen: string;
  port: number;
}

export class InstanceLockedError extends Error {
  readonly code = 'GWI_ERR_INSTANCE_LOCKED';
  readonly holder: HolderInfo;
  constructor(listen: string, port: number, holder: HolderInfo) {
    const who = holder.pid === undefined ? 'a gwlb-inspector whose PID could not be read' : `gwlb-inspector pid ${holder.pid}`;
    super(
      `UDP ${listen}:${port} is already served by ${who} (listening on ${holder.listen}:${holder.port}) in this network namespace; ` +
        'a second instance would share the port and bounce packets with it: stop the first one (or use another --listen address)',
    );
    this.name = 'InstanceLockedError';
    this.holder = holder;
  }
}

export interface InstanceLock {
  release(): Promise<void>;
}

function lockName(listen: string, port: number): string {
  return `${NAME_PREFIX}${listen}:${port}`;
}

/** Abstract names of other gwlb-inspector locks in this network namespace whose address overlaps ours. */
function overlappingNames(listen: string, port: number): string[] {
  let table: string;
  try {
    table = readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return [];
  }
  const own = lockName(listen, port);
  const out = new Set<string>();
  for (const line of table.split('\n')) {
    const at = line.indexOf(' @' + NAME_PREFIX);
    if (at < 0) continue;
    // Node passes sun_path at full length, so the kernel lists the name with its NUL padding shown as '@'.
    const name = line.slice(at + 2).trim().replace(/@+$/, '');
    const m = /^gwlb-inspector\/udp\/([0-9.]+):(\d+)$/.exec(name);
    if (m === null || Number(m[2]) !== port || name === own) continue;
    const addr = m[1] as string;
    if (addr === '0.0.0.0' || listen === '0.0.0.0') out.add(name);
  }
  return [...out];
}

/** Asks the holder of `name` who it is; never rejects. */
function queryHolder(name: string, fallback: HolderInfo): Promise<HolderInfo> {
  return new Promise((resolve) => {
    let data = '';
    const sock = connect('\0' + name);
    const done = (): void => {
      clearTimeout(timer);
      sock.destroy();
      try {
        const j = JSON.parse(data) as { pid?: unknown; listen?: unknown; port?: unknown };
        resolve({
          pid: typeof j.pid === 'number' ? j.pid : undefined,
          listen: typeof j.listen === 'string' ? j.listen : fallback.listen,
          port: typeof j.port === 'number' ? j.port : fallback.port,
        });
      } catch {
        resolve(fallback);
      }
    };
    const timer = setTimeout(done, HOLDER_QUERY_TIMEOUT_MS);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      data += d;
      if (data.length > HOLDER_REPLY_MAX_BYTES) done();
    });
    sock.on('end', done);
    sock.on('error', done);
  });
}

function listen(server: Server, name: string): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const onError = (err: NodeJS.ErrnoException): void => resolve(err);
    server.once('error', onError);
    server.listen('\0' + name, () => {
      server.off('error', onError);
      resolve(undefined);
    });
  });
}

/** Takes the lock for listen:port or throws InstanceLockedError naming the holder. */
export async function acquireInstanceLock(listenAddr: string, port: number): Promise<InstanceLock> {
  const name = lockName(listenAddr, port);
  const reply = JSON.stringify({ pid: process.pid, listen: listenAddr, port }) + '\n';
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    sock.end(reply);
  });
  const err = await listen(server, name);
  if (err !== undefined) {
    if (err.code !== 'EADDRINUSE') throw err;
    throw new InstanceLockedError(listenAddr, port, await queryHolder(name, { pid: undefined, listen: listenAddr, port }));
  }
  server.unref();
  const release = (): Promise<void> => new Promise((resolve) => server.close(() => resolve()));
  const other = overlappingNames(listenAddr, port)[0];
  if (other !== undefined) {
    await release();
    const addr = other.slice(NAME_PREFIX.length, other.lastIndexOf(':'));
    throw new InstanceLockedError(listenAddr, port, await queryHolder(other, { pid: undefined, listen: addr, port }));
  }
  return { release };
}
