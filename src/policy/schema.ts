/**
 * The policy language, as zod 4 strict schemas: unknown keys are errors (a typo must never silently widen or
 * narrow a rule). docs/policy.schema.json and docs/rules.schema.json are generated from these schemas
 * (scripts/gen-policy-schema.mjs) so editors autocomplete and flag mistakes while typing; docs/policy.md is the
 * reference a person reads.
 *
 * Defaults live here, with their units, and nowhere else; the generated JSON Schema shows them.
 */
import { z } from 'zod';
import { AntivirusScopeSchema, AntivirusSectionSchema } from '../av/policy.js';
import { DlpScopeSchema, DlpSectionSchema } from '../dlp/policy.js';
import { TestingSectionSchema } from '../content/test-policy.js';
import { STREAM_DEPTH_BYTES, STREAM_HOLE_WAIT_BYTES, STREAM_HOLE_WAIT_MS, STREAM_OOO_MAX_BYTES } from '../stream/options.js';
import {
  ENDPOINT_ID_PATTERN,
  NAME_PATTERN,
  PROTOCOL_NAMES,
  SET_NAME_PATTERN,
  TCP_FLAG_NAMES,
  isError,
  parseAddressItem,
  parseDomainItem,
  parseProtocol,
  parseRangeItem,
} from './values.js';

export const POLICY_VERSION = 1;

// ---- defaults, with units ---------------------------------------------------------------------------------

/** Client bytes a flow may be held for while its TLS SNI or HTTP Host is read: 8 KiB (a ClientHello with
 * post-quantum key shares is ~1.9 KiB; HTTP request heads are usually < 2 KiB). */
export const NAMES_MAX_BYTES_DEFAULT = 8 * 1024;
export const NAMES_MAX_BYTES_LIMIT = 64 * 1024;
/** Milliseconds from the first held client byte until the name must be known: 1 s. */
export const NAMES_MAX_WAIT_MS_DEFAULT = 1000;
/** Flows per worker that may wait for a name at the same time (bounds the per-flow byte buffers:
 * 4096 × 8 KiB = 32 MiB worst case per worker). */
export const NAMES_MAX_PENDING_FLOWS_DEFAULT = 4096;
/** Logs per second per rule unless the rule says otherwise. */
export const LOG_MAX_PER_S_DEFAULT = 100;
/** Rules per scope (after includes): keeps compile time and matcher memory bounded (docs/policy.md). */
export const MAX_RULES_PER_SCOPE = 50_000;

export const ACTIONS = ['pass', 'drop', 'reject', 'alert'] as const;
export type ActionName = (typeof ACTIONS)[number];

/** Exception policies (after Suricata) for TCP packets that do not fit the tracked state. */
export const INVALID_POLICIES = ['pass_packet', 'drop_packet', 'drop_flow', 'reject_flow'] as const;
export const MIDSTREAM_POLICIES = ['drop_packet', 'drop_flow', 'reject_flow'] as const;
export const UNREADABLE_ACTIONS = ['pass', 'drop', 'reject', 'alert', 'next_rule'] as const;

// ---- scalar items -----------------------------------------------------------------------------------------

function refined<T extends z.ZodType>(schema: T, check: (v: z.output<T>) => string | undefined): T {
  return schema.superRefine((v, ctx) => {
    const msg = check(v);
    if (msg !== undefined) ctx.addIssue({ code: 'custom', message: msg });
  }) as unknown as T;
}

const setRefPattern = `\\$${SET_NAME_PATTERN}`;

const AddressItem = refined(z.string({ error: 'an address item is text: a CIDR like 10.0.0.0/8, an address, $set or any' }), (v) => {
  const p = parseAddressItem(v);
  return isError(p) ? p.error : undefined;
}).meta({
  id: 'AddressItem',
  description: 'An IPv4/IPv6 address or CIDR (10.0.0.0/8, 2001:db8::/32), a named address set ($corp-nets), or any.',
  pattern: `^(any|${setRefPattern}|[0-9A-Fa-f:.]+(/[0-9]{1,3})?)$`,
  examples: ['10.0.0.0/8', '192.0.2.10', '2001:db8::/32', '$corp-nets'],
});

function rangeItem(id: string, what: string, max: number, description: string): z.ZodType<string | number> {
  return refined(z.union([z.number(), z.string()], { error: `a ${what} is a number, a "lo-hi" range in quotes, or a $set` }), (v) => {
    const p = parseRangeItem(v, what, max);
    return isError(p) ? p.error : undefined;
  }).meta({ id, description }) as z.ZodType<string | number>;
}

