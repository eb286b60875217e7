/**
 * purgeExpired: the retention timer (`MESH_RETENTION_SCHEDULE`, hourly by default). Runs that ended more than
 * `MESH_RETENTION_DAYS` ago are removed whole, with their durable history; each batch is audited first in the
 * `_retention` chain (domain/retention.ts).
 */
import { randomUUID } from 'node:crypto';

import { app, InvocationContext, Timer } from '@azure/functions';
import * as df from 'durable-functions';

import { DEFAULT_RETENTION_SCHEDULE, scaleConfig } from '../../adapters/config';
import { atRegistration } from '../../adapters/configCheck';
import { type Deps, deps } from '../../adapters/deps';
import { durableClient } from '../../adapters/http/request';
import { purgeExpired as purge, type RetentionSummary } from '../../domain/retention';

export async function purgeExpired(
    _timer: Timer,
    ctx: InvocationContext,
    d: Pick<Deps, 'retention' | 'audit' | 'now' | 'reclaimSlots'>,
    retentionMs = scaleConfig().retentionMs,
): Promise<RetentionSummary> {
    const client = durableClient(ctx);
    const summary = await purge(
        {
            retention: d.retention,
            audit: d.audit,
            purgeHistory: async (runId) => {
                try {
                    await client.purgeInstanceHistory(runId);
                } catch (e: unknown) {
                    // No such instance (never admitted, or purged before a crash) is what we want anyway.
                    if (!(e instanceof Error && /404|not found/i.test(e.message))) throw e;
                }
            },
            now: d.now,
        },
        { retentionMs, batchSize: 100, maxBatches: 50, correlationID: randomUUID() },
    );
    // Slots whose release a crash cut off are also reclaimed whenever admission finds capacity full; this catches
    // them on a quiet system too.
    await d.reclaimSlots();
    if (summary.runs || summary.agedRecords)
        ctx.info(
            `purgeExpired: ${summary.runs} runs, ${summary.auditRecords} audit records, ${summary.outputs} outputs ` +
                `and ${summary.agedRecords} link uses / rate windows that ended before ${summary.before}`,
        );
    return summary;
}

app.timer('purgeExpired', {
    schedule: atRegistration(() => scaleConfig().retentionSchedule, DEFAULT_RETENTION_SCHEDULE),
    extraInputs: [df.input.durableClient()],
    handler: async (timer: Timer, ctx: InvocationContext) => {
        await purgeExpired(timer, ctx, deps());
    },
});
