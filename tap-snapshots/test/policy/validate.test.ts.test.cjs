/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/policy/validate.test.ts > TAP > several files at once; exit 1 when any is invalid; --json > text output 1`] = `
good.yaml: valid (0 rules in 1 scope)
good.yaml: valid (0 rules in 1 scope)
bad.yaml:2:17 default_action: the action must be pass, drop, reject or alert; got "maybe"
bad.yaml: invalid (1 error)
missing.yaml (document): cannot read the policy file: no such file
missing.yaml: invalid (1 error)
Usage: gwlb-inspector validate [--json] [--policy-root DIR] FILE...

Checks policy files (and the rule-set files they include) and prints every problem as
  file:line:column path: message
Exit status: 0 all valid, 1 some file invalid, 2 usage error.
  --json               one JSON object per problem (code, severity, file, line, col, path, message)
  --policy-root DIR    includes must stay inside DIR (default: each policy file's own directory)
  --kind policy|rules  how to read every FILE (default: a rule set when its $schema hint names
                       rules.schema.json, or when it has only rule-set keys and lies in a directory named
                       rules, like rules/*.yaml; a policy otherwise)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > an empty file > an empty file 1`] = `
exit 1
policy.yaml:1:1 (document): the file is empty; a policy needs at least version: 1 and default_action
policy.yaml: invalid (1 error)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > an empty list written as nothing > an empty list written as nothing 1`] = `
exit 1
policy.yaml:3:7 rules: expected a list, got an empty value; write [] for an empty list
policy.yaml: invalid (1 error)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > bad values > bad values 1`] = `
exit 1
policy.yaml:2:17 default_action: the action must be pass, drop, reject or alert; got "permit"
policy.yaml:6:11 rules[0].src[0]: "10.0.0.300/8" is not an IP address or CIDR; write e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32
policy.yaml:6:25 rules[0].src[1]: "10.1.2.3/8" has host bits set below /8; write 10.0.0.0/8 for the network or 10.1.2.3/32 for the host
policy.yaml:6:37 rules[0].src[2]: "2001:db8::1/32" has host bits set below /32; write 2001:db8::/32 for the network or 2001:db8::1/128 for the host
policy.yaml:6:55 rules[0].src[3]: "10.0.0.0/33": the prefix length after "/" must be 0-32 for IPv4
policy.yaml:10:17 rules[1].dst_ports[0]: "90-80": the range is backwards; write "80-90"
policy.yaml:10:26 rules[1].dst_ports[1]: 70000 is not a valid port; use a whole number 0-65535
policy.yaml:10:33 rules[1].dst_ports[2]: "80:90" is not a port, a range like "1024-65535", or a $set (ranges use "-": "80-90")
policy.yaml:10:42 rules[1].dst_ports[3]: -1 is not a valid port; use a whole number 0-65535
policy.yaml:11:11 rules[2].name: a rule name uses letters, digits, "_", "-", "." and ":" (up to 100), starting with a letter or digit
policy.yaml:14:11 rules[2].sni[0]: "exa mple.com" contains spaces or non-ASCII characters; write internationalized names in their xn-- (punycode) form
policy.yaml:14:27 rules[2].sni[1]: "*foo.com": a wildcard is only allowed as the whole first label, as in "*.example.com"
policy.yaml:14:39 rules[2].sni[2]: "-bad.example" is not a domain name: label "-bad" must be 1-63 letters, digits, "-" or "_", not starting or ending with "-"
policy.yaml:14:55 rules[2].sni[3]: "bücher.example" contains spaces or non-ASCII characters; write internationalized names in their xn-- (punycode) form
policy.yaml: invalid (14 errors)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > duplicate keys > duplicate keys 1`] = `
exit 1
policy.yaml:3:1 (document): key "default_action" appears twice in the same map; the second would silently replace the first
policy.yaml: invalid (1 error)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > endpoint ids > endpoint ids 1`] = `
exit 1
policy.yaml:5:17 scopes.tenant-a.endpoints[0]: an endpoint id is "vpce-" followed by 17 hex digits, like vpce-0123456789abcdef0
policy.yaml:5:27 scopes.tenant-a.endpoints[1]: an endpoint id is "vpce-" followed by 17 hex digits, like vpce-0123456789abcdef0
policy.yaml:8:16 scopes.tenant-b.endpoints: a scope needs at least one endpoint id
policy.yaml: invalid (3 errors)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > fields that contradict each other > fields that contradict each other 1`] = `
exit 1
policy.yaml:6:16 rules[0].dst_ports: ports need proto: tcp, udp or [tcp, udp] on the same rule (other protocols have no ports)
policy.yaml:10:16 rules[1].icmp_type: icmp_type/icmp_code need proto: icmp, icmpv6 or [icmp, icmpv6] on the same rule
policy.yaml:15:16 rules[2].http_host: use one of sni, http_host or domain per rule (domain matches the SNI or the Host, whichever the client sends)
policy.yaml:19:10 rules[3].sni: sni is read from TCP streams; set proto: tcp or leave proto out
policy.yaml:23:29 rules[4].tcp_flags.set[1]: TCP flags are FIN, SYN, RST, PSH, ACK, URG, ECE, CWR (upper case); got "syn" (did you mean SYN?)
policy.yaml: invalid (5 errors)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > includes: missing files and cycles > includes: missing files and cycles 1`] = `
exit 1
policy.yaml:5:14 rules[1].include: cannot include rules/missing.yaml: no such file
rules/b.yaml:3:14 rules[0].include: include cycle: rules/a.yaml → rules/b.yaml → rules/a.yaml
    included from rules/a.yaml:6:14
    included from policy.yaml:4:14
rules/c.yaml:5:5 rules[0].frobnicate: unknown key "frobnicate"
    included from policy.yaml:6:14
policy.yaml: invalid (3 errors)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > missing keys and wrong types > missing keys and wrong types 1`] = `
exit 1
policy.yaml:1:1 (document): missing required key "default_action" (the action must be pass, drop, reject or alert)
policy.yaml:1:10 version: version must be 1; got 2
policy.yaml:3:5 rules[0]: missing required key "action" (the action must be pass, drop, reject or alert)
policy.yaml:5:5 rules[1]: missing required key "name" (a rule name is text)
policy.yaml:8:19 rules[2].src.match: expected a list, got "10.0.0.0/8"
policy.yaml:9:10 rules[2].log: log is true, false, or { max_per_s: N } (got "sometimes")
policy.yaml:10:14 rules[2].enabled: expected true or false, got "yes"
policy.yaml:11:5 rules[3]: a rules entry is a rule (name, action, ...) or { include: FILE } (got "just a string")
policy.yaml: invalid (8 errors)
policy.yaml: read as a policy; if it is a rule-set file (what policies include), check it with --kind rules
`

exports[`test/policy/validate.test.ts > TAP > validator messages > sets, references and names across files > sets, references and names across files 1`] = `
exit 1
policy.yaml:7:13 sets.addresses.loop-a: address set "loop-a" refers to itself: $loop-a → $loop-b → $loop-a
policy.yaml:15:11 rules[0].src[0]: no address set named "corpp" (did you mean $corp?); define it under sets.addresses
policy.yaml:15:19 rules[0].src[1]: $web is a port set, but this field needs an address set
policy.yaml:15:25 rules[0].src[2]: no address set named "nothing-like-it"; define it under sets.addresses
policy.yaml:16:16 rules[0].dst_ports: $corp is an address set, but this field needs a port set
policy.yaml:18:11 rules[2].name: rule name "shared-rule" is already used in scope "default" by the rule at rules/shared.yaml:6:5; rule names identify rules in logs and must be unique per scope
policy.yaml:21:3 scopes.default: the scope name "default" is reserved for the top-level rules and default_action; pick another name
policy.yaml:25:17 scopes.tenant-a.endpoints[0]: vpce-0123456789abcdef0 is already served by scope "default"; an endpoint belongs to one scope
policy.yaml:25:41 scopes.tenant-a.endpoints[1]: "vpce-1123456789abcdef0" is not a GWLB endpoint id: its 17 hex digits must fit in 64 bits, so the first one is 0
rules/shared.yaml:4:5 sets.addresses.corp: address set "corp" is already defined at policy.yaml:6:5; set names are shared by the policy and all its includes
    included from policy.yaml:3:11
policy.yaml: invalid (10 errors)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > typo in a key > typo in a key 1`] = `
exit 1
policy.yaml:7:5 rules[0].dst_port: unknown key "dst_port" (did you mean "dst_ports"?)
policy.yaml:8:5 rules[0].desciption: unknown key "desciption" (did you mean "description"?)
policy.yaml: invalid (2 errors)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > warnings do not fail validation > warnings do not fail validation 1`] = `
exit 0
policy.yaml:6:11 rules[1].name: warning: rule "unreachable" can never match: rule "everything" at policy.yaml:4:5 matches every flow first
policy.yaml: valid (2 rules in 1 scope)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > YAML pitfalls > YAML pitfalls 1`] = `
exit 1
policy.yaml:6:35 rules[0].src[1]: YAML reads "!10.9.0.0/16" as a tag, not a value; to exclude addresses write { match: [...], except: [10.9.0.0/16] }, and quote any value that starts with "!"
policy.yaml:10:10 rules[1].sni: YAML reads *.example.com as an alias to an anchor "&.example.com" that does not exist; if this is a wildcard domain, quote it: "*.example.com"
policy.yaml: invalid (2 errors)
`

exports[`test/policy/validate.test.ts > TAP > validator messages > YAML syntax > YAML syntax 1`] = `
exit 1
policy.yaml:6:4 (document): "proto" starts at column 4, which lines up with nothing above it (the blocks it could belong to start at columns 1, 3, 5): indent it like the keys it belongs with
policy.yaml: invalid (1 error)
`