const PortItem = rangeItem('PortItem', 'port', 65535, 'A port (443), a range ("1024-65535"), a named port set ($web), or any.');
const IcmpItem = rangeItem('IcmpItem', 'ICMP type or code', 255, 'An ICMP type or code number (8), a range ("0-8"), or any.');

const DomainItem = refined(z.string({ error: 'a domain is text, like example.com or "*.example.com"' }), (v) => {
  const p = parseDomainItem(v);
  return isError(p) ? p.error : undefined;
}).meta({
  id: 'DomainItem',
  description:
    'example.com matches that name only; "*.example.com" (quoted: YAML reads a leading * as an alias) matches every name ' +
    'below example.com but not example.com itself. Case-insensitive. Or a named domain set ($allowed-sites).',
  pattern: `^(${setRefPattern}|(\\*\\.)?[A-Za-z0-9_.-]+)$`,
  examples: ['example.com', '*.example.com', '$allowed-sites'],
});

const ProtocolItem = refined(z.union([z.string(), z.number()], { error: `a protocol is ${PROTOCOL_NAMES.join(', ')}, any, or a number 0-255` }), (v) => {
  const p = parseProtocol(v);
  return isError(p) ? p.error : undefined;
}).meta({
  id: 'ProtocolItem',
  description: `${PROTOCOL_NAMES.join(', ')}, any, or an IP protocol number 0-255.`,
  anyOf: [{ type: 'string', enum: [...PROTOCOL_NAMES, 'any'] }, { type: 'integer', minimum: 0, maximum: 255 }],
});

/**
 * A list of items with optional exclusions. Four spellings: one item; a list; { match, except } (match defaults
 * to any). "Any" of the field is also written by leaving the field out.
 */
function matchSpec<T extends z.ZodType>(item: T, id: string, what: string, description: string) {
  return z
    .union(
      [
        item,
        z.array(item).min(1, { error: `an empty list matches nothing; remove the key to match any ${what}` }),
        z.strictObject({
          match: z
            .array(item)
            .min(1, { error: `an empty list matches nothing; leave match out to mean any ${what}` })
            .optional()
            .meta({ description: `What to match (default: any ${what}).` }),
          except: z.array(item).min(1).optional().meta({ description: 'What to take out of match.' }),
        }),
      ],
      { error: `expected a ${what}, a list of them, or { match: [...], except: [...] }` },
    )
    .meta({ id, description });
}

export const AddressSpec = matchSpec(AddressItem, 'AddressSpec', 'address', 'Addresses: one item, a list, or { match, except }.');
export const PortSpec = matchSpec(PortItem, 'PortSpec', 'port', 'Ports: one item, a list, or { match, except }.');
export const IcmpSpec = matchSpec(IcmpItem, 'IcmpSpec', 'ICMP type or code', 'ICMP types or codes: one item, a list, or { match, except }.');
export const DomainSpec = matchSpec(DomainItem, 'DomainSpec', 'domain', 'Domain names: one item, a list, or { match, except }.');
export const ProtocolSpec = z
  .union([ProtocolItem, z.array(ProtocolItem).min(1, { error: 'an empty list matches nothing; remove proto to match any protocol' })], {
    error: `expected a protocol (${PROTOCOL_NAMES.join(', ')}, any, 0-255) or a list of them`,
  })
  .meta({ id: 'ProtocolSpec', description: 'IP protocol: one item or a list.' });

const ActionSchema = z.enum(ACTIONS, { error: 'the action must be pass, drop, reject or alert' }).meta({
  description: 'pass; drop (silently); reject (drop + TCP RST to both ends, or ICMP unreachable); alert (pass and log).',
});

const LogSpec = z
  .union(
    [
      z.boolean(),
      z.strictObject({
        max_per_s: z
          .number({ error: 'max_per_s is a number of logs per second' })
          .positive({ error: 'max_per_s must be above 0; write log: false to turn logging off' })
          .max(1_000_000)
          .meta({ description: `Log at most this many decisions per second for this rule (default ${LOG_MAX_PER_S_DEFAULT}).` }),
      }),
    ],
    { error: 'log is true, false, or { max_per_s: N }' },
  )
  .meta({
    id: 'LogSpec',
    description: 'Whether decisions of this rule are logged. Default: true for drop, reject and alert; false for pass.',
  });

