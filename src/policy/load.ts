/**
 * Policy files → a validated, include-resolved policy as plain data (LoadedPolicy), or every problem found.
 *
 *   read file ─> YAML (with node ranges) ─> zod strict schema ─> includes (recursively, relative to the including
 *   file, cycles refused) ─> references and names checked across files ─> LoadedPolicy
 *
 * Every problem is a PolicyIssue with file:line:column and the path inside that file, and loading goes on after
 * a problem so one run reports all of them. LoadedPolicy is structured-clonable (no functions, no YAML nodes): the
 * main thread validates a file once and posts the result to every worker, which compiles its own matchers
 * (compile.ts). `sources` keeps the exact text of every file read, so a worker never re-reads a file that may have
 * changed in between.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, relative, resolve as resolvePath } from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { parseEndpointId } from '../geneve/codec.js';
import { POLICY_ISSUE, suggest, type PathSegment, type PolicyIssue, type PolicyIssueCode, type SourcePos } from './errors.js';
import {
  MAX_RULES_PER_SCOPE,
  PolicySchema,
  policyJsonSchemas,
  RuleSetSchema,
  type ActionName,
  type PolicySettings,
  type RuleOutput,
  type RuleSetOutput,
} from './schema.js';
import { setRef } from './values.js';
import type { AntivirusScopeSection, AntivirusSection } from '../av/policy.js';
import { checkDlpSection, type DlpScopeSection, type DlpSection } from '../dlp/policy.js';
import type { TestingSection } from '../content/test-policy.js';

/** Largest policy or rule-set file read: 8 MiB. */
export const MAX_POLICY_FILE_BYTES = 8 * 1024 * 1024;
/** Deepest chain of includes. */
export const MAX_INCLUDE_DEPTH = 16;
/** Rule entries one policy may expand to across all scopes (after includes, counting every use of an include). */
export const MAX_RULES_TOTAL = 200_000;

export type SetKind = 'addresses' | 'ports' | 'domains';
export const SET_KINDS: readonly SetKind[] = ['addresses', 'ports', 'domains'];
const SET_KIND_NAME: Record<SetKind, string> = { addresses: 'address set', ports: 'port set', domains: 'domain set' };

/** Where a thing was written: the file, its position, its path inside that file, and the include chain. */
export interface Origin extends SourcePos {
  path: PathSegment[];
  includedFrom: SourcePos[];
}

/** A match spec as written: one item, a list, or { match, except } (see schema.ts). */
export type SpecValue = string | number | (string | number)[] | { match?: (string | number)[] | undefined; except?: (string | number)[] | undefined };

export interface LoadedSet {
  name: string;
  spec: SpecValue;
  origin: Origin;
}

export interface LoadedRule {
  rule: RuleOutput;
  origin: Origin;
}

export interface LoadedScope {
  name: string;
  /** Endpoint ids, lower-case vpce-… text. */
  endpoints: string[];
  defaultAction: ActionName;
  /** As written (undefined = the documented default). */
  defaultLog: RuleOutput['log'];
  rules: LoadedRule[];
  origin: Origin;
  /** The scope's content-stage overrides as written (null: inherit the top-level section). */
  antivirus: AntivirusScopeSection | null;
  dlp: DlpScopeSection | null;
}

export interface LoadedPolicy {
  /** The policy file as given. */
  root: string;
  /** Every file read, by display path → its text. */
  sources: Record<string, string>;
  settings: PolicySettings;
  sets: Record<SetKind, Record<string, LoadedSet>>;
  /** scopes[0] is the default scope (top-level default_action and rules). */
  scopes: LoadedScope[];
  /** Content stages' sections as parsed (null when absent: the stage is off). */
  antivirus: AntivirusSection | null;
  dlp: DlpSection | null;
  testing: TestingSection | null;
}

export type LoadResult =
  | { ok: true; policy: LoadedPolicy; issues: PolicyIssue[]; files: string[] }
  | { ok: false; issues: PolicyIssue[]; files: string[] };

/** How files are read: the real file system, or a bundle of texts (workers; tests). */
export type ReadFile = (path: string) => { text: string } | { error: string };

export function fsReader(): ReadFile {
  return (path) => {
    try {
      const st = statSync(path);
      if (!st.isFile()) return { error: 'not a regular file' };
      if (st.size > MAX_POLICY_FILE_BYTES) return { error: `larger than ${MAX_POLICY_FILE_BYTES} bytes` };
      return { text: readFileSync(path, 'utf8') };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { error: 'no such file' };
      if (code === 'EACCES') return { error: 'permission denied' };
      return { error: (err as Error).message };
    }
  };
}

export function bundleReader(sources: Record<string, string>): ReadFile {
  return (path) => {
    const text = sources[path];
    return text === undefined ? { error: 'not in the policy bundle' } : { text };
  };
}

