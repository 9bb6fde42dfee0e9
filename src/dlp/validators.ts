/**
 * DLP validators (docs/dlp.md): what a pattern candidate must also satisfy to count as a match — checksums,
 * brand tables, structural decoding. A validator sees the candidate's bytes (ASCII: every built-in pattern matches
 * ASCII only) and answers true or false; it never throws and never puts the value into a message, so nothing here
 * can carry a secret into a log, stat or exception.
 *
 * Each validator also says how the value is normalised before hashing (so "4111 1111…" and "4111-1111…" hash
 * alike) and how it is masked for the log.
 */

export const VALIDATORS = ['none', 'luhn_card', 'us_ssn', 'iban', 'aws_access_key_id', 'aws_secret_key', 'private_key', 'jwt', 'gcp_api_key'] as const;
export type ValidatorName = (typeof VALIDATORS)[number];

export const MASKS = ['last4', 'first4', 'redact'] as const;
export type MaskName = (typeof MASKS)[number];

/** Longest masked form written to the log (schema: ≤ 64 characters). */
export const MASK_MAX_CHARS = 32;

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** Digits of `s` only (separators dropped). */
export function digitsOf(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) if (isDigit(s.charCodeAt(i))) out += s[i];
  return out;
}

/** Luhn (ISO/IEC 7812-1 Annex B) over a string of digits. */
export function luhnValid(digits: string): boolean {
  if (digits.length < 2) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    const c = digits.charCodeAt(i);
    if (!isDigit(c)) return false;
    let d = c - 0x30;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/**
 * Card brands: IIN prefix ranges and allowed lengths (ISO/IEC 7812 and the networks' published tables).
 * A number is a card only when one row accepts both its prefix and its length.
 */
interface CardBrand {
  readonly name: string;
  /** Inclusive ranges over the first `digits` digits. */
  readonly ranges: readonly (readonly [number, number, number])[];
  readonly lengths: readonly number[];
}
export const CARD_BRANDS: readonly CardBrand[] = [
  { name: 'visa', ranges: [[1, 4, 4]], lengths: [13, 16, 19] },
  { name: 'mastercard', ranges: [[2, 51, 55], [4, 2221, 2720]], lengths: [16] },
  { name: 'amex', ranges: [[2, 34, 34], [2, 37, 37]], lengths: [15] },
  { name: 'discover', ranges: [[4, 6011, 6011], [3, 644, 649], [2, 65, 65], [6, 622126, 622925]], lengths: [16, 19] },
  { name: 'jcb', ranges: [[4, 3528, 3589]], lengths: [16, 17, 18, 19] },
  { name: 'diners', ranges: [[3, 300, 305], [2, 36, 36], [2, 38, 39]], lengths: [14, 16, 19] },
  { name: 'unionpay', ranges: [[2, 62, 62]], lengths: [16, 17, 18, 19] },
  { name: 'maestro', ranges: [[4, 5018, 5018], [4, 5020, 5020], [4, 5038, 5038], [4, 6304, 6304], [4, 6759, 6759], [4, 6761, 6763]], lengths: [12, 13, 14, 15, 16, 17, 18, 19] },
];

/** The brand whose prefix and length table accepts `digits`, or null. */
export function cardBrand(digits: string): string | null {
  for (const b of CARD_BRANDS) {
    if (!b.lengths.includes(digits.length)) continue;
    for (const [n, lo, hi] of b.ranges) {
      if (digits.length < n) continue;
      const p = Number(digits.slice(0, n));
      if (p >= lo && p <= hi) return b.name;
    }
  }
  return null;
}

/** Separators of a card number must be all spaces or all dashes (or none): "4111 1111-1111 1111" is not written. */
function consistentSeparators(s: string): boolean {
  let sep = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isDigit(c)) continue;
    if (sep === -1) sep = c;
    else if (c !== sep) return false;
  }
  return true;
}

export function validCard(s: string): boolean {
  if (!consistentSeparators(s)) return false;
  const d = digitsOf(s);
  return d.length >= 12 && d.length <= 19 && cardBrand(d) !== null && luhnValid(d);
}

