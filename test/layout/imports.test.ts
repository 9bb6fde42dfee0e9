/**
 * The layout shows the design (docs/architecture.md §3.3): the import graph of src/ has the edges the design
 * allows and none of the forbidden ones. Imports are read with the TypeScript compiler's own pre-processor
 * (ts.preProcessFile: import, import type, export … from, dynamic import()), not with a pattern over the text.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Every .ts file under src, as a path relative to src with forward slashes. */
function sources(dir = SRC): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(relative(SRC, p).split('\\').join('/'));
  }
  return out;
}

interface Edge {
  from: string;
  to: string;
}

/** Imports of src files by src files: `to` is the imported module's path relative to src, `.js` read as `.ts`. */
function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of sources()) {
    const info = ts.preProcessFile(readFileSync(join(SRC, file), 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const target = relative(SRC, resolve(SRC, dirname(file), ref.fileName)).split('\\').join('/').replace(/\.js$/, '.ts');
      if (!target.startsWith('..')) out.push({ from: file, to: target });
    }
  }
  return out;
}

/** Top folder of a src path ('policy/compile.ts' → 'policy'; 'chain.ts' → 'chain.ts'). */
const area = (p: string): string => p.split('/')[0] as string;
const STAGES = ['firewall', 'av', 'dlp', 'content'];

/** The forbidden edges, each with the reason the design gives. */
const RULES: { name: string; forbidden: (e: Edge) => boolean }[] = [
  {
    name: 'policy does not import the firewall (the firewall depends on policy, not the reverse)',
    forbidden: (e) => area(e.from) === 'policy' && area(e.to) === 'firewall',
  },
  {
    name: "policy imports of a content stage reach only that stage's own policy section (its schema)",
    forbidden: (e) => area(e.from) === 'policy' && STAGES.includes(area(e.to)) && area(e.to) !== 'firewall' && !/(^|\/|-)policy\.ts$/.test(e.to),
  },
  {
    name: 'match (ranges, domain sets, rule index) is a leaf: it imports nothing else of src',
    forbidden: (e) => area(e.from) === 'match' && area(e.to) !== 'match',
  },
  {
    name: 'pipeline holds the contracts and imports no stage, no policy, no chain, no data plane',
    forbidden: (e) => area(e.from) === 'pipeline' && [...STAGES, 'policy', 'chain.ts', 'dataplane'].includes(area(e.to)),
  },
  {
    name: 'stream is pure: it imports nothing outside src/stream',
    forbidden: (e) => area(e.from) === 'stream' && area(e.to) !== 'stream',
  },
];

t.test('the import graph of src has none of the forbidden edges', async (t) => {
  const all = edges();
  t.ok(all.length > 100, `the graph was read (${all.length} edges)`);
  t.ok(all.some((e) => e.from === 'policy/compile.ts' && area(e.to) === 'match'), 'policy/compile imports the matching structures from match');
  t.ok(all.some((e) => e.from === 'firewall/stage.ts' && e.to === 'policy/compile.ts'), 'the firewall imports the compiled policy');
  for (const rule of RULES) {
    const bad = all.filter(rule.forbidden).map((e) => `${e.from} -> ${e.to}`);
    t.same(bad, [], rule.name);
  }
});

t.test('the rules catch a forbidden edge (the checker is not vacuous)', async (t) => {
  const probe = (from: string, to: string): string[] => RULES.filter((r) => r.forbidden({ from, to })).map((r) => r.name);
  t.equal(probe('policy/compile.ts', 'firewall/rule-index.ts').length, 1, 'policy -> firewall');
  t.equal(probe('match/rule-index.ts', 'policy/values.ts').length, 1, 'match -> policy');
  t.equal(probe('pipeline/content.ts', 'av/stage.ts').length, 1, 'pipeline -> a stage');
  t.equal(probe('policy/schema.ts', 'av/policy.ts').length, 0, "policy -> a stage's policy section is allowed");
  t.equal(probe('policy/load.ts', 'dlp/stage.ts').length, 1, "policy -> a stage's implementation");
});
