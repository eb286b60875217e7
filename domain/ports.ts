/**
 * The capabilities the domain needs from the outside world. Adapters implement them (embedded SQLite and
 * Cosmos DB for stores, HTTP for engines); one contract suite per port runs against every adapter.
 */
import { AuditRecord, NewAuditEvent } from './audit';
import { RunStatus, Stage } from './pipeline';
import { VersionedPolicy } from './policy';
import { CheckpointPolicy } from './policy';
import { RunDoc } from './run';

export interface RunFilter {
    status?: RunStatus[];
    /** Only runs of these teams (callers without an all-teams role are always limited to theirs). */
    teams?: string[];
    team?: string;
    stage?: Stage;
    createdBy?: string;
    /** ISO time: runs created at or after. */
    since?: string;
    /** Free text over title, id and team. */
    q?: string;
}

export interface Page<T> {
    items: T[];
    continuationToken?: string;
}

/** Runs (the API projection), their idempotency keys and their stage outputs. */
export interface RunStore {
    /**
     * Creates the run, or, when `idempotencyKey` was already used by the same caller, returns the run that
     * key created (`created: false`) and changes nothing.
     */
    create(run: RunDoc): Promise<{ run: RunDoc; created: boolean }>;
    get(id: string): Promise<RunDoc | undefined>;
    /**
     * Read-modify-write with optimistic concurrency: `mutate` may run more than once if another writer got
     * in between. Returning undefined from `mutate` leaves the run unchanged.
     */
    update(id: string, mutate: (run: RunDoc) => RunDoc | undefined): Promise<RunDoc>;
    list(filter: RunFilter, limit: number, continuationToken?: string): Promise<Page<RunDoc>>;
    /** Runs whose projection changed after `cursor` (an opaque, increasing token), oldest first: what SSE streams. */
    changesSince(cursor: string | undefined, limit: number): Promise<{ runs: RunDoc[]; cursor: string | undefined }>;
    /** Stage outputs are kept beside the run, not in orchestration history (which stores every input/output). */
    putOutput(runId: string, key: string, output: unknown): Promise<void>;
    getOutput(runId: string, key: string): Promise<unknown>;
    ping(): Promise<void>;
}

/** The append-only, hash-chained audit trail of each run. */
export interface AuditLog {
    /**
     * Appends one record with the next `seq` and the chain hash. Idempotent by `event.eventId`: appending an
     * id the run already has returns the stored record and writes nothing (a retried activity never duplicates).
     */
    append(event: NewAuditEvent): Promise<AuditRecord>;
    list(runId: string, limit: number, continuationToken?: string): Promise<Page<AuditRecord>>;
    /** The last `limit` records of a run, oldest first (the status view's recent history). */
    latest(runId: string, limit: number): Promise<AuditRecord[]>;
    all(runId: string): AsyncIterable<AuditRecord>;
}

export interface PolicyStore {
    /** The current policy (the default one until someone saves another). */
    get(): Promise<VersionedPolicy>;
    /** Saves a new version; `expectedVersion` must be the current one, else CONFLICT. */
    put(policy: CheckpointPolicy, expectedVersion: number, actor: string, at: string): Promise<VersionedPolicy>;
}

/** One call to a mesh engine (one stage). */
export interface EngineRequest {
    runId: string;
    stage: Stage;
    iteration: number;
    input: unknown;
    metadata: Record<string, unknown>;
    correlationID: string;
    traceparent: string;
    /** runId + stage + iteration: the engine returns the same answer for the same key. */
    idempotencyKey: string;
}

export type EngineResult =
    | { ok: true; output: unknown; continue: boolean }
    /** The engine answered with an error it will keep giving (4xx, or its envelope says so): do not retry. */
    | { ok: false; code: string; message: string };

export interface EngineClient {
    /** Throws on a transient failure (timeout, 5xx, connection), so the caller's retry policy applies. */
    invoke(req: EngineRequest): Promise<EngineResult>;
}
