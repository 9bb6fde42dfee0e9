#!/usr/bin/env node
/**
 * DLP scanning throughput on one core (docs/dlp.md §Performance). One JSON line per measurement (MB/s of scanned
 * bytes, 1 MB = 10^6 bytes).
 *
 *   npm run build && node bench/dlp.mjs [--ms 2000]
 *
 * Corpus (reproducible, xorshift32, 8 MiB): English-like text, JSON records, source code, base64 blobs, hex
 * digests, long digit runs (order ids, timestamps) and rare secrets (one card, key pair or JWT per ~64 KiB),
 * cut into 1448-byte chunks (a typical MSS), scanned as objects of 256 KiB.
 *
 * Measures:
 *   dlp_all_detectors   ObjectScanner with every built-in pack (payment, identity, credentials, markers)
 *   dlp_default_packs   the default packs
 *   re2_trivial         one RE2 (a literal that never occurs) over the same chunks, same API: the floor
 *   ratio               dlp_all_detectors / re2_trivial
 */
import { performance } from 'node:perf_hooks';
import RE2 from 're2';
import { builtinPacks, compileDetector, likelihoodLevel } from '../dist/dlp/detector.js';
import { keyedHash } from '../dist/dlp/hash-key.js';
import { DLP_DEFAULT_PACKS } from '../dist/dlp/policy.js';
import { ObjectScanner, ScanPlan } from '../dist/dlp/scanner.js';

const msArg = process.argv.indexOf('--ms');
const RUN_MS = msArg > 0 ? Number(process.argv[msArg + 1]) : 2000;
const MSS = 1448;
const OBJECT_BYTES = 256 * 1024;
const CORPUS_BYTES = 8 * 1024 * 1024;

function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

function corpus() {
  const r = rng(20261202);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const words = 'the of and to in is for on that with as by this from be at or are an it not we card account number order total key token secret data report'.split(' ');
  const parts = [];
  let size = 0;
  let nextSecret = 64 * 1024;
  const push = (s) => {
    parts.push(s);
    size += s.length;
  };
  while (size < CORPUS_BYTES) {
    const k = r();
    if (k < 0.35) push(Array.from({ length: 60 }, () => pick(words)).join(' ') + '.\n');
    else if (k < 0.55) push(JSON.stringify({ id: Math.floor(r() * 1e12), ts: 1733145600000 + Math.floor(r() * 1e9), user: pick(words), amount: (r() * 1000).toFixed(2), tags: [pick(words), pick(words)] }) + '\n');
    else if (k < 0.7) push(`function f${Math.floor(r() * 1e6)}(a, b) {\n  const x = a * ${Math.floor(r() * 1e9)} + b;\n  return x.toString(16); // ${pick(words)}\n}\n`);
    else if (k < 0.85) push(Buffer.from(Array.from({ length: 600 }, () => Math.floor(r() * 256))).toString('base64') + '\n');
    else if (k < 0.93) push(Array.from({ length: 64 }, () => Math.floor(r() * 16).toString(16)).join('') + ' ' + String(Math.floor(r() * 1e15)).padStart(15, '7') + '\n');
    else push(`order ${Math.floor(r() * 1e9)} ref ${Math.floor(r() * 1e6)}-${Math.floor(r() * 1e4)} phone 555-${Math.floor(r() * 900 + 100)}-${Math.floor(r() * 9000 + 1000)}\n`);
    if (size >= nextSecret) {
      nextSecret += 64 * 1024;
      push(pick(['card 4539148803436467 exp 12/29\n', 'aws_access_key_id=AKIAQWERTYUIOPASDFGH aws_secret_access_key=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\n', 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y\n']));
    }
  }
  return Buffer.from(parts.join(''));
}

const DATA = corpus();
const CHUNKS = [];
for (let i = 0; i < DATA.length; i += MSS) CHUNKS.push(DATA.subarray(i, Math.min(DATA.length, i + MSS)));
const KEY = Buffer.alloc(32, 1);

function planOf(packNames) {
  const packs = builtinPacks();
  const specs = packNames.flatMap((n) => packs.get(n).detectors);
  const dets = specs.map(compileDetector);
  return new ScanPlan(dets, dets.map(() => likelihoodLevel('LIKELY')), (v) => keyedHash(KEY, v));
}

function run(name, scanOnce) {
  // warm-up
  scanOnce();
  let bytes = 0;
  let matches = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < RUN_MS) {
    matches = scanOnce();
    bytes += DATA.length;
  }
  const s = (performance.now() - t0) / 1000;
  const mbps = bytes / 1e6 / s;
  process.stdout.write(`${JSON.stringify({ bench: name, mb_per_s: Number(mbps.toFixed(1)), bytes, seconds: Number(s.toFixed(3)), matches_per_pass: matches })}\n`);
  return mbps;
}

function scanner(plan) {
  return () => {
    let found = 0;
    let sc = null;
    let inObject = 0;
    for (const c of CHUNKS) {
      if (sc === null || inObject >= OBJECT_BYTES) {
        if (sc !== null) sc.end();
        sc = new ObjectScanner(plan, () => found++);
        inObject = 0;
      }
      sc.push(c);
      inObject += c.length;
    }
    sc?.end();
    return found;
  };
}

const all = run('dlp_all_detectors', scanner(planOf([...builtinPacks().keys()])));
run('dlp_default_packs', scanner(planOf([...DLP_DEFAULT_PACKS])));
const trivial = new RE2('QQQ-never-occurs-QQQ', 'g');
const floor = run('re2_trivial', () => {
  let found = 0;
  for (const c of CHUNKS) {
    trivial.lastIndex = 0;
    if (trivial.test(c)) found++;
  }
  return found;
});
process.stdout.write(`${JSON.stringify({ bench: 'ratio', dlp_all_over_re2_trivial: Number((all / floor).toFixed(3)) })}\n`);
