/**
 * Starts a real clamd (Debian clamav-daemon) in the foreground for the tests, the bench and the lab, with a
 * temp config: a unix socket in `dir`, a loopback TCP port, and a DatabaseDirectory holding only our own
 * signature files (rules/clamav; clamd refuses to start on an empty one). The appliance never calls this: in
 * production it connects to an operator-run clamd (--clamd). Stopped by PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { clamdCommand } from './command.js';

export const CLAMD_INSTALL_HINT = 'apt-get install -y clamav-daemon clamdscan (scripts/install-deps.sh)';
/** Signature file extensions clamd loads (sigtool(1)); anything else in rules/clamav is documentation. */
const SIGNATURE_EXTENSIONS = ['.ndb', '.hdb', '.hsb', '.mdb', '.msb', '.ldb', '.cdb', '.fp', '.sfp', '.ign2', '.yar', '.yara'];
/** clamd loads a handful of signatures in well under a second; allow for a loaded machine. */
export const CLAMD_START_TIMEOUT_MS = 60_000;
/** Output kept for error messages. */
const OUTPUT_TAIL_CHARS = 4096;
const READY_POLL_MS = 25;
const PORT_ATTEMPTS = 3;

export interface LocalClamdOptions {
  /** An empty or new directory the config, socket and database copy go into. */
  readonly dir: string;
  /** Where the signature files are (rules/clamav). */
  readonly signaturesDir: string;
  /** Only these signature files (names in signaturesDir); default: every signature file there. */
  readonly signatureFiles?: readonly string[];
  /** clamd.conf lines appended to ours, e.g. ['StreamMaxLength 64K', 'AlertExceedsMax yes']. */
  readonly extraConfig?: readonly string[];
  /** Default: clamd on PATH, else /usr/sbin/clamd. */
  readonly clamdPath?: string;
}

export class LocalClamdError extends Error {
  readonly code = 'GWI_ERR_LOCAL_CLAMD';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LocalClamdError';
  }
}

export interface LocalClamd {
  readonly pid: number;
  readonly socketPath: string;
  readonly port: number;
  /** `unix:/…/clamd.sock` and `tcp:127.0.0.1:PORT` for the adapter. */
  readonly unixAddress: string;
  readonly tcpAddress: string;
  readonly configPath: string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** Sends `signal` (default SIGTERM) to the clamd PID and awaits its exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** The last lines clamd wrote (for failure messages). */
  output(): string;
}

export function findClamd(): string | null {
  const which = spawnSync('sh', ['-c', 'command -v clamd'], { encoding: 'utf8' });
  const onPath = which.status === 0 ? which.stdout.trim() : '';
  if (onPath !== '') return onPath;
  return existsSync('/usr/sbin/clamd') ? '/usr/sbin/clamd' : null;
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startLocalClamd(opts: LocalClamdOptions): Promise<LocalClamd> {
  const clamd = opts.clamdPath ?? findClamd();
  if (clamd === null || !existsSync(clamd)) throw new LocalClamdError(`clamd is not installed: ${CLAMD_INSTALL_HINT}`);
  const db = join(opts.dir, 'db');
  // A restart in the same directory gets exactly the signatures asked for now.
  rmSync(db, { recursive: true, force: true });
  mkdirSync(db, { recursive: true });
  const names = opts.signatureFiles ?? readdirSync(opts.signaturesDir).filter((f) => SIGNATURE_EXTENSIONS.some((e) => f.endsWith(e)));
  if (names.length === 0) throw new LocalClamdError(`no signature files in ${opts.signaturesDir} (clamd refuses an empty DatabaseDirectory)`);
  for (const f of names) copyFileSync(join(opts.signaturesDir, f), join(db, f));
  let lastError: unknown = null;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    try {
      return await startOnce(clamd, opts, db, await freeLoopbackPort());
    } catch (err) {
      // Another process may have taken the free port between our probe and clamd's bind: try another one.
      lastError = err;
    }
  }
  throw lastError;
}

async function startOnce(clamd: string, opts: LocalClamdOptions, db: string, port: number): Promise<LocalClamd> {
  const socketPath = join(opts.dir, 'clamd.sock');
  const configPath = join(opts.dir, 'clamd.conf');
  const lines = [
    'Foreground yes',
    `LocalSocket ${socketPath}`,
    'LocalSocketMode 600',
    `TCPSocket ${port}`,
    'TCPAddr 127.0.0.1',
    `DatabaseDirectory ${db}`,
    `TemporaryDirectory ${opts.dir}`,
    'LogSyslog no',
    ...(opts.extraConfig ?? []),
  ];
  writeFileSync(configPath, lines.join('\n') + '\n');
  const child: ChildProcess = spawn(clamd, ['-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (d: Buffer): void => {
    tail = (tail + d.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exitedFlag = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exitedFlag = true;
      resolve();
    });
    child.once('error', () => {
      exitedFlag = true;
      resolve();
    });
  });
  const pid = child.pid;
  if (pid === undefined) {
    await exited;
    throw new LocalClamdError(`could not start ${clamd}: ${tail}`);
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (!exitedFlag) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    await exited;
  };
  const unix = { kind: 'unix', path: socketPath } as const;
  const tcp = { kind: 'tcp', host: '127.0.0.1', port } as const;
  const deadline = Date.now() + CLAMD_START_TIMEOUT_MS;
  for (;;) {
    if (exitedFlag) throw new LocalClamdError(`clamd exited during start-up:\n${tail}`);
    const ready = await Promise.all([clamdCommand(unix, 'zPING\0', 1000), clamdCommand(tcp, 'zPING\0', 1000)]).then(
      (r) => r[0] === 'PONG' && r[1] === 'PONG',
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop('SIGKILL');
      throw new LocalClamdError(`clamd did not answer PING on ${socketPath} and 127.0.0.1:${port} within ${CLAMD_START_TIMEOUT_MS} ms:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, READY_POLL_MS));
  }
  return {
    pid,
    socketPath,
    port,
    unixAddress: `unix:${socketPath}`,
    tcpAddress: `tcp:127.0.0.1:${port}`,
    configPath,
    exited,
    stop,
    output: () => tail,
  };
}
