// A reproducible mixed corpus for the content benches (xorshift32, fixed seed): English-like text, JSON records,
// source code, base64 blobs, hex digests with long digit runs (order ids, timestamps) and phone-like numbers.
// With `secretEvery`, one secret (a valid card, an AWS key pair or a JWT) follows every that many bytes; without
// it the corpus holds nothing the built-in DLP detectors report (bench/content.mjs checks: a finding would block
// its upload and the run would fail).

/** xorshift32 in [0, 1): reproducible inputs for the benches. */
export function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

const SECRETS = [
  'card 4539148803436467 exp 12/29\n',
  'aws_access_key_id=AKIAQWERTYUIOPASDFGH aws_secret_access_key=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\n',
  'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y\n',
];

/** `bytes` or a little more of mixed text; `secretEvery` bytes between secrets (0: none). */
export function mixedCorpus(bytes, { secretEvery = 0, seed = 20261202 } = {}) {
  const r = rng(seed);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const words = 'the of and to in is for on that with as by this from be at or are an it not we card account number order total key token secret data report'.split(' ');
  const parts = [];
  let size = 0;
  let nextSecret = secretEvery;
  // A random 15-digit run near the word "card" is a valid Amex number one time in ~50 (brand prefix and Luhn): a
  // real finding. The secret-free corpus keeps the runs but makes them 16 digits starting with 0, which no brand
  // has, so they stay DLP candidates that validation turns down.
  const lead = secretEvery > 0 ? '' : '0';
  const push = (s) => {
    parts.push(s);
    size += s.length;
  };
  while (size < bytes) {
    const k = r();
    if (k < 0.35) push(Array.from({ length: 60 }, () => pick(words)).join(' ') + '.\n');
    else if (k < 0.55) push(JSON.stringify({ id: Math.floor(r() * 1e12), ts: 1733145600000 + Math.floor(r() * 1e9), user: pick(words), amount: (r() * 1000).toFixed(2), tags: [pick(words), pick(words)] }) + '\n');
    else if (k < 0.7) push(`function f${Math.floor(r() * 1e6)}(a, b) {\n  const x = a * ${Math.floor(r() * 1e9)} + b;\n  return x.toString(16); // ${pick(words)}\n}\n`);
    else if (k < 0.85) push(Buffer.from(Array.from({ length: 600 }, () => Math.floor(r() * 256))).toString('base64') + '\n');
    else if (k < 0.93) push(Array.from({ length: 64 }, () => Math.floor(r() * 16).toString(16)).join('') + ' ' + lead + String(Math.floor(r() * 1e15)).padStart(15, '7') + '\n');
    else push(`order ${Math.floor(r() * 1e9)} ref ${Math.floor(r() * 1e6)}-${Math.floor(r() * 1e4)} phone 555-${Math.floor(r() * 900 + 100)}-${Math.floor(r() * 9000 + 1000)}\n`);
    if (secretEvery > 0 && size >= nextSecret) {
      nextSecret += secretEvery;
      push(pick(SECRETS));
    }
  }
  return Buffer.from(parts.join(''));
}
