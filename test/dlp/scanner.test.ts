import t from 'tap';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { builtinPacks, compileDetector, likelihoodLevel, type DetectorSpec, DetectorSchema } from '../../src/dlp/detector.js';
import { DLP_DEFAULT_PACKS } from '../../src/dlp/policy.js';
import { DLP_SCAN_SLICE_BYTES, ObjectScanner, ScanPlan, type DlpMatch } from '../../src/dlp/scanner.js';

const SPECS: DetectorSpec[] = DLP_DEFAULT_PACKS.flatMap((name) => builtinPacks().get(name)!.detectors);
const DETECTORS = SPECS.map(compileDetector);
const LIKELY = likelihoodLevel('LIKELY');

function plan(threshold = LIKELY, specs = SPECS): ScanPlan {
  const dets = specs === SPECS ? DETECTORS : specs.map(compileDetector);
  return new ScanPlan(dets, dets.map(() => threshold), (v) => `hmac-sha256:${Buffer.from(v).toString('hex').padEnd(64, '0').slice(0, 64)}`);
}
const PLAN = plan();

interface Found {
  name: string;
  offset: number;
  level: number;
}
/** Scans `text` cut at `cuts` (or in one piece); returns what counts (level ≥ threshold). */
function scan(text: string | Buffer, cuts: number[] = [], p: ScanPlan = PLAN): Found[] {
  const out: Found[] = [];
  const sc = new ObjectScanner(p, (m: DlpMatch) => {
    if (m.level >= p.threshold[m.detector]!) out.push({ name: p.detectors[m.detector]!.name, offset: m.offset, level: m.level });
  });
  const b = Buffer.isBuffer(text) ? text : Buffer.from(text);
  let at = 0;
  for (const c of [...cuts, b.length]) {
    if (c <= at) continue;
    sc.push(b.subarray(at, c));
    at = c;
  }
  sc.end();
  return out.sort((a, b) => a.offset - b.offset);
}
const names = (f: Found[]): string[] => f.map((x) => x.name);
const every = (n: number, len: number): number[] => Array.from({ length: Math.ceil(len / n) }, (_, i) => i * n);

const JWT = `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"sub":"1234567890"}').toString('base64url')}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c`;
const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----\n';

/** Each detector: text that must give exactly that one finding, and near misses that must give none. */
const CASES: { name: string; hit: string[]; miss: string[] }[] = [
  {
    name: 'credit_card',
    hit: ['pay 4539148803436467 now', 'card: 4539 1488 0343 6467.', '5425-2334-3010-9903', 'amex 3742 454554 00126 ok', '"4556738291029382"'],
    miss: [
      'pay 4539148803436468 now', // Luhn-invalid
      'id 14539148803436467', // inside a longer digit run
      'id 45391488034364671', // the same, digit after
      'x 4111 1111 1111 1111 test card', // documented test number
      '1234567812345670', // Luhn-valid, no brand
      '4539 1488-0343 6467', // mixed separators
    ],
  },
  {
    name: 'us_ssn',
    hit: ['SSN: 536-22-1234', 'social security 536 22 1234'],
    miss: ['SSN: 666-22-1234', 'SSN: 536-00-1234', 'SSN 536-22-0000', 'SSN 900-12-1234', 'order 536-22-1234 shipped', 'SSN 1536-22-1234'],
  },
  {
    name: 'iban',
    hit: ['IBAN DE89370400440532013000', 'pay to DE89 3704 0044 0532 0130 00 today', 'GB82WEST12345698765432'],
    miss: ['IBAN DE88370400440532013000', 'IBAN DE8937040044053201300', 'XDE89370400440532013000'],
  },
  {
    name: 'aws_access_key_id',
    hit: ['AKIAQWERTYUIOPASDFGHJ'.slice(0, 20) + ' x', 'id=ASIAQWERTYUIOPASDFG2;'],
    miss: ['AKIAQWERTYUIOPASDFG ', 'AKIAQWERTYUIOPASDFGHJ', 'AKIAIOSFODNN7EXAMPLE', 'xAKIAQWERTYUIOPASDFGH'],
  },
  {
    name: 'private_key',
    hit: [PEM, 'PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\n'],
    miss: ['the header -----BEGIN RSA PRIVATE KEY----- starts a PEM file', '-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n'],
  },
  {
    name: 'jwt',
    hit: [`Authorization: Bearer ${JWT}\r\n`],
    miss: [`${Buffer.from('{"typ":"JWT"}').toString('base64url')}.${Buffer.from('{"sub":"1"}').toString('base64url')}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y`],
  },
  {
    name: 'gcp_api_key',
    hit: ['key=AIzaSyA1234567890abcdefghijklmnopqrstuv&x'],
    miss: ['key=AIzaSyA1234567890abcdefghijklmnopqrstu&x', 'key=AIzaSyA1234567890abcdefghijklmnopqrstuvw'],
  },
];

