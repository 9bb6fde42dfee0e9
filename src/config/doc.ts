/**
 * docs/configuration.md is generated from SETTINGS_SCHEMA (scripts/gen-config-doc.mjs) so the documented
 * settings, defaults and environment variables cannot drift from the code; a test fails when it is stale.
 */
import { MEMORY_BUDGET_SHARE, SETTINGS_SCHEMA, allowedValues, envName, flagName, formatBytes, resolveSettings, worstCaseMemory } from './settings.js';
import { FLOW_BYTES_PER_FLOW_FIXED, flowTableBytes } from '../flow/table.js';
import { FLOW_MAX_HEADER_TEMPLATES, headerPoolBytes } from '../flow/header-pool.js';
import { SLOT_BYTES, TX_SLOTS } from '../dataplane/engine.js';

export function settingDefault(schema: unknown): unknown {
  const def = (schema as { def?: { defaultValue?: unknown } }).def?.defaultValue;
  return typeof def === 'function' ? (def as () => unknown)() : def;
}

export function configurationMarkdown(): string {
  const rows = Object.entries(SETTINGS_SCHEMA.shape).map(([name, schema]) => {
    let def = settingDefault(schema);
    if (name === 'workers') def = 'number of cores (at most 64)';
    const cell = (text: string): string => text.replace(/\|/g, '\\|');
    return `| \`--${flagName(name)}\` | \`${envName(name)}\` | ${typeof def === 'string' ? def : JSON.stringify(def)} | ${cell(allowedValues(name))} | ${cell(schema.description ?? '')} |`;
  });
  // A fixed, documented example (2 workers, every other setting at its default) so the doc does not depend
  // on the machine that generates it.
  const example = worstCaseMemory(resolveSettings({ workers: '2' }, {}, Number.MAX_SAFE_INTEGER));
  const perFlow = (flowTableBytes(1_000_000) - headerPoolBytes()) / 1_000_000;
  return [
    '# Configuration',
    '',
    '<!-- Generated from src/config/settings.ts by scripts/gen-config-doc.mjs: edit the schema, not this file. -->',
    '',
    'Every setting of `gwlb-inspector run` is a flag and an environment variable (flags win over the environment,',
    'the environment over defaults). Values are validated at start; an invalid one stops the appliance with a',
    'one-line message per bad value naming the flag or variable, the value, and the allowed range with its unit',
    '(exit code 2), e.g. `--max-flows: "1e12" is out of range; allowed: 16 to 8,000,000 flows`. Every buffer, queue,',
    'table and timer of the data plane is bounded by one of these settings or by a named constant listed below.',
    '',
    '| flag | environment | default | allowed | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
    '## Memory: what the bounds add up to',
    '',
    'Each range caps one resource; together they must also fit the machine. At start the appliance adds up the',
    `worst case of its bounds and refuses to start (exit 2, one line with each part) when that exceeds ${Math.round(MEMORY_BUDGET_SHARE * 100)} % of`,
    "the machine's memory, or of the container's limit (cgroup) when that is lower; the rest is left to the",
    'JavaScript runtime itself (V8 heaps and code: an idle appliance with 2 workers measured ~115 MB of RSS).',
    '',
    '| part | worst case | with 2 workers and the defaults |',
    '| --- | --- | --- |',
    `| flow tables | \`--max-flows\` × ~${Math.round(perFlow)} bytes (${FLOW_BYTES_PER_FLOW_FIXED} per flow + hash buckets), plus per worker a header pool of at most ${FLOW_MAX_HEADER_TEMPLATES} distinct GENEVE headers (${formatBytes(headerPoolBytes())}) | ${formatBytes(example.flowTables)} |`,
    `| held packets | \`--max-held-bytes\` × \`--workers\` | ${formatBytes(example.heldPackets)} |`,
    `| socket buffers (kernel) | \`--socket-buffer-bytes\` × 2 (UDP receive, raw send) × 2 (Linux doubles it) × \`--workers\` | ${formatBytes(example.socketBuffers)} |`,
    `| packet slots | (\`--batch-size\` + ${TX_SLOTS} tx slots) × ${SLOT_BYTES} bytes × \`--workers\` | ${formatBytes(example.packetBuffers)} |`,
    `| total | | ${formatBytes(example.total)} |`,
    '',
    `Largest values: \`--max-flows\` 8,000,000 (~${formatBytes(flowTableBytes(8_000_000))} of flow tables), \`--max-held-bytes\` 1 GiB per worker,`,
    '`--socket-buffer-bytes` 256 MiB, `--batch-size` 1024, `--workers` 64; not all of them at once on one machine.',
    '',
    '## Fixed bounds (constants)',
    '',
    '| constant | value | where |',
    '| --- | --- | --- |',
    '| receive slot | 8640 bytes per datagram (8612 payload ≥ GWLB\'s 8568) | `SLOT_BYTES`, src/dataplane/engine.ts |',
    '| tx slots (released/originated packets per flush) | 256 | `txSlots`, src/dataplane/engine.ts |',
    '| batches per socket wake-up | 64 | `MAX_BATCHES_PER_WAKE`, src/dataplane/worker-main.ts |',
    '| hold time before a stage\'s fail mode decides | the stage\'s own budget (firewall: policy `settings.names.max_wait_ms`), else 1500 ms | `DEFAULT_HOLD_BUDGET_MS`, src/dataplane/engine.ts |',
    '| worker restart backoff | 100 ms doubling to 5 s | src/dataplane/supervisor.ts |',
    `| distinct GENEVE headers kept per worker (the flow cookie is kept per flow) | ${FLOW_MAX_HEADER_TEMPLATES} of up to 260 bytes | \`FLOW_MAX_HEADER_TEMPLATES\`, src/flow/header-pool.ts |`,
    '| closed TCP flow linger | 10 s | `FLOW_IDLE_CLOSED_MS`, src/flow/table.ts |',
    '| admin HTTP: connections / keep-alive / request timeout | 256 / 5 s / 10 s | src/admin/server.ts |',
    '| `--gwlb-sources` entries | 64 | `MAX_GWLB_SOURCES`, src/dataplane/source-guard.ts |',
    '| sendmmsg retries on a full send buffer (EAGAIN/ENOBUFS) before the rest of a batch is given up | 4 | `SEND_FULL_RETRIES`, native/gwlb_net.c |',
    '| wait for a running instance to name itself (instance lock) | 1 s | `HOLDER_QUERY_TIMEOUT_MS`, src/dataplane/instance-lock.ts |',
    '',
    '## Exception policies',
    '',
    '| anomaly | setting | default | what happens |',
    '| --- | --- | --- | --- |',
    '| GENEVE header breaks RFC 8926 receive rules (version, lengths, O bit, unknown critical option) | none | drop | always dropped: GWLB could not have sent it; counted per reason (`geneve_*`) |',
    '| inner packet fails to decode (truncated IP/TCP/UDP/ICMP header, bad lengths) | `--on-malformed` | drop | counted per reason (`inner_*`); `pass` returns it untouched and counts `malformed_passed` |',
    '| hold memcap reached | `--on-memcap` | drop | `drop` blocks the flow (its held bytes are discarded: a partial stream must not leak); `pass` asks the holding stage\'s fail mode |',
    '| hold budget (packets per flow or time) exhausted | per stage fail mode | per stage | the holding stage decides; the flow verdict is recorded |',
    '| first fragment without the whole transport header (RFC 1858, RFC 3128, RFC 7112) | none | drop | the datagram is dropped, whatever `--on-malformed` says; `fragment_tiny_dropped` |',
    '| overlapping fragments (RFC 1858, RFC 5722) | none | drop | the whole datagram is dropped (an exact duplicate alone); `fragment_overlap_dropped`, `fragment_duplicate_dropped` |',
    '| fragments disagree on the datagram\'s end, or reach past 65,535 bytes | none | drop | the datagram is dropped; `fragment_bad_length_dropped` |',
    '| later fragments waiting for their first fragment | `--fragment-memcap-bytes`, `--fragment-timeout-ms`, `--fragment-max-datagrams`, `--fragment-max-per-datagram` | drop | past a bound, or when the timeout expires, the waiting fragments and their datagram are dropped; `fragment_*_dropped` |',
    '| datagram larger than the receive slot | none | drop | counted as `truncated_datagram` |',
    '| kernel receive queue full | `--socket-buffer-bytes` | — | counted from SO_RXQ_OVFL as `kernel_rx_queue_full` |',
    '| outer source is one of the appliance\'s own addresses (not our own health probe) | none | drop | before decoding; counted as `loop_guard`: returning it would send it to <own address>:6081, to ourselves, forever |',
    '| outer source outside `--gwlb-sources` | `--gwlb-sources` | accept all (warning at start) | before decoding; counted as `gwlb_source_not_allowed`; such a packet never stores a header, so nothing is ever originated toward it |',
    '| processing a packet threw (internal fault, a bug) | `--on-internal-fault` | drop | that packet alone: counted in `internal_faults` and as `fault_dropped` (drop reason `internal_fault`) or `fault_passed` (returned unchanged); logged at most once a second per worker; the rest of the batch proceeds |',
    '| the kernel refuses one datagram of a send batch (EACCES, EMSGSIZE, EHOSTUNREACH...) | none | skip it | counted as `send_errors` (and in `send_failed`); the rest of the batch is sent. A full send buffer (EAGAIN/ENOBUFS) is retried 4 times, then the rest of the batch counts as `send_failed` |',
    '',
    '## Sources and instances',
    '',
    '**Which sources to allow (`--gwlb-sources`).** GWLB sends GENEVE from its own private IP in each subnet it is',
    'attached to, in the appliance VPC. List the CIDRs of the GWLB\'s subnets: the subnet IDs are in',
    '`aws elbv2 describe-load-balancers --names NAME --query \'LoadBalancers[0].AvailabilityZones[].SubnetId\'`, their CIDRs in',
    '`aws ec2 describe-subnets --subnet-ids ... --query \'Subnets[].CidrBlock\'` (e.g. `--gwlb-sources 10.0.1.0/24,10.0.2.0/24`).',
    'The GWLB\'s exact addresses (`aws ec2 describe-network-interfaces --filters Name=description,Values="ELB gwy/NAME/*"`) as /32',
    'entries are tighter still but change if the load balancer is recreated. Packets the appliance originates (TCP RST,',
    'ICMP unreachable) go only to the source that sent the flow\'s newest packet, which this list has admitted.',
    '',
    '**Loop guard.** Datagrams whose outer source is one of the appliance\'s own IPv4 addresses (those of its network',
    'namespace at start, the `--listen` address, and always the address the datagram was sent to) are never processed',
    'as traffic: only the appliance\'s own health probe (which carries a per-process random nonce) is answered.',
    '',
    '**One instance per address and port.** At start the appliance takes a lock named after `--listen` and `--port`: a',
    'Unix socket in the abstract namespace, so it is scoped to the network namespace (containers with host networking',
    'see each other; separate namespaces do not) and the kernel releases it when the process dies, `kill -9` included.',
    'A second instance on the same address and port, or on an overlapping one (`0.0.0.0` overlaps every address),',
    'refuses to start with `start_failed` naming the holder\'s PID (`holderPid`).',
    '',
    '**Start failures.** Any failure during start (invalid policy, the lock held, a socket that cannot be opened, the admin',
    'port taken...) logs exactly one `start_failed` line (`step`, `reason`, `code`, `hint`), releases whatever was already',
    'bound (workers stopped, sockets and the lock closed) and exits non-zero: 2 for an invalid policy, 1 otherwise.',
    '',
  ].join('\n');
}
