/**
 * The `testing` section of a policy: content stages that exist only to prove the chain contract in tests
 * (docs/architecture.md §3.2). The appliance refuses a policy with this section unless it runs with
 * --enable-test-stages, so a production policy cannot switch them on by mistake.
 */
import { z } from 'zod';

export const TEST_MATCH_MAX_BYTES = 256;
export const TEST_MATCH_MAX_DELAY_MS = 60_000;

export const TestingSectionSchema = z.strictObject({
  content_match: z
    .strictObject({
      bytes: z.string().min(1).max(TEST_MATCH_MAX_BYTES).meta({ description: 'Block a flow whose decoded stream (either direction) contains these bytes (UTF-8).' }),
      action: z.enum(['drop', 'reject', 'alert']).default('reject'),
      mode: z
        .enum(['match', 'object_end'])
        .default('match')
        .meta({ description: 'match: decide as soon as the bytes are seen (like DLP). object_end: clear all but the tail of each object and answer after verdict_delay_ms (like ClamAV).' }),
      verdict_delay_ms: z.number().int().min(0).max(TEST_MATCH_MAX_DELAY_MS).default(0),
      hold_budget_ms: z.number().int().min(1).max(600_000).default(5000),
      hold_budget_bytes: z.number().int().min(1).max(1 << 30).default(4 * 1024 * 1024),
      fail: z.enum(['open', 'closed']).default('closed').meta({ description: 'When a hold budget runs out: open passes, closed drops the flow.' }),
    })
    .optional(),
});
export type TestingSection = z.output<typeof TestingSectionSchema>;