t.test('every detector: positives and near misses, whole and in 1-byte chunks', async (t) => {
  for (const c of CASES) {
    for (const text of c.hit) {
      t.same(names(scan(text)), [c.name], `${c.name} finds ${JSON.stringify(text.slice(0, 40))}`);
      t.same(names(scan(text, every(1, text.length))), [c.name], `${c.name}, 1-byte chunks`);
    }
    for (const text of c.miss) {
      t.same(names(scan(text)), [], `${c.name} ignores ${JSON.stringify(text.slice(0, 40))}`);
      t.same(names(scan(text, every(1, text.length))), [], `${c.name} ignores it in 1-byte chunks`);
    }
  }
});

t.test('AWS secret keys count only near a key id or keyword', async (t) => {
  const secret = 'kT8s2vQ9mZ1pR4xW7yB3nC6dF0gH5jL8aE2uI9oP';
  t.same(names(scan(`blob ${secret} end`)), [], 'alone: VERY_UNLIKELY, below the threshold');
  t.same(names(scan(`aws_secret_access_key = ${secret}\n`)), ['aws_secret_access_key'], 'keyword before');
  const pair = `{"AccessKeyId":"AKIAQWERTYUIOPASDFGH","SecretAccessKey":"${secret}"}`;
  t.same(names(scan(pair)).sort(), ['aws_access_key_id', 'aws_secret_access_key'], 'a key pair');
  // keyword after the match, arriving in a later chunk: the match waits for it (bounded by the window)
  const after = `${secret} <- that is the aws_secret_access_key`;
  const sc = new ObjectScanner(PLAN, () => {});
  sc.push(Buffer.from(after.slice(0, 41)));
  t.ok(sc.pending, 'pending while a keyword may still come within the window');
  t.same(names(scan(after, [41])), ['aws_secret_access_key'], 'keyword in the next chunk raises it');
  const far = `${secret}${' '.repeat(200)}aws_secret_access_key`;
  t.same(names(scan(far, [41])), [], 'a keyword past the window does not');
});

