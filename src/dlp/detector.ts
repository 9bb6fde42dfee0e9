/**
 * DLP detectors (docs/dlp.md): the one schema shared by the built-in packs (rules/dlp/*.yaml) and the policy's
 * custom detectors, and their compiled form. Every pattern is compiled by RE2 (linear time, no backtracking):
 * JavaScript RegExp never runs over traffic.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import RE2 from 're2';
import { parse } from 'yaml';
import { z } from 'zod';
import { MASKS, VALIDATORS, normalize, type MaskName, type ValidatorName } from './validators.js';

/** Likelihood levels, Google Sensitive Data Protection's scale; compared by index. */
export const LIKELIHOODS = ['VERY_UNLIKELY', 'UNLIKELY', 'POSSIBLE', 'LIKELY', 'VERY_LIKELY'] as const;
export type Likelihood = (typeof LIKELIHOODS)[number];
export const likelihoodLevel = (l: Likelihood): number => LIKELIHOODS.indexOf(l);

/** Longest match a detector may declare (max_span), bytes: bounds the overlap kept between chunks. */
export const DLP_MAX_SPAN_BYTES = 1024;
/** Widest keyword proximity window, bytes before and after a match: bounds the lookahead a match may wait for. */
export const DLP_MAX_WINDOW_BYTES = 1024;
/** Keywords per detector, terms per keyword-list detector, characters per keyword or term. */
export const DLP_MAX_KEYWORDS = 64;
export const DLP_MAX_TERMS = 1024;
export const DLP_MAX_WORD_CHARS = 128;
/** Detectors in one policy's custom list. */
export const DLP_MAX_CUSTOM_DETECTORS = 64;
/** Longest pattern text, characters. */
export const DLP_MAX_PATTERN_CHARS = 4096;

export const BOUNDARIES = ['none', 'digit', 'alnum', 'base64'] as const;
export type Boundary = (typeof BOUNDARIES)[number];

const word = z.string().min(1).max(DLP_MAX_WORD_CHARS);

export const DetectorSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,63}$/)
      .meta({ description: 'Detector name (lower case, digits, _): shown in logs as `detector` and as the verdict rule.' }),
    description: z.string().max(512).optional().meta({ description: 'What it finds, in words.' }),
    pattern: z
      .string()
      .min(1)
      .max(DLP_MAX_PATTERN_CHARS)
      .optional()
      .meta({ description: 'RE2 syntax (no lookaround, no backreferences); the candidate is the whole match. Give pattern or terms.' }),
    terms: z
      .array(word)
      .min(1)
      .max(DLP_MAX_TERMS)
      .optional()
      .meta({ description: 'Keyword list: literal words or phrases (case-insensitive) matched instead of a pattern. Give pattern or terms.' }),
    prefilter: z
      .string()
      .min(1)
      .max(DLP_MAX_PATTERN_CHARS)
      .optional()
      .meta({
        description:
          'RE2 pattern that every match contains, short and narrow (a literal prefix, a few characters): all prefilters run as one RE2 set, and the pattern runs only where they hit. Without one the detector scans every byte on its own. Default none.',
      }),
    max_span: z
      .number()
      .int()
      .min(1)
      .max(DLP_MAX_SPAN_BYTES)
      .meta({ description: `Longest match in bytes (1–${DLP_MAX_SPAN_BYTES}); longer candidates are ignored. Sizes the overlap kept between chunks.` }),
    validator: z.enum(VALIDATORS).default('none').meta({ description: 'Check every candidate must pass (checksum, structure): docs/dlp.md. Default none.' }),
    boundary: z
      .enum(BOUNDARIES)
      .default('none')
      .meta({ description: 'Characters that may not touch the match on either side: digit, alnum (letters, digits, _), base64 (alnum, +, /, -). Default none.' }),
    keywords: z
      .array(word)
      .max(DLP_MAX_KEYWORDS)
      .default([])
      .meta({ description: 'Context words (case-insensitive, starting a word) that raise the likelihood when found within `window` bytes before or after a match. Default none.' }),
    window: z
      .number()
      .int()
      .min(0)
      .max(DLP_MAX_WINDOW_BYTES)
      .default(64)
      .meta({ description: `Keyword proximity, bytes on each side of the match (0–${DLP_MAX_WINDOW_BYTES}). Default 64.` }),
    likelihood: z.enum(LIKELIHOODS).default('POSSIBLE').meta({ description: 'Likelihood of a validated match without keywords. Default POSSIBLE.' }),
    keyword_likelihood: z.enum(LIKELIHOODS).default('VERY_LIKELY').meta({ description: 'Likelihood when a keyword is within the window. Default VERY_LIKELY.' }),
    min_count: z.number().int().min(1).max(1000).default(1).meta({ description: 'Matches in one object before the detector reports. Default 1.' }),
    mask: z.enum(MASKS).default('redact').meta({ description: 'How a match is shown in the log: last4, first4 or redact (only *). Default redact.' }),
    exclude: z
      .array(z.string().min(1).max(256))
      .max(256)
      .default([])
      .meta({ description: 'Values never reported (normalised form, e.g. documented test card numbers). Default none.' }),
  })
  .meta({ description: 'A DLP detector: docs/dlp.md.' });
export type DetectorSpec = z.output<typeof DetectorSchema>;

export const PackSchema = z.strictObject({
  pack: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/),
  description: z.string().max(512),
  detectors: z.array(DetectorSchema).min(1).max(64),
});