/**
 * US SSN under the SSA's randomisation rules (since 25 June 2011): area 001–899 except 666, group 01–99, serial
 * 0001–9999. Separators, when present, must be the same on both sides (123-45-6789, 123 45 6789).
 */
export function validSsn(s: string): boolean {
  const d = digitsOf(s);
  if (d.length !== 9) return false;
  if (s.length === 11 && s[3] !== s[6]) return false;
  const area = Number(d.slice(0, 3));
  const group = Number(d.slice(3, 5));
  const serial = Number(d.slice(5));
  if (area === 0 || area === 666 || area >= 900) return false;
  if (group === 0 || serial === 0) return false;
  // Numbers the SSA has published as advertising examples and never issues.
  if (d === '078051120' || d === '219099999') return false;
  return true;
}

/** IBAN lengths per country (ISO 13616 registry, SWIFT release). */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28, CH: 21, CR: 22, CY: 28, CZ: 24,
  DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FK: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27,
  GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20,
  LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20, MR: 27, MT: 31, MU: 30, NI: 28, NL: 18, NO: 15, OM: 23, PK: 24, PL: 28,
  PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, RU: 33, SA: 24, SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25, SV: 28,
  TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20, YE: 30,
};

/** IBAN without separators, upper case. */
export function compactIban(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x20 || c === 0x2d) continue;
    out += s[i]!.toUpperCase();
  }
  return out;
}

/** ISO 7064 MOD 97-10 over the IBAN rearranged (country and check digits moved to the end, letters as 10–35). */
export function ibanMod97(iban: string): number {
  const r = iban.slice(4) + iban.slice(0, 4);
  let rem = 0;
  for (let i = 0; i < r.length; i++) {
    const c = r.charCodeAt(i);
    if (isDigit(c)) rem = (rem * 10 + (c - 0x30)) % 97;
    else if (c >= 0x41 && c <= 0x5a) rem = (rem * 100 + (c - 0x41 + 10)) % 97;
    else return -1;
  }
  return rem;
}

export function validIban(s: string): boolean {
  const iban = compactIban(s);
  const len = IBAN_LENGTHS[iban.slice(0, 2)];
  if (len === undefined || iban.length !== len) return false;
  const check = iban.slice(2, 4);
  if (check === '00' || check === '01' || check === '99') return false;
  return ibanMod97(iban) === 1;
}

/** AWS access key ids: a four-letter kind prefix and 16 characters of base32 (A–Z, 2–7). */
export const AWS_KEY_ID_PREFIXES: readonly string[] = ['AKIA', 'ASIA', 'AIDA', 'AROA', 'AIPA', 'ANPA', 'ANVA', 'AGPA', 'ABIA', 'ACCA', 'A3T'];
export function validAwsKeyId(s: string): boolean {
  if (s.length !== 20) return false;
  if (!AWS_KEY_ID_PREFIXES.some((p) => s.startsWith(p))) return false;
  for (let i = 4; i < 20; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x41 && c <= 0x5a) || (c >= 0x32 && c <= 0x37))) return false;
  }
  return !s.endsWith('EXAMPLE'); // AWS's documentation key AKIAIOSFODNN7EXAMPLE
}

/**
 * AWS secret access keys: 40 characters of base64 (A–Z a–z 0–9 / +). Random keys mix classes: require upper,
 * lower and a digit, which drops hex digests, words and runs of one character. The pattern alone is weak: the
 * detector's keywords (a key id, "aws_secret_access_key") carry the likelihood.
 */
export function validAwsSecret(s: string): boolean {
  if (s.length !== 40) return false;
  let upper = false;
  let lower = false;
  let digit = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) upper = true;
    else if (c >= 0x61 && c <= 0x7a) lower = true;
    else if (isDigit(c)) digit = true;
    else if (c !== 0x2b && c !== 0x2f) return false;
  }
  return upper && lower && digit && !s.includes('EXAMPLEKEY'); // wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
}