t.test('a keyword-only detector (AWS secret key) counts exactly when its keyword is within the window, for any chunking', async (t) => {
  // The scanner skips such a detector over stretches with no keyword (ScanPlan.keywordGated): the oracle here is
  // the rule itself, computed from positions: the whole keyword within `window` bytes before the value or after it.
  const secret = 'kT8s2vQ9mZ1pR4xW7yB3nC6dF0gH5jL8aE2uI9oP';
  const keyword = 'aws_secret_access_key';
  const window = builtinPacks().get('credentials')!.detectors.find((d) => d.name === 'aws_secret_access_key')!.window;
  const filler = fc.stringMatching(/^[a-z ,.;\n]{0,3000}$/).map((s) => ` ${s} `);
  fc.assert(
    fc.property(filler, filler, fc.boolean(), fc.integer({ min: 1, max: 400 }), fc.array(fc.integer({ min: 0, max: 8000 }), { maxLength: 30 }), (before, after, kwFirst, gap, rawCuts) => {
      const pad = ' '.repeat(gap);
      const text = kwFirst ? `${before}${keyword}${pad}${secret}${after}` : `${before}${secret}${pad}${keyword}${after}`;
      const cuts = [...new Set(rawCuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
      const found = scan(text, cuts).filter((f) => f.name === 'aws_secret_access_key');
      // Before: the keyword must start inside [s - window, s): gap + its length <= window. After: a keyword must end
      // by e + window, and the first to end is its prefix `aws_secret`, itself a keyword of the detector.
      const near = gap + (kwFirst ? keyword.length : 'aws_secret'.length) <= window;
      const s = Buffer.byteLength(kwFirst ? before + keyword + pad : before);
      return near ? found.length === 1 && found[0]!.offset === s : found.length === 0;
    }),
    { numRuns: 300 },
  );
  t.pass('property held');
});

t.test('custom keyword list (terms) and a likelihood threshold', async (t) => {
  const p = plan(LIKELY, [...SPECS, ...builtinPacks().get('markers')!.detectors]);
  t.same(names(scan('This memo is STRICTLY CONFIDENTIAL.', [], p)), ['classification_marker']);
  t.same(names(scan('This memo is strictly confidentiality.', [], p)), [], 'whole words only (alnum boundary)');
  const veryLikely = plan(likelihoodLevel('VERY_LIKELY'));
  t.same(names(scan('pay 4539148803436467 now', [], veryLikely)), [], 'LIKELY card below a VERY_LIKELY threshold');
  t.same(names(scan('visa card 4539148803436467 now', [], veryLikely)), ['credit_card'], 'a keyword raises it');
});

t.test('offsets are object offsets, also across slices of a long chunk', async (t) => {
  const pad = 'x'.repeat(DLP_SCAN_SLICE_BYTES - 7);
  const text = `${pad} 4539148803436467 tail`;
  t.same(scan(text), [{ name: 'credit_card', offset: pad.length + 1, level: LIKELY }], 'the card straddles two internal slices');
});

t.test('a secret anywhere in one large chunk is found (every byte of a slice is scanned, not only its tail)', async (t) => {
  for (const at of [0, 10, 5000, DLP_SCAN_SLICE_BYTES - 100, DLP_SCAN_SLICE_BYTES + 3000]) {
    const text = `${'y '.repeat(at >> 1)}${at % 2 === 1 ? 'y' : ''} 4539148803436467 ${'z '.repeat(20_000)}`;
    t.same(names(scan(text)), ['credit_card'], `card at ${at} of ${text.length}`);
  }
});

t.test('ordinary text, code and base64 give no findings', async (t) => {
  const corpus = [
    'The quick brown fox jumps over the lazy dog. Order #2024-11-30 shipped to 221B Baker Street; call +44 20 7946 0958.',
    'function add(a, b) { return a + b; } const ids = [1234567, 98765432, 31415926535]; // timestamps 1733145600123',
    'sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'uuid 123e4567-e89b-12d3-a456-426614174000, version 4.5.6, ip 192.168.10.254, phone 555-123-4567, zip 90210-1234',
    Buffer.from(randomBytes(3000)).toString('base64'),
    '-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n-----END CERTIFICATE-----',
  ];
  for (const text of corpus) t.same(names(scan(text)), [], JSON.stringify(text.slice(0, 50)));
});

t.test('a secret in random text, cut into random chunks, is found exactly once at its offset', async (t) => {
  const secrets = ['4539 1488 0343 6467', '4556738291029382', 'DE89 3704 0044 0532 0130 00', 'AKIAQWERTYUIOPASDFGH', JWT, PEM.slice(0, 140), 'SSN 536-22-1234'];
  const expect = ['credit_card', 'credit_card', 'iban', 'aws_access_key_id', 'jwt', 'private_key', 'us_ssn'];
  // Filler that cannot itself form or touch a match: lower-case words and punctuation.
  const filler = fc.stringMatching(/^[a-z ,.;\n]{0,400}$/).map((s) => (s.length > 0 ? ` ${s} ` : ' '));
  fc.assert(
    fc.property(fc.integer({ min: 0, max: secrets.length - 1 }), filler, filler, fc.array(fc.integer({ min: 0, max: 1000 }), { maxLength: 30 }), (i, before, after, rawCuts) => {
      const text = before + secrets[i]! + after;
      const cuts = [...new Set(rawCuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
      const found = scan(text, cuts);
      const offset = Buffer.byteLength(before) + (expect[i] === 'us_ssn' ? 4 : 0);
      return found.length === 1 && found[0]!.name === expect[i] && found[0]!.offset === offset;
    }),
    { numRuns: 400 },
  );
  t.pass('property held');
});

t.test('cost stays linear on adversarial input (digit and base64 runs, 1-byte chunks)', async (t) => {
  // Counts RE2 work indirectly: every byte may be rescanned at most keep bytes back, so a 1-byte-chunk scan of a
  // long run must not find anything and must finish (a quadratic rescan of 200 kB would not, in the test timeout).
  const digits = '7'.repeat(200_000);
  t.same(scan(digits, every(4096, digits.length)), []);
  const b64 = 'Ab3+'.repeat(50_000);
  t.same(scan(b64, every(4096, b64.length)), []);
  const small = '4'.repeat(5000);
  t.same(scan(small, every(1, small.length)), [], 'a long digit run in 1-byte chunks');
});

t.test('detector schema: defaults are the documented ones', async (t) => {
  const d = DetectorSchema.parse({ name: 'x', pattern: 'abc', max_span: 3 });
  t.same(
    { validator: d.validator, boundary: d.boundary, keywords: d.keywords, window: d.window, likelihood: d.likelihood, keyword_likelihood: d.keyword_likelihood, min_count: d.min_count, mask: d.mask },
    { validator: 'none', boundary: 'none', keywords: [], window: 64, likelihood: 'POSSIBLE', keyword_likelihood: 'VERY_LIKELY', min_count: 1, mask: 'redact' },
  );
});