const TcpFlagName = z.enum(TCP_FLAG_NAMES as [string, ...string[]], { error: `TCP flags are ${TCP_FLAG_NAMES.join(', ')} (upper case)` });

const TcpFlagsSpec = z
  .strictObject({
    set: z.array(TcpFlagName).min(1).optional().meta({ description: 'Flags that must all be set.' }),
    not_set: z.array(TcpFlagName).min(1).optional().meta({ description: 'Flags that must all be clear.' }),
  })
  .meta({
    id: 'TcpFlagsSpec',
    description: "Flags of the flow's first TCP packet seen, e.g. { set: [SYN], not_set: [ACK] } for a connection opening.",
  });

export const DIRECTIONS = ['from_initiator', 'to_initiator', 'either'] as const;

const RuleName = z
  .string({ error: 'a rule name is text' })
  .regex(new RegExp(NAME_PATTERN), { error: 'a rule name uses letters, digits, "_", "-", "." and ":" (up to 100), starting with a letter or digit' });

export const RuleSchema = z
  .strictObject({
    name: RuleName.meta({ description: 'Shown in logs and by `gwlb-inspector explain`; unique within its scope.' }),
    description: z.string().optional(),
    enabled: z.boolean().default(true).meta({ description: 'false keeps the rule in the file but out of the policy.' }),
    action: ActionSchema,
    proto: ProtocolSpec.optional(),
    src: AddressSpec.optional().meta({ description: 'Addresses of the side that opened the flow (see direction).' }),
    dst: AddressSpec.optional().meta({ description: 'Addresses of the side the flow was opened to.' }),
    src_ports: PortSpec.optional().meta({ description: 'Source ports (proto must be tcp and/or udp).' }),
    dst_ports: PortSpec.optional().meta({ description: 'Destination ports (proto must be tcp and/or udp).' }),
    icmp_type: IcmpSpec.optional().meta({ description: 'ICMP/ICMPv6 type numbers (proto must be icmp and/or icmpv6).' }),
    icmp_code: IcmpSpec.optional().meta({ description: 'ICMP/ICMPv6 code numbers (proto must be icmp and/or icmpv6).' }),
    tcp_flags: TcpFlagsSpec.optional(),
    direction: z
      .enum(DIRECTIONS, { error: 'direction is from_initiator, to_initiator or either' })
      .default('from_initiator')
      .meta({
        description:
          'from_initiator: src/src_ports describe the side that opened the flow (the usual reading). to_initiator: src describes ' +
          'the side that answered. either: the rule matches in both readings (segmentation between two address sets).',
      }),
    sni: DomainSpec.optional().meta({ description: 'TLS ClientHello server name (SNI). Holds the flow until the ClientHello is read.' }),
    http_host: DomainSpec.optional().meta({ description: 'HTTP/1.x Host header. Holds the flow until the request head is read.' }),
    domain: DomainSpec.optional().meta({ description: 'The TLS SNI or the HTTP Host, whichever the client sends.' }),
    log: LogSpec.optional(),
  })
  .superRefine((r, ctx) => {
    const protos = r.proto === undefined ? undefined : (Array.isArray(r.proto) ? r.proto : [r.proto]).map((p) => parseProtocol(p));
    const only = (allowed: number[]): boolean =>
      protos !== undefined && protos.every((p) => typeof p === 'number' && allowed.includes(p));
    if ((r.src_ports !== undefined || r.dst_ports !== undefined) && !only([6, 17])) {
      const key = r.src_ports !== undefined ? 'src_ports' : 'dst_ports';
      ctx.addIssue({ code: 'custom', path: [key], message: 'ports need proto: tcp, udp or [tcp, udp] on the same rule (other protocols have no ports)' });
    }
    if ((r.icmp_type !== undefined || r.icmp_code !== undefined) && !only([1, 58])) {
      const key = r.icmp_type !== undefined ? 'icmp_type' : 'icmp_code';
      ctx.addIssue({ code: 'custom', path: [key], message: 'icmp_type/icmp_code need proto: icmp, icmpv6 or [icmp, icmpv6] on the same rule' });
    }
    if (r.tcp_flags !== undefined && !only([6])) {
      ctx.addIssue({ code: 'custom', path: ['tcp_flags'], message: 'tcp_flags needs proto: tcp on the same rule' });
    }
    const names = (['sni', 'http_host', 'domain'] as const).filter((k) => r[k] !== undefined);
    if (names.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [names[1] as string],
        message: `use one of sni, http_host or domain per rule (domain matches the SNI or the Host, whichever the client sends)`,
      });
    }
    if (names.length > 0 && protos !== undefined && !only([6])) {
      ctx.addIssue({ code: 'custom', path: [names[0] as string], message: `${names[0]} is read from TCP streams; set proto: tcp or leave proto out` });
    }
    if (r.tcp_flags !== undefined) {
      const both = (r.tcp_flags.set ?? []).filter((f) => (r.tcp_flags?.not_set ?? []).includes(f));
      if (both.length > 0) ctx.addIssue({ code: 'custom', path: ['tcp_flags'], message: `${both.join(', ')} cannot be both set and not_set` });
    }
  })
  .meta({ id: 'Rule', description: 'One rule. Rules are evaluated in order; the first that matches decides the flow.' });