/**
 * Private keys: a PEM/OpenSSH/PGP armour line or a PuTTY header followed by key material. The candidate is the
 * header plus the first line(s) of body; the body must be at least 40 characters of base64 (a header quoted in
 * documentation has none).
 */
export function validPrivateKey(s: string): boolean {
  if (s.startsWith('PuTTY-User-Key-File-')) return s.includes('Encryption: ') || s.includes('Public-Lines: ');
  const end = s.indexOf('-----', 11);
  if (end < 0) return false;
  let run = 0;
  let best = 0;
  for (let i = end + 5; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const b64 = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || isDigit(c) || c === 0x2b || c === 0x2f || c === 0x3d;
    if (b64) run++;
    else if (c !== 0x0a && c !== 0x0d) run = 0;
    if (run > best) best = run;
  }
  return best >= 40;
}

function base64UrlDecode(seg: string): Buffer | null {
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    const ok = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || isDigit(c) || c === 0x2d || c === 0x5f;
    if (!ok) return null;
  }
  if (seg.length % 4 === 1) return null;
  return Buffer.from(seg, 'base64url');
}

/**
 * JSON Web Tokens (RFC 7519 §7.2): three base64url segments; the first decodes to a JSON object with a string
 * `alg` (RFC 7515 §4.1.1), the second to a JSON object. Signature present unless alg is "none".
 */
export function validJwt(s: string): boolean {
  const parts = s.split('.');
  if (parts.length !== 3) return false;
  const [h, p, sig] = parts as [string, string, string];
  const hb = base64UrlDecode(h);
  const pb = base64UrlDecode(p);
  if (hb === null || pb === null || base64UrlDecode(sig) === null) return false;
  try {
    const header: unknown = JSON.parse(hb.toString('utf8'));
    const payload: unknown = JSON.parse(pb.toString('utf8'));
    if (header === null || typeof header !== 'object' || Array.isArray(header)) return false;
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return false;
    const alg = (header as { alg?: unknown }).alg;
    if (typeof alg !== 'string') return false;
    return alg === 'none' || sig.length >= 16;
  } catch {
    return false;
  }
}

/** Google API keys: "AIza" and 35 characters of [0-9A-Za-z_-]. */
export function validGcpApiKey(s: string): boolean {
  if (s.length !== 39 || !s.startsWith('AIza')) return false;
  for (let i = 4; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || isDigit(c) || c === 0x2d || c === 0x5f;
    if (!ok) return false;
  }
  return true;
}

/** The validator by name. */
export function validate(name: ValidatorName, s: string): boolean {
  switch (name) {
    case 'none':
      return true;
    case 'luhn_card':
      return validCard(s);
    case 'us_ssn':
      return validSsn(s);
    case 'iban':
      return validIban(s);
    case 'aws_access_key_id':
      return validAwsKeyId(s);
    case 'aws_secret_key':
      return validAwsSecret(s);
    case 'private_key':
      return validPrivateKey(s);
    case 'jwt':
      return validJwt(s);
    case 'gcp_api_key':
      return validGcpApiKey(s);
  }
}

/** The form that is hashed: separators dropped for numbers, upper case for IBANs, the match itself otherwise. */
export function normalize(name: ValidatorName, s: string): string {
  switch (name) {
    case 'luhn_card':
    case 'us_ssn':
      return digitsOf(s);
    case 'iban':
      return compactIban(s);
    default:
      return s;
  }
}

/**
 * Masked form for the log: at most four characters of the normalised value, the rest as `*` (capped at
 * MASK_MAX_CHARS so the length of a long secret is not written either).
 */
export function mask(kind: MaskName, normalized: string): string {
  const n = Math.min(normalized.length, MASK_MAX_CHARS);
  if (kind === 'redact' || normalized.length < 8) return '*'.repeat(Math.max(4, Math.min(n, 16)));
  if (kind === 'last4') return '*'.repeat(n - 4) + normalized.slice(-4);
  return normalized.slice(0, 4) + '*'.repeat(n - 4);
}
