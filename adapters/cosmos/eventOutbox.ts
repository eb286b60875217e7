/**
 * The event outbox on Cosmos DB (`outbox`, pk `/id` = the event id `runId:seq`).
 *
 * Cosmos DB has no transaction across containers (and the local server's transactional batch is neither complete
 * nor atomic), so the embedded store's "record and entry in one transaction" becomes "the entry follows the record,
 * and whoever next touches the run makes sure it exists":
 *
 * - `append` creates the audit record, then the entry (a 409 means someone else already did).
 * - An append that finds its record already stored (a retried activity, which is how a crash between the two
 *   writes is recovered) makes sure the entry exists.
 * - Every append also makes sure the entry of the record it chains onto exists before writing its own. So within a
 *   run an entry never becomes visible before the entry of the record it follows, and `pending` (ordered by `pos`,
 *   which increases with seq within a run: see auditLog.ts) hands a run's events out in seq order.
 *
 * "Makes sure it exists" must not resurrect an entry that was published, so `markPublished` keeps entries as
 * tombstones (`published: true`, item `ttl` a few days) instead of deleting them, and `pending` reads only the
 * unpublished ones. Records older than half the tombstone lifetime are not re-ensured (their tombstone may be gone,
 * and an activity retry never comes that late). Unpublished entries expire with the container's TTL
 * (`COSMOS_TTL_DAYS_OUTBOX`). Entries of a purged run are deleted with it (retentionStore.ts).
 */
import type { Container, ItemDefinition } from '@azure/cosmos';

import { AuditRecord } from '../../domain/audit';
import { eventIdOf, isPublished } from '../../domain/events';
import { EventOutbox, OutboxEntry } from '../../domain/ports';
import { clampLimit, eachLimited, isConflict, isNotFound, itemId, MAX_OUTBOX_PAGE } from './common';
import { CosmosContext } from './cosmosContext';

export interface OutboxItem extends ItemDefinition {
    id: string;
    /** The event id (`id` is the same unless the event id is not a valid item id: see itemId). */
    eventId: string;
    runId: string;
    seq: number;
    record: AuditRecord;
    /** Recording order, in µs: increases with seq within a run (copied from the audit item's `_pos`). */
    pos: number;
    published: boolean;
    ttl?: number;
}

export class CosmosEventOutbox implements EventOutbox {
    constructor(private readonly ctx: CosmosContext) {}

    async pending(limit: number): Promise<OutboxEntry[]> {
        const { outbox } = await this.ctx.containers();
        const { resources } = await outbox.items
            .query<OutboxItem>({
                query: 'SELECT TOP @n * FROM c WHERE c.published = false ORDER BY c.pos ASC',
                parameters: [{ name: '@n', value: clampLimit(limit, MAX_OUTBOX_PAGE) }],
            })
            .fetchAll();
        return resources.map((item) => ({ id: item.eventId, runId: item.runId, seq: item.seq, record: item.record }));
    }

    async pendingCount(): Promise<number> {
        const { outbox } = await this.ctx.containers();
        const { resources } = await outbox.items
            .query<number>('SELECT VALUE COUNT(1) FROM c WHERE c.published = false')
            .fetchAll();
        // Cross-partition aggregates may come back as partial counts; their sum is the count.
        return resources.reduce((sum, n) => sum + n, 0);
    }

    async markPublished(ids: readonly string[]): Promise<void> {
        if (!ids.length) return;
        const { outbox } = await this.ctx.containers();
        await eachLimited([...new Set(ids)], 16, async (eventId) => {
            const id = itemId(eventId);
            try {
                await outbox.item(id, id).patch([
                    { op: 'set', path: '/published', value: true },
                    { op: 'set', path: '/ttl', value: this.ctx.outboxTombstoneSeconds },
                ]);
            } catch (e: unknown) {
                if (!isNotFound(e)) throw e; // unknown (or purged) ids are ignored
            }
        });
    }
}

/**
 * The outbox side of an append (auditLog.ts calls these; the audit module itself writes nothing but audit creates).
 * Only records of published types have entries.
 */
export class OutboxWriter {
    constructor(private readonly ctx: CosmosContext) {}

    /** Creates the entry of a record just appended; one that exists already (a helper was faster) is fine. */
    async created(outbox: Container, record: AuditRecord, pos: number): Promise<void> {
        if (!isPublished(record.type)) return;
        try {
            await outbox.items.create<OutboxItem>(entryOf(record, pos));
        } catch (e: unknown) {
            if (!isConflict(e)) throw e;
        }
    }

    /**
     * Makes sure a stored record's entry exists (pending or published), creating it if the record's writer did not
     * get that far. Skipped for records too old for their tombstone to be trusted to still exist.
     */
    async ensure(outbox: Container, record: AuditRecord, pos: number): Promise<void> {
        if (!isPublished(record.type)) return;
        const ageUs = Date.now() * 1000 - pos;
        if (ageUs > (this.ctx.outboxTombstoneSeconds * 1e6) / 2) return;
        const id = itemId(eventIdOf(record.runId, record.seq));
        const { resource } = await outbox.item(id, id).read<OutboxItem>();
        if (!resource) await this.created(outbox, record, pos);
    }
}

function entryOf(record: AuditRecord, pos: number): OutboxItem {
    const eventId = eventIdOf(record.runId, record.seq);
    return { id: itemId(eventId), eventId, runId: record.runId, seq: record.seq, record, pos, published: false };
}