export type RuleInput = z.input<typeof RuleSchema>;
export type RuleOutput = z.output<typeof RuleSchema>;

export const IncludeRulesSchema = z
  .strictObject({
    include: z.string({ error: 'include is a file path' }).min(1).meta({
      description: 'A rule-set file (see rules/), resolved relative to this file. Its rules are inserted here, in order.',
    }),
  })
  .meta({ id: 'IncludeRules' });

export const RuleListSchema = z
  .array(z.union([IncludeRulesSchema, RuleSchema], { error: 'a rules entry is a rule (name, action, ...) or { include: FILE }' }))
  .meta({ id: 'RuleList', description: 'Rules in evaluation order; { include: FILE } inserts the rules of a rule-set file at that point.' });

const SetNameKey = z.string().regex(new RegExp(`^${SET_NAME_PATTERN}$`), {
  error: 'a set name uses letters, digits, "_", "-" and "." (up to 64), starting with a letter or digit',
});

export const SetsSchema = z
  .strictObject({
    addresses: z.record(SetNameKey, AddressSpec).optional().meta({ description: 'Named address sets, used as $name.' }),
    ports: z.record(SetNameKey, PortSpec).optional().meta({ description: 'Named port sets, used as $name.' }),
    domains: z.record(SetNameKey, DomainSpec).optional().meta({ description: 'Named domain sets, used as $name.' }),
  })
  .meta({ id: 'Sets', description: 'Named, reusable objects. Names are global across the policy and everything it includes.' });

const IncludeList = z
  .array(z.string().min(1))
  .meta({ description: 'Rule-set files whose sets this file uses, relative to this file. Their rules are not inserted (use { include } in a rules list).' });

const DefaultLog = LogSpec.meta({ description: 'Whether default-action decisions are logged. Default: true unless the default action is pass.' });

export const ScopeSchema = z
  .strictObject({
    description: z.string().optional(),
    endpoints: z
      .array(
        z
          .string({ error: 'an endpoint id is text like vpce-0123456789abcdef0' })
          .regex(new RegExp(ENDPOINT_ID_PATTERN), { error: 'an endpoint id is "vpce-" followed by 17 hex digits, like vpce-0123456789abcdef0' }),
      )
      .min(1, { error: 'a scope needs at least one endpoint id' })
      .meta({ description: 'GWLB endpoint ids (vpce-...) whose traffic this scope decides.' }),
    default_action: ActionSchema.meta({ description: 'Action when no rule of this scope matches.' }),
    default_log: DefaultLog.optional(),
    rules: RuleListSchema.default([]),
    antivirus: AntivirusScopeSchema.optional().meta({ description: "This scope's antivirus settings: each field overrides the top-level antivirus section." }),
    dlp: DlpScopeSchema.optional().meta({ description: "This scope's DLP settings: each field overrides the top-level dlp section." }),
  })
  .meta({ id: 'Scope' });

const ExceptionMeta = (text: string) => ({ description: text });

