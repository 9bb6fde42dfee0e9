import t from 'tap';
import { policy } from '../fixtures/firewall.js';

t.test('exact names, wildcard subdomains, exclusions, nested sets', async (t) => {
  const p = policy(`version: 1
default_action: pass
sets:
  domains:
    base: ["*.example.com", exact.example.org]
    trimmed: { match: [$base], except: ["*.ads.example.com", blocked.example.com] }
rules:
  - name: r
    action: drop
    proto: tcp
    sni: [$trimmed, Other.Example.NET.]
`);
  const names = p.rules[0]!.names!;
  t.ok(names.has('a.example.com'));
  t.ok(names.has('a.b.c.example.com'), 'any depth');
  t.notOk(names.has('example.com'), 'not the apex');
  t.notOk(names.has('badexample.com'), 'label boundary');
  t.ok(names.has('exact.example.org'));
  t.notOk(names.has('sub.exact.example.org'), 'exact means exact');
  t.notOk(names.has('x.ads.example.com'), 'excluded subtree');
  t.ok(names.has('ads.example.com'), 'the excluded pattern is for subdomains of ads only');
  t.notOk(names.has('blocked.example.com'));
  t.ok(names.has('other.example.net'), 'patterns are normalized: lower case, no trailing dot');
  t.equal(names.why('deep.a.example.com'), '*.example.com');
  t.match(names.describe(), /other\.example\.net/);
});