export interface LoadOptions {
  /**
   * Directory tree every file must lie in (--policy-root); default: the policy file's own directory. Checked on the
   * path as written (`..` escapes) and, when `realpaths`, again after resolving symbolic links.
   */
  root?: string;
  /** Resolve symbolic links (realpath) before the root check, and read the resolved path (default: true). */
  realpaths?: boolean;
  /**
   * The `testing` section (stages for tests): 'error' (default: refused, the appliance was not started with
   * --enable-test-stages), 'warning' (validate), 'allow'.
   */
  testing?: 'error' | 'warning' | 'allow';
}

/** Loads and validates a policy file and everything it includes. */
export function loadPolicy(path: string, read: ReadFile = fsReader(), opts: LoadOptions = {}): LoadResult {
  return new Loader(read, opts, path).load(path);
}

/** Re-validates a LoadedPolicy's own sources (what a worker does with the bundle the main thread posted). */
export function loadPolicyFromSources(root: string, sources: Record<string, string>): LoadResult {
  // The bundle holds only files a confined load read: nothing else can be named.
  return loadPolicy(root, bundleReader(sources), { root: '/', realpaths: false, testing: 'allow' });
}

/** Is `path` (absolute) inside directory `dir` (absolute) or `dir` itself? */
function within(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

// ---------------------------------------------------------------------------------------------------------------

interface ParsedFile {
  display: string;
  text: string;
  doc: Document.Parsed;
  lines: LineCounter;
  includedFrom: SourcePos[];
  /** Schema output; undefined when the file failed validation (its issues are already reported). */
  data: z.output<typeof PolicySchema> | RuleSetOutput | undefined;
}

const DEFAULT_MESSAGE = /^(Invalid|Too (big|small)|Unrecognized)/;

/** Every key a schema object accepts (the content stages' sections too), for "did you mean" hints. */
let knownKeys: string[] | undefined;
function allKnownKeys(): string[] {
  if (knownKeys !== undefined) return knownKeys;
  const keys = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const o = node as Record<string, unknown>;
    if (typeof o.properties === 'object' && o.properties !== null) for (const k of Object.keys(o.properties)) keys.add(k);
    for (const v of Object.values(o)) walk(v);
  };
  const { policy, rules } = policyJsonSchemas();
  walk(policy);
  walk(rules);
  keys.delete('$schema');
  knownKeys = [...keys];
  return knownKeys;
}

class Loader {
  private readonly read: ReadFile;
  private readonly testing: 'error' | 'warning' | 'allow';
  private readonly issues: PolicyIssue[] = [];
  private readonly sources: Record<string, string> = {};
  /** Every path this load tried to read, found or not (what a watcher must watch). */
  private readonly attempted: string[] = [];
  /** By absolute path: each file parsed once. */
  private readonly files = new Map<string, ParsedFile | null>();
  /** Absolute paths whose sets were merged already. */
  private readonly setsMerged = new Set<string>();
  private readonly sets: Record<SetKind, Record<string, LoadedSet>> = { addresses: {}, ports: {}, domains: {} };

  /** The policy root as written (absolute) and resolved through symbolic links (null: not resolved). */
  private readonly rootDir: string;
  private readonly realRoot: string | null;
  /** Estimated rules per file (every use of an include counted), by absolute path; -1 while being counted. */
  private readonly ruleEstimates = new Map<string, number>();
  private readonly reported = new Set<string>();

  constructor(read: ReadFile, opts: LoadOptions, policyPath: string) {
    this.read = read;
    this.testing = opts.testing ?? 'error';
    this.rootDir = resolvePath(opts.root ?? dirname(normalize(policyPath)));
    let real: string | null = null;
    if (opts.realpaths !== false) {
      try {
        real = realpathSync(this.rootDir);
      } catch {
        real = this.rootDir; // a missing root: every read below fails and says so
      }
    }
    this.realRoot = real;
  }

  /**
   * Where a file may be read from: an error when it lies outside the policy root, as written or (with realpaths)
   * after resolving symbolic links; otherwise the path to hand to the reader (the resolved one: what is read is
   * what was checked, short of a link swapped between the two calls). Nothing outside the root is read, so no
   * line of it can reach a message, a log or /stats.
   */
  private confine(display: string): { read: string } | { error: string } {
    const abs = resolvePath(display);
    if (!within(this.rootDir, abs)) return { error: `it is outside the policy root ${this.rootDir} (includes must stay in the policy's directory tree; see --policy-root)` };
    if (this.realRoot === null) return { read: display };
    let real: string;
    try {
      real = realpathSync(abs);
    } catch {
      return { read: display }; // missing: the reader reports it
    }
    if (!within(this.realRoot, real)) return { error: `it resolves, through a symbolic link, to a file outside the policy root ${this.rootDir}` };
    return { read: real };
  }

