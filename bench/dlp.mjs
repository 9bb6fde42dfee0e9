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
import { mixedCorpus } from './corpus.mjs';

const msArg = process.argv.indexOf('--ms');
const RUN_MS = msArg > 0 ? Number(process.argv[msArg + 1]) : 2000;
const MSS = 1448;
const OBJECT_BYTES = 256 * 1024;
const CORPUS_BYTES = 8 * 1024 * 1024;

const DATA = mixedCorpus(CORPUS_BYTES, { secretEvery: 64 * 1024 });
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