export const SettingsSchema = z
  .strictObject({
    tcp: z
      .strictObject({
        midstream_pickup: z.boolean().default(true).meta({
          description:
            'Accept TCP flows first seen mid-connection (GWLB moves flows to a new appliance after a failover) and decide them by the rules. ' +
            'Default true.',
        }),
        on_midstream: z.enum(MIDSTREAM_POLICIES).default('drop_packet').meta(ExceptionMeta('When midstream_pickup is false: what to do with a TCP packet of a flow whose SYN was not seen. Default drop_packet.')),
        on_invalid: z.enum(INVALID_POLICIES).default('drop_packet').meta(ExceptionMeta('What to do with a TCP packet invalid for the tracked state (data before the handshake, SYN+FIN, no flags...). Default drop_packet.')),
      })
      .prefault({}),
    names: z
      .strictObject({
        max_bytes: z.number().int().min(256).max(NAMES_MAX_BYTES_LIMIT).default(NAMES_MAX_BYTES_DEFAULT).meta({
          description: `Client bytes held while the SNI/Host is read, and the window of the per-flow in-order reader, bytes (default ${NAMES_MAX_BYTES_DEFAULT}).`,
        }),
        max_wait_ms: z.number().int().min(1).max(60_000).default(NAMES_MAX_WAIT_MS_DEFAULT).meta({
          description: `Time from the first held client byte until the name must be known, milliseconds (default ${NAMES_MAX_WAIT_MS_DEFAULT}).`,
        }),
        max_pending_flows: z.number().int().min(1).max(1_000_000).default(NAMES_MAX_PENDING_FLOWS_DEFAULT).meta({
          description:
            `Name-read slots per worker (default ${NAMES_MAX_PENDING_FLOWS_DEFAULT}): a TCP flow takes one when its client sends its first byte on a port a name rule covers ` +
            '(not on the SYN), and an HTTP connection passed by the names keeps it to check every later request. Beyond it on_memcap applies.',
        }),
        on_unreadable: z.enum(UNREADABLE_ACTIONS).default('drop').meta({
          description:
            'When a rule needs a name and none can be read (not TLS/HTTP, no SNI, budget exhausted, server spoke first): the flow gets this action, ' +
            'or next_rule to treat the name rule as not matching. Default drop.',
        }),
        on_memcap: z.enum(ACTIONS).default('drop').meta({ description: 'When max_pending_flows is reached. Default drop.' }),
        on_unknown: z.enum(ACTIONS).default('drop').meta({
          description:
            'When a rule needs a name on a TCP flow picked up mid-stream (no SYN seen, so the stream start and the name are unknown): ' +
            'the packet gets this action; pass and alert establish the flow, drop and reject cache nothing. Default drop.',
        }),
        on_anomaly: z.enum(MIDSTREAM_POLICIES).default('drop_flow').meta(ExceptionMeta(
          'When the client bytes a name is read from are ambiguous (data before ISN+1, an overlap whose bytes differ, a SYN or SYN-ACK that ' +
          'disagrees with the SYN seen): drop_packet, drop_flow or reject_flow. Default drop_flow.',
        )),
      })
      .prefault({}),
    stream: z
      .strictObject({
        depth_bytes: z.number().int().min(1024).max(1 << 30).default(STREAM_DEPTH_BYTES).meta({
          description: `Bytes of each direction of a TCP flow the content stages inspect (default ${STREAM_DEPTH_BYTES}, 16 MiB); bytes past it pass uninspected and an object cut there ends as truncated (the stage's fail mode decides).`,
        }),
        ooo_max_bytes: z.number().int().min(0).max(64 << 20).default(STREAM_OOO_MAX_BYTES).meta({
          description: `Out-of-order bytes buffered per direction (default ${STREAM_OOO_MAX_BYTES}); a segment that does not fit is dropped (the sender retransmits it).`,
        }),
        hole_wait_ms: z.number().int().min(100).max(120_000).default(STREAM_HOLE_WAIT_MS).meta({
          description: `How long bytes may wait behind a hole in the stream, ms (default ${STREAM_HOLE_WAIT_MS}); then on_hole_timeout applies.`,
        }),
        hole_wait_bytes: z.number().int().min(1024).max(64 << 20).default(STREAM_HOLE_WAIT_BYTES).meta({
          description: `How many bytes may wait behind a hole (default ${STREAM_HOLE_WAIT_BYTES}); then on_hole_timeout applies.`,
        }),
        head_wait_ms: z.number().int().min(10).max(60_000).default(1000).meta({
          description:
            'How long the packets of an incomplete HTTP head may wait for its end, ms (default 1000); then its bytes are inspected as an opaque stream and released per the stages (a protocol that only looks like HTTP, a stalled client).',
        }),
        on_overlap_different: z.enum(['drop_packet', 'pass']).default('drop_packet').meta({
          description:
            'A retransmission or overlap whose bytes differ from the bytes inspected first (first bytes win either way): drop_packet (the receiver can only get the inspected bytes) or pass. Default drop_packet.',
        }),
        on_hole_timeout: z.enum(['reject_flow', 'drop_flow', 'skip']).default('reject_flow').meta({
          description:
            'A hole that outlived hole_wait_ms/hole_wait_bytes: reject_flow or drop_flow end the flow; skip goes on after the hole, and the content stages see the object cut there (its bytes after the hole pass uninspected). Default reject_flow.',
        }),
        on_fragment: z.enum(['drop', 'pass']).default('drop').meta({
          description: 'An IP-fragmented TCP segment of an inspected flow (its bytes cannot be placed in the stream): drop (default; TCP resends) or pass uninspected.',
        }),
        on_memcap: z.enum(['drop', 'pass']).default('drop').meta({
          description: 'The hold memcap (--max-held-bytes) or the inspected-flow limit (--content-max-flows) refused a packet: drop (default) or pass it uninspected.',
        }),
      })
      .prefault({})
      .meta({ description: 'TCP stream reassembly for the content stages (antivirus, DLP, testing): bounds and exception policies. docs/architecture.md §3.2.' }),
    log: z
      .strictObject({
        max_per_s: z.number().positive().max(1_000_000).default(LOG_MAX_PER_S_DEFAULT).meta({
          description: `Default per-rule log rate, logs per second (default ${LOG_MAX_PER_S_DEFAULT}).`,
        }),
      })
      .prefault({}),
  })
  .meta({ id: 'Settings' });
