/**
 * The audit trail: one record per state change, append-only, with a gap-free `seq` per run and a SHA-256
 * hash chain over each record's canonical JSON (RFC 8785), so any edit or deletion is detectable.
 */
import { Stage } from './pipeline';

export const EVENT_TYPES = [
    'pipeline.queued',
    'pipeline.started',
    'pipeline.paused',
    'pipeline.resumed',
    'pipeline.aborted',
    'pipeline.completed',
    'pipeline.failed',
    'pipeline.rejected',
    'pipeline.timedout',
    'stage.started',
    'stage.completed',
    'stage.failed',
    'checkpoint.opened',
    'checkpoint.decided',
    'checkpoint.expired',
    'checkpoint.escalated',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Policy changes are audited in a chain of their own, under this pseudo run id. */
export const POLICY_CHAIN = '_policies';
export type AuditType = EventType | 'policy.updated';

/** What a state change appends; the log adds seq, prevHash and hash. */
export interface NewAuditEvent {
    /** Idempotency key: the same id appended twice is one record. */
    eventId: string;
    runId: string;
    type: AuditType;
    at: string;
    /** Who caused it: a user id, or 'system' for timers and the orchestrator itself. */
    actor: string;
    correlationID: string;
    stage?: Stage;
    checkpointId?: string;
    reason?: string;
    details?: Record<string, unknown>;
}

export interface AuditRecord extends NewAuditEvent {
    seq: number;
    prevHash: string;
    hash: string;
}

export interface ChainVerification {
    verified: boolean;
    head: string;
    /** The first record that does not verify, and why. */
    brokenAt?: { seq: number; reason: string };
}

/** The prevHash of a chain's first record. */
export const GENESIS_HASH = '0'.repeat(64);