  load(rootPath: string): LoadResult {
    const root = normalize(rootPath);
    const file = this.parseFile(root, [], 'policy', undefined);
    if (file === null || file.data === undefined) return { ok: false, issues: this.issues, files: this.attempted };
    const data = file.data as z.output<typeof PolicySchema>;

    this.mergeSetsOf(file, [resolvePath(root)]);
    if (!this.checkEstimates(file, data)) return { ok: false, issues: this.issues, files: this.attempted };
    const scopes: LoadedScope[] = [];
    scopes.push({
      name: 'default',
      endpoints: [],
      defaultAction: data.default_action,
      defaultLog: data.default_log,
      rules: this.expandRules(file, data.rules, ['rules'], [resolvePath(root)]),
      origin: this.origin(file, ['default_action']),
      antivirus: null,
      dlp: null,
    });
    for (const [name, scope] of Object.entries(data.scopes ?? {})) {
      scopes.push({
        name,
        endpoints: scope.endpoints.map((e) => e.toLowerCase()),
        defaultAction: scope.default_action,
        defaultLog: scope.default_log,
        rules: this.expandRules(file, scope.rules, ['scopes', name, 'rules'], [resolvePath(root)]),
        origin: this.origin(file, ['scopes', name, 'default_action']),
        antivirus: scope.antivirus ?? null,
        dlp: scope.dlp ?? null,
      });
      if (scope.dlp !== undefined) this.checkSection(file, ['scopes', name, 'dlp'], scope.dlp, checkDlpSection);
    }
    if (data.dlp !== undefined) this.checkSection(file, ['dlp'], data.dlp, checkDlpSection);
    if (data.testing !== undefined && this.testing !== 'allow') {
      this.issue(
        this.origin(file, ['testing'], true),
        [],
        POLICY_ISSUE.INVALID,
        'the testing section enables stages that exist only for tests; the appliance accepts it only with --enable-test-stages',
        this.testing === 'warning' ? 'warning' : 'error',
      );
    }
    this.checkScopes(file, scopes);
    this.checkSetReferences(scopes);
    this.lint(scopes);

    const hasError = this.issues.some((i) => i.severity === 'error');
    if (hasError) return { ok: false, issues: this.issues, files: this.attempted };
    const policy: LoadedPolicy = {
      root,
      sources: this.sources,
      settings: data.settings,
      sets: this.sets,
      scopes,
      antivirus: data.antivirus ?? null,
      dlp: data.dlp ?? null,
      testing: data.testing ?? null,
    };
    return { ok: true, policy, issues: this.issues, files: this.attempted };
  }

  // ---- files ----------------------------------------------------------------------------------------------

  private parseFile(display: string, includedFrom: SourcePos[], kind: 'policy' | 'rules', at: { file: ParsedFile; path: PathSegment[] } | undefined): ParsedFile | null {
    const abs = resolvePath(display);
    const cached = this.files.get(abs);
    if (cached !== undefined) return cached;
    // The policy file itself is what the operator named; what it includes must stay inside the root.
    const where = at === undefined ? { read: display } : this.confine(display);
    if ('error' in where) {
      if (at !== undefined) this.report(at.file, at.path, POLICY_ISSUE.INCLUDE, `cannot include ${display}: ${where.error}`);
      this.files.set(abs, null);
      return null;
    }
    this.attempted.push(display);
    const r = this.read(where.read);
    if ('error' in r) {
      if (at === undefined) {
        this.issues.push({ code: POLICY_ISSUE.READ, severity: 'error', file: display, line: 0, col: 0, path: [], message: `cannot read the policy file: ${r.error}`, includedFrom: [] });
      } else {
        this.report(at.file, at.path, POLICY_ISSUE.INCLUDE, `cannot include ${display}: ${r.error}`);
      }
      this.files.set(abs, null);
      return null;
    }
    this.sources[display] = r.text;
    const lines = new LineCounter();
    const doc = parseDocument(r.text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, strict: true });
    const file: ParsedFile = { display, text: r.text, doc, lines, includedFrom, data: undefined };
    this.files.set(abs, file);

