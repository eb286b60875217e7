/**
 * The audit trail on Cosmos DB (`audit`, pk `/runId`): one item per record, whose id is the zero-padded `seq`, so
 * "the next record" is a plain `create` and two writers racing for the same seq get a 409 from the database instead
 * of forking the chain. A unique key on `/eventId` (per run) makes a concurrent duplicate append a 409 as well.
 *
 * Append-only: this module only ever *creates* audit items (no upsert, replace, patch or delete: a contract test
 * reads this file to keep it so). Retention removes a whole ended run's trail (retentionStore.ts), nothing else does.
 *
 * An append:
 * 1. looks the eventId up in the run and reads the run's last record (`TOP 1 … ORDER BY seq DESC`), both at once;
 * 2. returns the stored record if the run already has one with this eventId (idempotent; it also makes sure that
 *    record's outbox entry exists, see eventOutbox.ts); else makes sure the last record's outbox entry exists and
 *    builds the next record with `chainNext` (keyed with the chain's current key) after masking PII in `details` (so what is hashed is what is stored);
 * 3. creates it; on a 409 (seq taken, or the eventId arrived meanwhile) waits a jittered moment and starts over;
 * 4. creates the outbox entry for a published type.
 *
 * The item carries one field of its own, `_pos` (µs; stripped on read like `id` and the system properties), which
 * orders the outbox: it is the writer's clock but always greater than the previous record's, so it grows with seq
 * within a run whatever the instances' clocks say. Records come back exactly as `chainNext` built them, so
 * `verifyChain` verifies them.
 */
import type { Container, ItemDefinition } from '@azure/cosmos';

import { allRecords, AuditRecord, chainNext, maskPii, NewAuditEvent } from '../../domain/audit';
import { AuditLog, Page } from '../../domain/ports';
import { type ChainKeyLoader, ephemeralChainKeys } from '../audit/chainKeys';
import { backoff, badToken, clampLimit, isConflict, MAX_ATTEMPTS, MAX_AUDIT_PAGE, strip } from './common';
import { CosmosContext } from './cosmosContext';
import { OutboxWriter } from './eventOutbox';

export type AuditItem = AuditRecord & ItemDefinition & { id: string; _pos: number };

/** Item ids sort like the seqs they hold (seq stays below 10^15, as the page tokens allow). */
export function auditItemId(seq: number): string {
    return String(seq).padStart(15, '0');
}

export function fromAuditItem(item: object): AuditRecord {
    return strip<AuditRecord>(item, ['id', '_pos']);
}

export class CosmosAuditLog implements AuditLog {
    private readonly outboxWriter: OutboxWriter;

    constructor(
        private readonly ctx: CosmosContext,
        private readonly chainKeys: ChainKeyLoader = ephemeralChainKeys(),
    ) {
        this.outboxWriter = new OutboxWriter(ctx);
    }

    async append(event: NewAuditEvent): Promise<AuditRecord> {
        const [{ audit, outbox }, { current: key }] = await Promise.all([this.ctx.containers(), this.chainKeys()]);
        const masked = event.details === undefined ? event : { ...event, details: maskPii(event.details) };
        for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
            // Both reads at once (one round trip of latency); the last record is only used when there is no stored one.
            const [stored, [last]] = await Promise.all([
                this.byEventId(audit, event.runId, event.eventId),
                this.query(audit, event.runId, 'ORDER BY c.seq DESC', 1),
            ]);
            if (stored) {
                const record = fromAuditItem(stored);
                await this.outboxWriter.ensure(outbox, record, stored._pos);
                return record;
            }
            const prev = last ? fromAuditItem(last) : undefined;
            // Before the new record exists: so an entry is never visible before the entry of the record it follows.
            if (last && prev) await this.outboxWriter.ensure(outbox, prev, last._pos);
            const record = chainNext(prev, masked, key);
            const pos = this.ctx.clock.next(last?._pos);
            try {
                await audit.items.create<AuditItem>({ ...record, id: auditItemId(record.seq), _pos: pos });
            } catch (e: unknown) {
                if (!isConflict(e)) throw e;
                await backoff(attempt);
                continue;
            }
            await this.outboxWriter.created(outbox, record, pos);
            return record;
        }
        // Transient by nature (a storm of appends to one run): the caller's retry policy applies.
        throw new Error(`Audit append to run ${event.runId} lost ${MAX_ATTEMPTS} races in a row.`);
    }

    async list(runId: string, limit: number, continuationToken?: string): Promise<Page<AuditRecord>> {
        if (continuationToken !== undefined && !/^\d{1,15}$/.test(continuationToken)) {
            throw badToken('continuationToken');
        }
        const n = clampLimit(limit, MAX_AUDIT_PAGE);
        const { audit } = await this.ctx.containers();
        const after = continuationToken === undefined ? 0 : Number(continuationToken);
        const items = await this.query(audit, runId, 'AND c.seq > @after ORDER BY c.seq ASC', n + 1, after);
        const more = items.length > n;
        const page = items.slice(0, n);
        const last = page[page.length - 1];
        return {
            items: page.map(fromAuditItem),
            ...(more && last ? { continuationToken: String(last.seq) } : {}),
        };
    }

    async latest(runId: string, limit: number): Promise<AuditRecord[]> {
        const { audit } = await this.ctx.containers();
        const items = await this.query(audit, runId, 'ORDER BY c.seq DESC', clampLimit(limit, MAX_AUDIT_PAGE));
        return items.map(fromAuditItem).reverse();
    }

    all(runId: string): AsyncIterable<AuditRecord> {
        return allRecords((id, n, token) => this.list(id, n, token), runId, MAX_AUDIT_PAGE);
    }

    private async byEventId(audit: Container, runId: string, eventId: string): Promise<AuditItem | undefined> {
        const { resources } = await audit.items
            .query<AuditItem>(
                {
                    query: 'SELECT * FROM c WHERE c.runId = @runId AND c.eventId = @eventId',
                    parameters: [
                        { name: '@runId', value: runId },
                        { name: '@eventId', value: eventId },
                    ],
                },
                { partitionKey: runId },
            )
            .fetchAll();
        return resources[0];
    }

    /** `TOP n` records of one run (one partition), `rest` being the rest of the WHERE clause and the ORDER BY. */
    private async query(
        audit: Container,
        runId: string,
        rest: string,
        n: number,
        after?: number,
    ): Promise<AuditItem[]> {
        const { resources } = await audit.items
            .query<AuditItem>(
                {
                    query: `SELECT TOP @n * FROM c WHERE c.runId = @runId ${rest}`,
                    parameters: [
                        { name: '@n', value: n },
                        { name: '@runId', value: runId },
                        ...(after === undefined ? [] : [{ name: '@after', value: after }]),
                    ],
                },
                { partitionKey: runId },
            )
            .fetchAll();
        return resources;
    }
}