export type PolicySettings = z.output<typeof SettingsSchema>;

export const PolicySchema = z
  .strictObject({
    $schema: z.string().optional().meta({ description: 'For editors; ignored.' }),
    version: z.literal(POLICY_VERSION, { error: `version must be ${POLICY_VERSION}` }).meta({ description: 'Policy language version.' }),
    description: z.string().optional(),
    include: IncludeList.optional(),
    settings: SettingsSchema.prefault({}),
    sets: SetsSchema.optional(),
    default_action: ActionSchema.meta({
      description: 'Action of the default scope when no rule matches. The default scope serves every endpoint not listed in scopes.',
    }),
    default_log: DefaultLog.optional(),
    rules: RuleListSchema.default([]).meta({ description: 'Rules of the default scope, in order.' }),
    scopes: z
      .record(
        z.string().regex(new RegExp(NAME_PATTERN), { error: 'a scope name uses letters, digits, "_", "-", "." and ":"' }),
        ScopeSchema,
      )
      .optional()
      .meta({ description: 'Per-endpoint scopes: one fleet, many VPCs. A packet is decided by the scope listing its GWLB endpoint id.' }),
    antivirus: AntivirusSectionSchema.optional().meta({ description: 'Antivirus stage (ClamAV): docs/antivirus.md.' }),
    dlp: DlpSectionSchema.optional().meta({ description: 'DLP stage: docs/dlp.md.' }),
    testing: TestingSectionSchema.optional().meta({ description: 'Stages for tests only; refused unless the appliance runs with --enable-test-stages.' }),
  })
  .meta({
    title: 'gwlb-inspector policy',
    description: 'Firewall policy of gwlb-inspector. Reference: docs/policy.md.',
  });
export type PolicyInput = z.input<typeof PolicySchema>;
export type PolicyOutput = z.output<typeof PolicySchema>;

export const RuleSetSchema = z
  .strictObject({
    $schema: z.string().optional(),
    version: z.literal(POLICY_VERSION, { error: `version must be ${POLICY_VERSION}` }),
    description: z.string().optional(),
    include: IncludeList.optional(),
    sets: SetsSchema.optional(),
    rules: RuleListSchema.default([]),
  })
  .meta({
    title: 'gwlb-inspector rule set',
    description: 'A shared rule-set file (rules/*.yaml), included by policies. Reference: docs/policy.md.',
  });
export type RuleSetOutput = z.output<typeof RuleSetSchema>;

/** JSON Schemas for editors (draft 2020-12), generated from the schemas above. */
export function policyJsonSchemas(): { policy: unknown; rules: unknown } {
  return {
    policy: z.toJSONSchema(PolicySchema, { io: 'input', unrepresentable: 'any' }),
    rules: z.toJSONSchema(RuleSetSchema, { io: 'input', unrepresentable: 'any' }),
  };
}

/** The exact text of a committed schema file (stable formatting, trailing newline). */
export function schemaFileText(schema: unknown): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}
