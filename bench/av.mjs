// clamd INSTREAM throughput through our adapter (src/av: pool, deadlines, copies, backpressure) against a minimal
// raw INSTREAM client on the same bytes, same clamd, same run, rounds interleaved (raw, adapter, raw, ...).
// Starts its own foreground clamd with rules/clamav (traffic stays on loopback / a temp unix socket).
// Run: npm run build && node bench/av.mjs [--rounds N] [--chunk BYTES]     Prints one JSON object.
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ClamdScanner } from '../dist/av/clamd.js';
import { parseClamdAddress } from '../dist/av/address.js';
import { startLocalClamd } from '../dist/av/local-clamd.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg('--rounds', 5);
const CHUNK_BYTES = arg('--chunk', 64 * 1024);
const MB = 1024 * 1024;
const SIZES = [1 * MB, 20 * MB];

/** Deterministic clean bytes (xorshift32): compressible-looking data would be unlike real downloads. */
function cleanObject(n, seed) {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** The minimal client: zINSTREAM, length-prefixed chunks with drain, zero terminator, read to NUL. */
function rawScan(address, object) {
  return new Promise((resolve, reject) => {
    const s = address.kind === 'unix' ? createConnection({ path: address.path }) : createConnection({ host: address.host, port: address.port });
    const parts = [];
    s.on('error', reject);
    s.on('data', (d) => {
      parts.push(d);
      if (d.includes(0)) {
        s.destroy();
        const all = Buffer.concat(parts);
        resolve(all.toString('latin1', 0, all.indexOf(0)));
      }
    });
    s.once('connect', async () => {
      s.write('zINSTREAM\0');
      for (let off = 0; off < object.length; off += CHUNK_BYTES) {
        const chunk = object.subarray(off, Math.min(off + CHUNK_BYTES, object.length));
        const head = Buffer.allocUnsafe(4);
        head.writeUInt32BE(chunk.length, 0);
        s.write(head);
        if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
      }
      s.write(Buffer.alloc(4));
    });
  });
}

async function adapterScan(scanner, object) {
  const scan = scanner.begin();
  for (let off = 0; off < object.length; off += CHUNK_BYTES) {
    if (!scan.write(object.subarray(off, Math.min(off + CHUNK_BYTES, object.length)))) await scan.waitDrain();
  }
  return scan.end();
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

const dir = mkdtempSync(join(tmpdir(), 'gwi-bench-av-'));
const clamd = await startLocalClamd({
  dir,
  signaturesDir: new URL('../rules/clamav/', import.meta.url).pathname,
  extraConfig: ['StreamMaxLength 64M', 'MaxFileSize 64M', 'MaxScanSize 64M'],
});
const results = [];
try {
  for (const addressText of [clamd.unixAddress, clamd.tcpAddress]) {
    const address = parseClamdAddress(addressText);
    const scanner = new ClamdScanner(address, { maxObjectBytes: 64 * MB });
    for (const size of SIZES) {
      const object = cleanObject(size, size);
      const raw = [];
      const adapter = [];
      // One warm-up of each, then interleaved rounds.
      await rawScan(address, object);
      await adapterScan(scanner, object);
      const runRaw = async () => {
        const t0 = performance.now();
        const rr = await rawScan(address, object);
        raw.push(size / MB / ((performance.now() - t0) / 1000));
        if (rr !== 'stream: OK') throw new Error(`raw client: ${rr}`);
      };
      const runAdapter = async () => {
        const t0 = performance.now();
        const ar = await adapterScan(scanner, object);
        adapter.push(size / MB / ((performance.now() - t0) / 1000));
        if (ar.kind !== 'clean') throw new Error(`adapter: ${JSON.stringify(ar)}`);
      };
      // ABBA order: whichever runs second in a pair must not always be the one that follows clamd's last scan.
      // Small objects take ~0.1 s each: more rounds so the median means something on a busy machine.
      const rounds = size < 4 * MB ? 5 * ROUNDS : ROUNDS;
      for (let r = 0; r < rounds; r++) {
        if (r % 2 === 0) {
          await runRaw();
          await runAdapter();
        } else {
          await runAdapter();
          await runRaw();
        }
      }
      const rawMBps = median(raw);
      const adapterMBps = median(adapter);
      results.push({
        transport: address.kind,
        objectBytes: size,
        rounds,
        rawMBps: Number(rawMBps.toFixed(1)),
        adapterMBps: Number(adapterMBps.toFixed(1)),
        ratio: Number((adapterMBps / rawMBps).toFixed(3)),
        rawSpreadMBps: [Number(Math.min(...raw).toFixed(1)), Number(Math.max(...raw).toFixed(1))],
        adapterSpreadMBps: [Number(Math.min(...adapter).toFixed(1)), Number(Math.max(...adapter).toFixed(1))],
      });
    }
  }
} finally {
  await clamd.stop();
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  JSON.stringify(
    {
      bench: 'av-instream',
      node: process.version,
      clamd: 'started here, rules/clamav only',
      chunkBytes: CHUNK_BYTES,
      method: 'median MB/s (MiB/s) from connect to verdict; raw and adapter alternate (ABBA) on the same bytes and clamd',
      results,
    },
    null,
    2,
  ),
);
