/**
 * Retention on Cosmos DB: finding ended runs past their period, and removing everything of theirs.
 *
 * Without a cross-container transaction a purge is a sequence of deletes, ordered so that an interrupted purge is
 * finished by the next one: the run item goes last, so until then `expiredRuns` keeps listing the run and the job
 * comes back to it. Each step deletes what a query finds and ignores 404s, so running it again is harmless and
 * counts only what it removed itself (a run already gone counts zero). This module is, with the audit module's
 * creates, the only code that touches audit items: it deletes a whole ended run's trail, item by item (the local
 * server has no delete-by-partition-key, and a trail is small).
 */
import type { Container, SqlParameter } from '@azure/cosmos';

import { TERMINAL_STATUSES } from '../../domain/pipeline';
import { PurgeCounts, RetentionStore } from '../../domain/ports';
import { CosmosAdmissionSlots } from './admissionSlots';
import { clampLimit, eachLimited, isoOf, MAX_RETENTION_PAGE, unless404 } from './common';
import { CosmosContext } from './cosmosContext';
import { idempotencyIdOf, RunItem } from './runStore';

const TERMINAL = [...TERMINAL_STATUSES];
/** Deletes in flight at once. */
const WIDTH = 16;

export class CosmosRetentionStore implements RetentionStore {
    constructor(
        private readonly ctx: CosmosContext,
        private readonly slots: CosmosAdmissionSlots,
    ) {}

    async expiredRuns(before: string, limit: number): Promise<string[]> {
        const cutoff = isoOf(before, 'before');
        const { runs } = await this.ctx.containers();
        const statuses = TERMINAL.map((_, i) => `@s${i}`);
        const { resources } = await runs.items
            .query<{ id: string }>({
                query:
                    `SELECT TOP @n c.id FROM c WHERE c.status IN (${statuses.join(', ')}) AND c._updatedAt < @before ` +
                    'ORDER BY c._updatedAt ASC, c.id ASC',
                parameters: [
                    { name: '@n', value: clampLimit(limit, MAX_RETENTION_PAGE) },
                    { name: '@before', value: cutoff },
                    ...TERMINAL.map((value, i) => ({ name: statuses[i]!, value })),
                ],
            })
            .fetchAll();
        return resources.map((r) => r.id);
    }

    async purgeRun(runId: string): Promise<PurgeCounts> {
        const c = await this.ctx.containers();
        const { resource: run } = await c.runs.item(runId, runId).read<RunItem>();
        const ofRun = { where: 'c.runId = @runId', parameters: [{ name: '@runId', value: runId }] };
        // Outbox entries first: an event of a run being purged must not go out after its record is gone.
        await deleteAll(c.outbox, await ids(c.outbox, ofRun), (id) => id);
        const outputs = await deleteAll(c.outputs, await ids(c.outputs, ofRun, runId), () => runId);
        const auditRecords = await deleteAll(c.audit, await ids(c.audit, ofRun, runId), () => runId);
        if (run?.idempotencyKey !== undefined) {
            const keyId = idempotencyIdOf(run.createdBy, run.idempotencyKey);
            const { resource: key } = await c.idempotency.item(keyId, keyId).read<{ runId: string }>();
            // Only the key of this run: the same key may since name another (after a crash, say).
            if (key?.runId === runId) await deleteAll(c.idempotency, [keyId], (id) => id);
        }
        await this.slots.release(runId);
        const runs = run ? await deleteAll(c.runs, [runId], (id) => id) : 0;
        return { runs, outputs, auditRecords };
    }

    async purgeAged(before: string): Promise<number> {
        const cutoff = Date.parse(isoOf(before, 'before'));
        const { links, ratelimits } = await this.ctx.containers();
        const parameters = [{ name: '@before', value: cutoff }];
        const [uses, windows] = await Promise.all([
            ids(links, { where: 'c.usedAtMs < @before', parameters }),
            ids(ratelimits, { where: 'c.windowEnd < @before', parameters }),
        ]);
        const [a, b] = await Promise.all([
            deleteAll(links, uses, (id) => id),
            deleteAll(ratelimits, windows, (id) => id),
        ]);
        return a + b;
    }
}

/** The ids of the items matching `where` (within one partition when `partitionKey` is given). */
async function ids(
    container: Container,
    { where, parameters }: { where: string; parameters: SqlParameter[] },
    partitionKey?: string,
): Promise<string[]> {
    const { resources } = await container.items
        .query<{ id: string }>(
            { query: `SELECT c.id FROM c WHERE ${where}`, parameters },
            partitionKey === undefined ? {} : { partitionKey },
        )
        .fetchAll();
    return resources.map((r) => r.id);
}

/** Deletes the items; returns how many this call removed (those already gone do not count). */
async function deleteAll(container: Container, itemIds: readonly string[], pk: (id: string) => string) {
    let removed = 0;
    await eachLimited(itemIds, WIDTH, async (id) => {
        const deleted = await unless404(async () => {
            await container.item(id, pk(id)).delete();
            return true;
        }, false);
        if (deleted) removed++;
    });
    return removed;
}