    if (!this.checkYaml(file)) return file;
    if (doc.contents === null) {
      this.reportAt(file, 1, 1, [], POLICY_ISSUE.MISSING_KEY, kind === 'policy' ? 'the file is empty; a policy needs at least version: 1 and default_action' : 'the file is empty; a rule-set file needs at least version: 1');
      return file;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 1000 });
    } catch (err) {
      this.reportAt(file, 1, 1, [], POLICY_ISSUE.YAML, `cannot read the YAML: ${(err as Error).message}`);
      return file;
    }
    const schema = kind === 'policy' ? PolicySchema : RuleSetSchema;
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) this.zodIssue(file, value, issue as ZodIssueLike, []);
      return file;
    }
    file.data = parsed.data;
    return file;
  }

  /** YAML syntax errors, unresolved aliases and stray tags; false when the document cannot be used. */
  private checkYaml(file: ParsedFile): boolean {
    let ok = true;
    for (const e of file.doc.errors) {
      ok = false;
      const [line, col] = this.lineCol(file, e.pos[0]);
      this.reportAt(file, line, col, [], POLICY_ISSUE.YAML, yamlMessage(e.code, e.message, file.text, e.pos));
    }
    if (!ok) return false;
    const doc = file.doc;
    visit(doc, {
      Alias: (key, node, ancestors) => {
        if (node.resolve(doc) === undefined) {
          ok = false;
          const [line, col] = this.lineCol(file, node.range?.[0] ?? 0);
          const text = `*${node.source}`;
          this.reportAt(
            file,
            line,
            col,
            docPath(ancestors, key),
            POLICY_ISSUE.YAML,
            `YAML reads ${text} as an alias to an anchor "&${node.source}" that does not exist; if this is a wildcard domain, quote it: "${text}"`,
          );
        }
      },
      Scalar: (key, node, ancestors) => {
        if (node.tag !== undefined && node.tag.startsWith('!') && !node.tag.startsWith('!!')) {
          const [line, col] = this.lineCol(file, node.range?.[0] ?? 0);
          this.reportAt(
            file,
            line,
            col,
            docPath(ancestors, key),
            POLICY_ISSUE.YAML,
            `YAML reads "${node.tag}" as a tag, not a value; to exclude addresses write { match: [...], except: [${node.tag.slice(1)}] }, ` +
              'and quote any value that starts with "!"',
          );
          // Keep validating the rest of the file; the schema would only repeat this problem for this node.
          delete node.tag;
          node.value = TAG_PLACEHOLDER;
        }
      },
    });
    return ok;
  }

  // ---- sets and includes ------------------------------------------------------------------------------------

  /** Merges the sets of `file` and of the files its top-level include lists (recursively). */
  private mergeSetsOf(file: ParsedFile, stack: string[]): void {
    const abs = resolvePath(file.display);
    if (this.setsMerged.has(abs)) return;
    this.setsMerged.add(abs);
    const data = file.data;
    if (data === undefined) return;
    for (const kind of SET_KINDS) {
      for (const [name, spec] of Object.entries(data.sets?.[kind] ?? {})) {
        const origin = this.origin(file, ['sets', kind, name], true);
        const prev = this.sets[kind][name];
        if (prev !== undefined) {
          this.report(file, ['sets', kind, name], POLICY_ISSUE.DUPLICATE, `${SET_KIND_NAME[kind]} "${name}" is already defined at ${prev.origin.file}:${prev.origin.line}:${prev.origin.col}; set names are shared by the policy and all its includes`, true);
          continue;
        }
        this.sets[kind][name] = { name, spec: spec as SpecValue, origin };
      }
    }
    (data.include ?? []).forEach((inc, i) => {
      const child = this.include(file, inc, ['include', i], stack);
      if (child !== null) this.mergeSetsOf(child, [...stack, resolvePath(child.display)]);
    });
  }

  /** Resolves an include written in `file` at `path`; null when it cannot be used (issue reported). */
  private include(file: ParsedFile, target: string, path: PathSegment[], stack: string[]): ParsedFile | null {
    const display = normalize(join(dirname(file.display), target));
    const abs = resolvePath(display);
    if (stack.includes(abs)) {
      const chain = [...stack.slice(stack.indexOf(abs)), abs].map((p) => this.displayOf(p)).join(' → ');
      this.report(file, path, POLICY_ISSUE.INCLUDE, `include cycle: ${chain}`);
      return null;
    }
    if (stack.length >= MAX_INCLUDE_DEPTH) {
      this.report(file, path, POLICY_ISSUE.LIMIT, `includes are nested more than ${MAX_INCLUDE_DEPTH} deep`);
      return null;
    }
    const [line, col] = this.locate(file, path);
    const from: SourcePos[] = [...file.includedFrom, { file: file.display, line, col }];
    const child = this.parseFile(display, from, 'rules', { file, path });
    if (child === null || child.data === undefined) return null;
    return child;
  }

  private displayOf(abs: string): string {
    for (const f of this.files.values()) if (f !== null && resolvePath(f.display) === abs) return f.display;
    return abs;
  }

  /**
   * The expansion limit, checked before anything is expanded: each scope's rule count is estimated by counting
   * every file's rule entries once and multiplying by how often it is included (memoized per file), so a few lines
   * that include each other many times cannot make us build millions of rules before finding out. An estimate
   * counts disabled rules too, so it is never below what expansion would produce. False when over a limit.
   */
  private checkEstimates(file: ParsedFile, data: z.output<typeof PolicySchema>): boolean {
    const stack = [resolvePath(file.display)];
    const lists: { name: string; path: PathSegment[]; rules: (RuleOutput | { include: string })[] }[] = [{ name: 'default', path: ['rules'], rules: data.rules }];
    for (const [name, scope] of Object.entries(data.scopes ?? {})) lists.push({ name, path: ['scopes', name, 'rules'], rules: scope.rules });
    let total = 0;
    let ok = true;
    for (const l of lists) {
      const n = this.estimateRules(file, l.rules, l.path, stack);
      total += n;
      if (n > MAX_RULES_PER_SCOPE) {
        ok = false;
        this.report(file, l.path, POLICY_ISSUE.LIMIT, `scope "${l.name}" would expand to an estimated ${n} rules (every include counted each time it is used); the limit is ${MAX_RULES_PER_SCOPE} rules per scope, so nothing was expanded`);
      }
    }
    if (ok && total > MAX_RULES_TOTAL) {
      ok = false;
      this.report(file, [], POLICY_ISSUE.LIMIT, `the policy would expand to an estimated ${total} rules across its ${lists.length} scopes; the limit is ${MAX_RULES_TOTAL} rules in all, so nothing was expanded`);
    }
    return ok;
  }

  /** Rule entries `list` expands to, without expanding; includes that cannot be used count 0 (reported here). */
  private estimateRules(file: ParsedFile, list: (RuleOutput | { include: string })[], path: PathSegment[], stack: string[]): number {
    let n = 0;
    list.forEach((entry, i) => {
      if (!('include' in entry) || 'action' in entry) {
        n++;
        return;
      }
      const abs = resolvePath(normalize(join(dirname(file.display), entry.include)));
      const memo = this.ruleEstimates.get(abs);
      if (memo !== undefined && memo >= 0) {
        n += memo;
        return;
      }
      const child = this.include(file, entry.include, [...path, i, 'include'], stack);
      if (child === null) return;
      this.ruleEstimates.set(abs, -1);
      const count = this.estimateRules(child, (child.data as RuleSetOutput).rules, ['rules'], [...stack, abs]);
      this.ruleEstimates.set(abs, count);
      n += count;
    });
    return n;
  }

  /** A rules list with { include } entries replaced by the included files' rules, in place. */
  private expandRules(file: ParsedFile, list: (RuleOutput | { include: string })[], path: PathSegment[], stack: string[]): LoadedRule[] {
    const out: LoadedRule[] = [];
    list.forEach((entry, i) => {
      if ('include' in entry && !('action' in entry)) {
        const child = this.include(file, entry.include, [...path, i, 'include'], stack);
        if (child === null) return;
        const childStack = [...stack, resolvePath(child.display)];
        this.mergeSetsOf(child, childStack);
        const data = child.data as RuleSetOutput;
        for (const r of this.expandRules(child, data.rules, ['rules'], childStack)) out.push(r);
        return;
      }
      out.push({ rule: entry as RuleOutput, origin: this.origin(file, [...path, i]) });
    });
    return out;
  }

  // ---- cross-file checks ------------------------------------------------------------------------------------

  private checkScopes(file: ParsedFile, scopes: LoadedScope[]): void {
    const endpointOwner = new Map<string, string>();
    for (const scope of scopes) {
      if (scope.name === 'default' && scope.endpoints.length > 0) {
        this.report(file, ['scopes', 'default'], POLICY_ISSUE.DUPLICATE, 'the scope name "default" is reserved for the top-level rules and default_action; pick another name', true);
      }
      scope.endpoints.forEach((id, i) => {
        const path: PathSegment[] = ['scopes', scope.name, 'endpoints', i];
        if (parseEndpointId(id) === undefined) {
          this.report(file, path, POLICY_ISSUE.BAD_VALUE, `"${id}" is not a GWLB endpoint id: its 17 hex digits must fit in 64 bits, so the first one is 0`);
          return;
        }
        const owner = endpointOwner.get(id);
        if (owner !== undefined) {
          this.report(file, path, POLICY_ISSUE.DUPLICATE, owner === scope.name ? `${id} is listed twice in this scope` : `${id} is already served by scope "${owner}"; an endpoint belongs to one scope`);
        } else {
          endpointOwner.set(id, scope.name);
        }
      });
      const seen = new Map<string, LoadedRule>();
      let enabled = 0;
      for (const r of scope.rules) {
        if (r.rule.enabled) enabled++;
        const prev = seen.get(r.rule.name);
        if (prev !== undefined) {
          this.issue(r.origin, ['name'], POLICY_ISSUE.DUPLICATE, `rule name "${r.rule.name}" is already used in scope "${scope.name}" by the rule at ${prev.origin.file}:${prev.origin.line}:${prev.origin.col}; rule names identify rules in logs and must be unique per scope`);
        } else {
          seen.set(r.rule.name, r);
        }
      }
      if (enabled > MAX_RULES_PER_SCOPE) {
        this.issue(scope.origin, [], POLICY_ISSUE.LIMIT, `scope "${scope.name}" has ${enabled} rules; the limit is ${MAX_RULES_PER_SCOPE} (put long address lists in one rule's address set instead of one rule each)`);
      }
    }
  }

  private checkSetReferences(scopes: LoadedScope[]): void {
    const kindOfField: Record<string, SetKind> = { src: 'addresses', dst: 'addresses', src_ports: 'ports', dst_ports: 'ports', sni: 'domains', http_host: 'domains', domain: 'domains' };
    for (const kind of SET_KINDS) {
      for (const set of Object.values(this.sets[kind])) this.checkSpecRefs(set.spec, kind, set.origin, []);
      this.checkSetCycles(kind);
    }
    for (const scope of scopes) {
      for (const r of scope.rules) {
        for (const [field, kind] of Object.entries(kindOfField)) {
          const spec = (r.rule as Record<string, unknown>)[field] as SpecValue | undefined;
          if (spec !== undefined) this.checkSpecRefs(spec, kind, r.origin, [field]);
        }
        for (const field of ['icmp_type', 'icmp_code'] as const) {
          const spec = r.rule[field] as SpecValue | undefined;
          if (spec === undefined) continue;
          forEachItem(spec, (item, sub) => {
            if (typeof item === 'string' && setRef(item) !== undefined) {
              this.issue(r.origin, [field, ...sub], POLICY_ISSUE.UNKNOWN_SET, 'ICMP types and codes are numbers or ranges; sets are not supported here');
            }
          });
        }
      }
    }
  }

  private checkSpecRefs(spec: SpecValue, kind: SetKind, origin: Origin, base: PathSegment[]): void {
    forEachItem(spec, (item, sub) => {
      if (typeof item !== 'string') return;
      const name = setRef(item);
      if (name === undefined) return;
      if (this.sets[kind][name] !== undefined) return;
      const other = SET_KINDS.find((k) => k !== kind && this.sets[k][name] !== undefined);
      let msg: string;
      if (other !== undefined) {
        msg = `$${name} is a${other === 'addresses' ? 'n' : ''} ${SET_KIND_NAME[other]}, but this field needs a${kind === 'addresses' ? 'n' : ''} ${SET_KIND_NAME[kind]}`;
      } else {
        const hint = suggest(name, Object.keys(this.sets[kind]));
        msg = `no ${SET_KIND_NAME[kind]} named "${name}"${hint !== undefined ? ` (did you mean $${hint}?)` : ''}; define it under sets.${kind}`;
      }
      this.issue(origin, [...base, ...sub], POLICY_ISSUE.UNKNOWN_SET, msg);
    });
  }

  private checkSetCycles(kind: SetKind): void {
    const sets = this.sets[kind];
    const state = new Map<string, 1 | 2>();
    const visitSet = (name: string, chain: string[]): void => {
      const st = state.get(name);
      if (st === 2) return;
      if (st === 1) {
        const cycle = [...chain.slice(chain.indexOf(name)), name].map((n) => `$${n}`).join(' → ');
        const first = sets[chain[chain.indexOf(name)] as string] as LoadedSet;
        this.issue(first.origin, [], POLICY_ISSUE.UNKNOWN_SET, `${SET_KIND_NAME[kind]} "${name}" refers to itself: ${cycle}`);
        return;
      }
      const set = sets[name];
      if (set === undefined) return;
      state.set(name, 1);
      forEachItem(set.spec, (item) => {
        const ref = typeof item === 'string' ? setRef(item) : undefined;
        if (ref !== undefined) visitSet(ref, [...chain, name]);
      });
      state.set(name, 2);
    };
    for (const name of Object.keys(sets)) visitSet(name, []);
  }

  /** Valid but almost certainly unintended: rules after a rule that matches everything. */
  private lint(scopes: LoadedScope[]): void {
    for (const scope of scopes) {
      let catchAll: LoadedRule | undefined;
      for (const r of scope.rules) {
        if (!r.rule.enabled) continue;
        if (catchAll !== undefined) {
          this.issue(
            r.origin,
            ['name'],
            POLICY_ISSUE.LINT,
            `rule "${r.rule.name}" can never match: rule "${catchAll.rule.name}" at ${catchAll.origin.file}:${catchAll.origin.line}:${catchAll.origin.col} matches every flow first`,
            'warning',
          );
          continue;
        }
        if (isCatchAll(r.rule)) catchAll = r;
      }
    }
  }

  // ---- locations and reporting -----------------------------------------------------------------------------

  private lineCol(file: ParsedFile, offset: number): [number, number] {
    const p = file.lines.linePos(offset);
    return [p.line, p.col];
  }

  /** Node for `path` (the key node when `key`), or the deepest existing ancestor. */
  private nodeAt(file: ParsedFile, path: PathSegment[], key = false): YamlNode | undefined {
    let node: unknown = file.doc.contents;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i] as PathSegment;
      if (isAlias(node)) node = node.resolve(file.doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (pair === undefined) return node as YamlNode;
        if (key && i === path.length - 1) return pair.key as YamlNode;
        node = pair.value ?? pair.key;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (item === undefined) return node as YamlNode;
        node = item;
      } else {
        return node as YamlNode;
      }
    }
    if (isAlias(node)) return node as YamlNode;
    return node as YamlNode | undefined;
  }

  private locate(file: ParsedFile, path: PathSegment[], key = false): [number, number] {
    const node = this.nodeAt(file, path, key);
    const off = node?.range?.[0];
    if (off === undefined) return [1, 1];
    return this.lineCol(file, off);
  }

  /** A content stage's own checks of its section (what zod cannot see), reported at the offending node. */
  private checkSection<T>(file: ParsedFile, base: PathSegment[], section: T, check: (section: T, report: (path: PathSegment[], message: string) => void) => void): void {
    check(section, (sub, message) => this.issue(this.origin(file, [...base, ...sub]), [], POLICY_ISSUE.INVALID, message));
  }

  private origin(file: ParsedFile, path: PathSegment[], key = false): Origin {
    const [line, col] = this.locate(file, path, key);
    return { file: file.display, line, col, path, includedFrom: file.includedFrom };
  }

  private reportAt(file: ParsedFile, line: number, col: number, path: PathSegment[], code: PolicyIssueCode, message: string, severity: 'error' | 'warning' = 'error'): void {
    // The same problem at the same place is reported once (an include is resolved when estimating and expanding).
    const key = `${file.display}\0${line}\0${col}\0${message}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.issues.push({ code, severity, file: file.display, line, col, path, message, includedFrom: file.includedFrom });
  }

  private report(file: ParsedFile, path: PathSegment[], code: PolicyIssueCode, message: string, key = false): void {
    const [line, col] = this.locate(file, path, key);
    this.reportAt(file, line, col, path, code, message);
  }

  /** An issue at `origin` + `sub` (a path below the origin's node). */
  private issue(origin: Origin, sub: PathSegment[], code: PolicyIssueCode, message: string, severity: 'error' | 'warning' = 'error'): void {
    const file = this.files.get(resolvePath(origin.file));
    const path = [...origin.path, ...sub];
    if (file === undefined || file === null) {
      this.issues.push({ code, severity, file: origin.file, line: origin.line, col: origin.col, path, message, includedFrom: origin.includedFrom });
      return;
    }
    const [line, col] = this.locate(file, path);
    this.reportAt(file, line, col, path, code, message, severity);
  }

  // ---- zod issues → messages ---------------------------------------------------------------------------------

  private zodIssue(file: ParsedFile, root: unknown, issue: ZodIssueLike, prefix: PathSegment[]): void {
    const path = [...prefix, ...(issue.path as PathSegment[])];
    const value = valueAt(root, path);
    if (value === TAG_PLACEHOLDER) return;
    if (value === undefined && path.length > 0 && issue.code !== 'unrecognized_keys' && issue.code !== 'invalid_key' && isPlainObject(valueAt(root, path.slice(0, -1)))) {
      const key = String(path[path.length - 1]);
      const hint = DEFAULT_MESSAGE.test(issue.message) ? '' : ` (${issue.message.replace(/; got .*$/, '')})`;
      this.report(file, path.slice(0, -1), POLICY_ISSUE.MISSING_KEY, `missing required key "${key}"${hint}`);
      return;
    }
    switch (issue.code) {
      case 'invalid_union': {
        const branches = issue.errors ?? [];
        let best: ZodIssueLike[] | undefined;
        let bestScore = Infinity;
        for (const b of branches) {
          const s = unionScore(b, root, path);
          if (s < bestScore) {
            best = b;
            bestScore = s;
          }
        }
        if (best === undefined || bestScore >= TYPE_MISMATCH) {
          this.report(file, path, POLICY_ISSUE.INVALID, `${issue.message} (got ${describe(valueAt(root, path))})`);
          return;
        }
        for (const sub of best) this.zodIssue(file, root, sub, path);
        return;
      }
      case 'unrecognized_keys': {
        for (const k of issue.keys ?? []) {
          const hint = suggest(k, allKnownKeys());
          this.report(file, [...path, k], POLICY_ISSUE.UNKNOWN_KEY, `unknown key "${k}"${hint !== undefined && hint !== k ? ` (did you mean "${hint}"?)` : ''}`, true);
        }
        return;
      }
      case 'invalid_key': {
        const inner = issue.issues?.[0];
        const msg = inner !== undefined && !DEFAULT_MESSAGE.test(inner.message) ? inner.message : 'invalid name';
        this.report(file, path, POLICY_ISSUE.INVALID, `"${String(path[path.length - 1])}": ${msg}`, true);
        return;
      }
      case 'invalid_type': {
        const v = value;
        let msg = DEFAULT_MESSAGE.test(issue.message) ? `expected ${expectedName(issue.expected)}, got ${describe(v)}` : `${issue.message} (got ${describe(v)})`;
        if (v === null && issue.expected === 'array') msg += '; write [] for an empty list';
        this.report(file, path, POLICY_ISSUE.INVALID, msg);
        return;
      }
      case 'invalid_value': {
        const v = valueAt(root, path);
        const allowed = (issue.values ?? []).map((x) => String(x)).join(', ');
        const msg = DEFAULT_MESSAGE.test(issue.message) ? `must be one of: ${allowed}` : issue.message;
        const hint = typeof v === 'string' ? suggest(v, (issue.values ?? []).map(String)) : undefined;
        this.report(file, path, POLICY_ISSUE.INVALID, `${msg}; got ${describe(v)}${hint !== undefined ? ` (did you mean ${hint}?)` : ''}`);
        return;
      }
      case 'too_small':
      case 'too_big': {
        if (!DEFAULT_MESSAGE.test(issue.message)) {
          this.report(file, path, POLICY_ISSUE.INVALID, issue.message);
          return;
        }
        const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
        const what = issue.origin === 'array' ? 'entries' : issue.origin === 'string' ? 'characters' : '';
        const word = issue.code === 'too_small' ? 'at least' : 'at most';
        this.report(file, path, POLICY_ISSUE.INVALID, `must be ${word} ${String(bound)}${what === '' ? '' : ` ${what}`}; got ${describe(valueAt(root, path))}`);
        return;
      }
      case 'custom':
        this.report(file, path, POLICY_ISSUE.BAD_VALUE, issue.message);
        return;
      default:
        this.report(file, path, POLICY_ISSUE.INVALID, DEFAULT_MESSAGE.test(issue.message) ? `invalid value ${describe(valueAt(root, path))}` : issue.message);
    }
  }
}

/** The parts of a zod 4 issue this file reads. */
interface ZodIssueLike {
  code: string;
  path: PropertyKey[];
  message: string;
  errors?: ZodIssueLike[][];
  issues?: ZodIssueLike[];
  keys?: string[];
  values?: unknown[];
  expected?: string;
  minimum?: number | bigint;
  maximum?: number | bigint;
  origin?: string;
}

const TYPE_MISMATCH = 1000;

/** Which union branch the author meant: only failures at the branch's own level say "wrong branch"; deeper ones
 * are mistakes inside the right branch. */
function unionScore(issues: ZodIssueLike[], root: unknown, base: PathSegment[]): number {
  let score = 0;
  for (const i of issues) {
    const atRoot = i.path.length === 0;
    if (atRoot && i.code === 'invalid_type') score += TYPE_MISMATCH;
    else if (atRoot && i.code === 'unrecognized_keys') score += 10 * (i.keys?.length ?? 1);
    else if (atRoot && i.code === 'invalid_union') score += Math.min(...(i.errors ?? [[]]).map((b) => unionScore(b, root, base)));
    else if (!atRoot && valueAt(root, [...base, ...(i.path as PathSegment[])]) === undefined) score += 10;
    else score += 1;
  }
  return score;
}

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function valueAt(root: unknown, path: PathSegment[]): unknown {
  let v = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** A value as a YAML author thinks of it. */
function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map (key: value)';
  if (typeof v === 'string') return v.length > 60 ? `text "${v.slice(0, 57)}..."` : `"${v}"`;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return String(v);
  return typeof v;
}

function expectedName(e: string | undefined): string {
  switch (e) {
    case 'string':
      return 'text';
    case 'number':
    case 'int':
      return 'a number';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
      return 'a map (key: value)';
    default:
      return e ?? 'another value';
  }
}

function yamlMessage(code: string, message: string, text: string, pos: [number, number]): string {
  switch (code) {
    case 'MULTIPLE_DOCS':
      return 'a policy file holds one YAML document; remove the second "---" (or split the file and use include)';
    case 'DUPLICATE_KEY': {
      const rest = text.slice(pos[0]);
      const key = /^[^:\n]*/.exec(rest)?.[0].trim() ?? '';
      return `key "${key}" appears twice in the same map; the second would silently replace the first`;
    }
    case 'TAB_AS_INDENT':
      return 'YAML does not allow tabs for indentation; indent with spaces';
    case 'BAD_INDENT':
      return `YAML indentation: ${message}`;
    default:
      return `YAML syntax: ${message}`;
  }
}

/** Stands in for a value YAML read as a tag (already reported); never valid, so never compiled. */
const TAG_PLACEHOLDER = '\u0000tag';

/** Document path of a node from the ancestors `visit` hands out. */
function docPath(ancestors: readonly unknown[], key: number | 'key' | 'value' | null): PathSegment[] {
  const out: PathSegment[] = [];
  const chain = [...ancestors];
  for (let i = 0; i < chain.length; i++) {
    const a = chain[i];
    const child = chain[i + 1];
    if (isPair(a) && isScalar(a.key)) out.push(String(a.key.value));
    else if (isSeq(a)) {
      const idx = child === undefined ? (typeof key === 'number' ? key : -1) : a.items.indexOf(child as never);
      if (idx >= 0) out.push(idx);
    }
  }
  return out;
}

/** Calls fn for every item of a spec with its path below the spec's node. */
export function forEachItem(spec: SpecValue, fn: (item: string | number, path: PathSegment[]) => void): void {
  if (typeof spec === 'string' || typeof spec === 'number') fn(spec, []);
  else if (Array.isArray(spec)) spec.forEach((it, i) => fn(it, [i]));
  else {
    (spec.match ?? []).forEach((it, i) => fn(it, ['match', i]));
    (spec.except ?? []).forEach((it, i) => fn(it, ['except', i]));
  }
}

function isCatchAll(r: RuleOutput): boolean {
  const conditions: (keyof RuleOutput)[] = ['proto', 'src', 'dst', 'src_ports', 'dst_ports', 'icmp_type', 'icmp_code', 'tcp_flags', 'sni', 'http_host', 'domain'];
  for (const c of conditions) {
    const v = r[c];
    if (v === undefined || v === 'any') continue;
    if (Array.isArray(v) && v.every((x) => x === 'any')) continue;
    return false;
  }
  return true;
}
