/**
 * Retention: runs that ended more than the retention period ago are removed whole (projection, stage outputs,
 * idempotency key, audit trail, outbox entries and durable history), and approval-link uses and rate windows older
 * than the period go too. Counting from a run's end keeps every trail complete while it is kept: a per-record expiry
 * would cut the head off a long-running run's hash chain.
 *
 * Each batch is audited in the `_retention` chain BEFORE its runs are removed, so a purge is never unrecorded; a
 * crash midway leaves runs that the next purge finds again and records again (the record lists what was due).
 */
import { createHash } from 'node:crypto';

import { RETENTION_CHAIN } from './audit';
import type { AuditLog, PurgeCounts, RetentionStore } from './ports';

export interface RetentionPorts {
    retention: RetentionStore;
    audit: Pick<AuditLog, 'append'>;
    /** Removes the run's orchestration history from the durable backend (idempotent: an unknown instance is fine). */
    purgeHistory(runId: string): Promise<void>;
    now(): Date;
}

export interface RetentionOptions {
    retentionMs: number;
    /** Runs per batch (and per audit record). */
    batchSize: number;
    /** Stops after this many batches; the next tick continues. */
    maxBatches: number;
    correlationID: string;
}

export interface RetentionSummary extends PurgeCounts {
    before: string;
    agedRecords: number;
    batches: number;
}

/** One retention pass; returns what it removed. */
export async function purgeExpired(p: RetentionPorts, o: RetentionOptions): Promise<RetentionSummary> {
    const before = new Date(p.now().getTime() - o.retentionMs).toISOString();
    const total: RetentionSummary = { before, runs: 0, outputs: 0, auditRecords: 0, agedRecords: 0, batches: 0 };
    while (total.batches < o.maxBatches) {
        const ids = await p.retention.expiredRuns(before, o.batchSize);
        if (ids.length === 0) break;
        total.batches++;
        await p.audit.append({
            eventId: `${RETENTION_CHAIN}/${createHash('sha256').update(ids.join('\n')).digest('hex')}`,
            runId: RETENTION_CHAIN,
            type: 'retention.purged',
            at: p.now().toISOString(),
            actor: 'system',
            correlationID: o.correlationID,
            reason: `ended before ${before} (retention ${Math.round(o.retentionMs / 1000)} s)`,
            details: { endedBefore: before, runIds: ids },
        });
        for (const id of ids) {
            await p.purgeHistory(id);
            const n = await p.retention.purgeRun(id);
            total.runs += n.runs;
            total.outputs += n.outputs;
            total.auditRecords += n.auditRecords;
        }
        if (ids.length < o.batchSize) break;
    }
    total.agedRecords = await p.retention.purgeAged(before);
    return total;
}