/**
 * Keywords as one case-insensitive RE2. A keyword that starts with a letter or digit must start a word ("card"
 * matches "card" and "cardholder", not "discard"); its end is free, so "AKIA" matches the start of a key id.
 */
export function keywordSource(keywords: readonly string[]): string {
  return `(?i:${keywords.map((k) => (/^[A-Za-z0-9]/.test(k) ? `\\b${re2Escape(k)}` : re2Escape(k))).join('|')})`;
}

/** RE2 text matching `w` literally. */
export function re2Escape(w: string): string {
  let out = '';
  for (const ch of w) out += '\\^$.|?*+()[]{}-/'.includes(ch) ? `\\${ch}` : ch;
  return out;
}

/** The RE2 source of a detector: its pattern, or its terms as one case-insensitive alternation. */
export function detectorSource(spec: Pick<DetectorSpec, 'pattern' | 'terms'>): string {
  if (spec.pattern !== undefined) return spec.pattern;
  return `(?i:${(spec.terms ?? []).map(re2Escape).join('|')})`;
}

/** Compiles RE2 source; returns the error text (RE2's own words, about the pattern, never traffic) or the regex. */
export function compileRe2(source: string, flags = 'g'): RE2 | string {
  try {
    return new RE2(source, flags);
  } catch (e) {
    return e instanceof Error ? e.message : 'does not compile';
  }
}

/** A detector ready to scan. */
export interface CompiledDetector {
  readonly name: string;
  readonly source: string;
  readonly regex: RE2;
  /** Source of the prefilter that joins the shared RE2 set, or null: the detector scans on its own. */
  readonly prefilter: string | null;
  /** Keywords as one case-insensitive RE2, or null. */
  readonly keywordRegex: RE2 | null;
  readonly maxSpan: number;
  readonly window: number;
  readonly validator: ValidatorName;
  readonly boundary: Boundary;
  readonly mask: MaskName;
  readonly baseLevel: number;
  readonly keywordLevel: number;
  readonly exclude: ReadonlySet<string>;
}

/** Problems of a detector spec that zod cannot see, as [field, message]. */
export function detectorProblems(spec: DetectorSpec): [string, string][] {
  const out: [string, string][] = [];
  if ((spec.pattern === undefined) === (spec.terms === undefined)) out.push(['pattern', 'give exactly one of pattern and terms']);
  else {
    const r = compileRe2(detectorSource(spec));
    if (typeof r === 'string') out.push([spec.pattern !== undefined ? 'pattern' : 'terms', `RE2 cannot compile it: ${r}`]);
  }
  if (spec.prefilter !== undefined) {
    const r = compileRe2(spec.prefilter);
    if (typeof r === 'string') out.push(['prefilter', `RE2 cannot compile it: ${r}`]);
  }
  if (spec.keywords.length > 0) {
    const r = compileRe2(keywordSource(spec.keywords));
    if (typeof r === 'string') out.push(['keywords', `RE2 cannot compile them: ${r}`]);
  }
  return out;
}

export class DlpDetectorError extends Error {
  readonly code = 'DLP_DETECTOR';
}

export function compileDetector(spec: DetectorSpec): CompiledDetector {
  const problems = detectorProblems(spec);
  if (problems.length > 0) throw new DlpDetectorError(`detector ${spec.name}: ${problems.map(([f, m]) => `${f}: ${m}`).join('; ')}`);
  const source = detectorSource(spec);
  return {
    name: spec.name,
    source,
    regex: new RE2(source, 'g'),
    // A keyword list is its own prefilter (literals keep the set small).
    prefilter: spec.prefilter ?? (spec.terms !== undefined ? source : null),
    keywordRegex: spec.keywords.length > 0 ? new RE2(keywordSource(spec.keywords), 'g') : null,
    maxSpan: spec.max_span,
    window: spec.keywords.length > 0 ? spec.window : 0,
    validator: spec.validator,
    boundary: spec.boundary,
    mask: spec.mask,
    baseLevel: likelihoodLevel(spec.likelihood),
    keywordLevel: Math.max(likelihoodLevel(spec.likelihood), likelihoodLevel(spec.keyword_likelihood)),
    exclude: new Set(spec.exclude.map((v) => normalize(spec.validator, v))),
  };
}

// ---- built-in packs -------------------------------------------------------------------------------------------

/** rules/dlp, beside src/ and dist/ alike. */
export const PACK_DIR = fileURLToPath(new URL('../../rules/dlp/', import.meta.url));

export interface Pack {
  readonly name: string;
  readonly description: string;
  readonly detectors: readonly DetectorSpec[];
}

let packCache: ReadonlyMap<string, Pack> | null = null;

/**
 * The built-in packs, read once per process from rules/dlp/*.yaml. A broken pack file is a packaging fault
 * (thrown): the shipped files are checked by test/dlp/packs.test.ts.
 */
export function builtinPacks(dir = PACK_DIR): ReadonlyMap<string, Pack> {
  if (dir === PACK_DIR && packCache !== null) return packCache;
  const packs = new Map<string, Pack>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml')).sort()) {
    const parsed = PackSchema.safeParse(parse(readFileSync(`${dir}/${f}`, 'utf8')));
    if (!parsed.success) throw new DlpDetectorError(`${dir}/${f}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    packs.set(parsed.data.pack, { name: parsed.data.pack, description: parsed.data.description, detectors: parsed.data.detectors });
  }
  if (dir === PACK_DIR) packCache = packs;
  return packs;
}
