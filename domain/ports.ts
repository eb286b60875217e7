/**
 * The capabilities the domain needs from the outside world. Adapters implement them (embedded SQLite and
 * Cosmos DB for stores, HTTP for engines); one contract suite per port runs against every adapter.
 */
import type { DecisionClaims } from './attestation';
import { AnchoredHead, AuditRecord, NewAuditEvent } from './audit';
import type { MeshCloudEvent } from './events';
import type { LinkClaims } from './links';
import { RiskLevel, RunStatus, Stage } from './pipeline';
import type { Channel } from './policy';
import { VersionedPolicy } from './policy';
import { CheckpointPolicy } from './policy';
import type { Role } from './principal';
import type { Decision } from './quorum';
import { RunDoc } from './run';
import type { Decider } from './waiting';

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
    riskLevel?: RiskLevel[];
    /**
     * Only runs with an open checkpoint this person may decide now (domain/waiting.ts `mayDecideNow`: a required role,
     * the run's team or Mesh.Admin, not the submitter, not already approved).
     */
    waitingFor?: Decider;
    /**
     * Only runs with an open information request this person may answer (domain/waiting.ts `mayAnswer`: the run's
     * submitter, or a Developer/DataScientist of its team).
     */
    answerableBy?: Decider;
}

export interface Page<T> {
    items: T[];
    continuationToken?: string;
}

/** Runs (the API projection), their idempotency keys and their stage outputs. */
export interface RunStore {
    /**
     * Creates the run, or, when `idempotencyKey` was already used by the same caller, returns the run that
     * key created (`created: false`) and changes nothing. The key is stored with `idempotencyFingerprint`; a reuse
     * whose fingerprint differs from the stored one throws `ConflictError` (a key stored without one replays).
     */
    create(run: RunDoc): Promise<{ run: RunDoc; created: boolean }>;
    get(id: string): Promise<RunDoc | undefined>;
    /**
     * Read-modify-write with optimistic concurrency: `mutate` may run more than once if another writer got
     * in between. Returning undefined from `mutate` leaves the run unchanged.
     */
    update(id: string, mutate: (run: RunDoc) => RunDoc | undefined): Promise<RunDoc>;
    list(filter: RunFilter, limit: number, continuationToken?: string): Promise<Page<RunDoc>>;
    /** How many runs match `filter` (all pages). */
    count(filter: RunFilter): Promise<number>;
    /**
     * What the metrics gauges show (SPEC "Observability (v1.1)"), in a query or two: how many runs are in each status,
     * and when the longest-waiting open checkpoint (of a run awaiting approval) opened (ISO; undefined when none).
     */
    stateCounts(): Promise<RunStateCounts>;
    /** Runs whose projection changed after `cursor` (an opaque, increasing token), oldest first: what SSE streams. */
    changesSince(cursor: string | undefined, limit: number): Promise<{ runs: RunDoc[]; cursor: string | undefined }>;
    /** Stage outputs are kept beside the run, not in orchestration history (which stores every input/output). */
    putOutput(runId: string, key: string, output: unknown): Promise<void>;
    getOutput(runId: string, key: string): Promise<unknown>;
    ping(): Promise<void>;
}

export interface RunStateCounts {
    byStatus: Partial<Record<RunStatus, number>>;
    oldestOpenedAt: string | undefined;
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

/**
 * Each run's chain head, kept outside the audit store (locally a store under `MESH_KEYS_DIR`, on Azure an append blob
 * per run in a WORM container), so records cut off the end of a chain, or a chain rewritten whole, show on
 * verification (domain/audit.ts `verifyChain`). Written after each append; heads only move forward.
 */
export interface ChainAnchors {
    /**
     * Records that run `runId`'s chain reached `seq` with `hash`. Idempotent: the first hash anchored for a seq is the
     * one that counts, and a seq below the head never moves it back, so retried and racing appends are harmless.
     */
    record(runId: string, seq: number, hash: string): Promise<void>;
    /** The highest head anchored for the run, or undefined when none was. */
    head(runId: string): Promise<AnchoredHead | undefined>;
}

/** An audit record that still has to go out as an event (domain/events.ts maps it). */
export interface OutboxEntry {
    /** The event id, `${runId}:${seq}` (domain/events.ts eventIdOf). */
    id: string;
    runId: string;
    seq: number;
    record: AuditRecord;
}

/**
 * The transactional outbox of lifecycle events. A store writes an entry in the same transaction as the audit
 * record of every SPEC event (not `policy.updated`), so a state change is never durable without its event, nor
 * the other way round; a dispatcher publishes the entries and then marks them published.
 */
export interface EventOutbox {
    /** Up to `limit` unpublished entries, oldest first: in recording order, so in `seq` order within a run. */
    pending(limit: number): Promise<OutboxEntry[]>;
    /** How many entries are unpublished (a count, for the `mesh_events_pending` gauge). */
    pendingCount(): Promise<number>;
    /** Forgets published entries. Idempotent: ids already marked (or unknown) are ignored. */
    markPublished(ids: readonly string[]): Promise<void>;
}

/** Where lifecycle events go (Event Grid on Azure and on the embedded host alike). */
export interface EventPublisher {
    /**
     * Publishes the events as one batch, in order. Resolves once the batch was accepted; throws otherwise, and then
     * none of it counts as published (it is sent again, whole or in part, so consumers de-duplicate by event id).
     */
    publish(events: readonly MeshCloudEvent[]): Promise<void>;
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

/**
 * Signs and verifies approval-link tokens. `verify` checks the signature against the current key set (a link
 * signed by a rotated-out previous key stays valid until it expires) and returns the claims.
 */
export interface LinkSigner {
    sign(claims: LinkClaims): Promise<string>;
    /**
     * Throws `LinkInvalidError` for anything malformed, tampered, signed by an unknown key or of the wrong type,
     * and `LinkExpiredError` for a genuine link past its `exp`.
     */
    verify(token: string): Promise<LinkClaims>;
}

/** Which approval links were used: a link works once, across processes and restarts. */
export interface LinkUses {
    /** Marks `jti` used at `at` (ISO time): true the first time, false ever after, even under concurrency. */
    use(jti: string, at: string): Promise<boolean>;
    /** Whether `jti` was used; changes nothing (the confirm page reads it). */
    used(jti: string): Promise<boolean>;
}

/** Named secrets (Key Vault on Azure; environment and local.settings.json locally). */
export interface SecretStore {
    /** The secret's current value, or undefined when there is no such secret. */
    get(name: string): Promise<string | undefined>;
}

/** A person the directory knows: who may be notified, where, and with which roles and teams. */
export interface Person {
    id: string;
    name: string;
    email?: string;
    /** Slack member id or handle. */
    slack?: string;
    /** Microsoft Teams address (UPN); `teams` is taken by the person's team memberships. */
    msTeams?: string;
    roles: Role[];
    teams: string[];
}

/** Who holds which roles in which teams (Entra ID groups on Azure; a JSON file locally). */
export interface Directory {
    /** People holding any of `roles` who belong to `team`; a Mesh.Admin counts for every team. */
    peopleWithRoles(roles: readonly Role[], team: string): Promise<Person[]>;
    /** One person by id, whatever their roles (a run's submitter). */
    person(id: string): Promise<Person | undefined>;
}

/** One notification to one person on one channel. */
export interface NotificationMessage {
    /** The CloudEvent that caused it, and its type (`mesh.checkpoint.opened` …). */
    eventId: string;
    eventType: string;
    runId: string;
    checkpointId: string | null;
    recipient: Person;
    subject: string;
    /** Plain-text lines of the message body (each channel renders them its own way). */
    lines: string[];
    /**
     * The signed approval links (approve, reject, request_info) of a personal message; empty for messages that ask
     * nothing; on a shared channel (Teams, Slack) one `open` link to a page that makes the clicker sign in.
     */
    links: NotificationLink[];
}

/** A link in a notification: a personal one-click decision, or (`open`) the run's page behind sign-in. */
export interface NotificationLink {
    decision: Decision | 'open';
    url: string;
}

/** A channel (email, Teams, Slack, webhook). `send` resolves once delivered and throws when it failed for good. */
export interface Notifier {
    readonly channel: Channel;
    /** False when the channel has no endpoint configured (locally such messages are kept in the outbox only). */
    readonly configured: boolean;
    /** The address the message goes to on this channel, or undefined when the person has none there. */
    addressOf(person: Person): string | undefined;
    send(message: NotificationMessage, to: string): Promise<void>;
}

/** What was sent (or failed for good) per (event, person, channel): a redelivered event sends nothing twice. */
export interface NotificationLog {
    has(key: string): Promise<boolean>;
    record(entry: NotificationRecord): Promise<void>;
}

export interface NotificationRecord {
    key: string;
    at: string;
    channel: Channel;
    to: string;
    subject: string;
    runId: string;
    checkpointId: string | null;
    links: NotificationLink[];
    status: 'sent' | 'failed';
    error?: string;
    /** Set when the message was not delivered anywhere but the local outbox (its channel is not configured). */
    note?: string;
    eventId: string;
    eventType: string;
    personId: string;
}

/**
 * Admission slots: at most `capacity` workflows execute at once; the rest wait as `Queued`, in order. A slot is
 * held from admission until the run first stops executing (waits for a person, is paused, or ends).
 */
export interface AdmissionSlots {
    /**
     * Takes a slot for `runId` when fewer than `capacity` are held; a run that already holds one keeps it.
     * Resolves true when the run holds a slot, false when none is free. Atomic across instances.
     */
    acquire(runId: string, capacity: number): Promise<boolean>;
    /** Frees the run's slot; freeing a slot the run does not hold changes nothing. */
    release(runId: string): Promise<void>;
    /** How many slots are held now. */
    held(): Promise<number>;
    /** The runs holding a slot now (for reclaiming slots whose release a crash cut off). */
    holders(): Promise<string[]>;
}

/** A run waiting to be admitted: what goes on the admission queue. */
export interface AdmissionMessage {
    runId: string;
    correlationID: string;
}

/** The queue of runs waiting for admission: Service Bus on Azure (KEDA scales on its length), the embedded queue locally. */
export interface AdmissionQueue {
    /** Durably enqueues the message (at-least-once: the admitter tolerates duplicates). */
    enqueue(message: AdmissionMessage): Promise<void>;
}

/** Request counters behind the rate limits, shared by every instance (so a limit holds across the fleet). */
export interface RateCounters {
    /**
     * Adds one to `key`'s counter in the fixed window that starts at `windowStart` (ms since the epoch) and
     * returns the count after it. A window may be forgotten once `windowStart + windowMs` has passed, and a key's
     * earlier windows once a later one is counted (keys move forward in time).
     */
    increment(key: string, windowStart: number, windowMs: number): Promise<number>;
}

/** What one purge removed. */
export interface PurgeCounts {
    runs: number;
    outputs: number;
    auditRecords: number;
}

/** Retention: finding what is past its period, and removing it. */
export interface RetentionStore {
    /** Ids of runs that ended (terminal status; `updatedAt` is when) before `before` (ISO time), oldest first. */
    expiredRuns(before: string, limit: number): Promise<string[]>;
    /**
     * Removes the run, its stage outputs, its idempotency key, its audit records and its outbox entries. Idempotent:
     * a run already gone counts zero.
     */
    purgeRun(runId: string): Promise<PurgeCounts>;
    /** Removes approval-link uses and rate-limit windows recorded before `before`; returns how many. */
    purgeAged(before: string): Promise<number>;
}

/** Every store the app keeps, from one backend (embedded SQLite or Cosmos DB). */
export interface AppStores {
    runs: RunStore;
    audit: AuditLog;
    policies: PolicyStore;
    /** Lifecycle events still to publish, written with their audit records. */
    outbox: EventOutbox;
    /** Which approval links were used (a link works once). */
    linkUses: LinkUses;
    slots: AdmissionSlots;
    rateCounters: RateCounters;
    retention: RetentionStore;
    /** Releases connections; the stores must not be used afterwards. */
    close(): void | Promise<void>;
}

/**
 * What makes a decision event fit to travel through the durable history (domain/attestation.ts): its comment sealed
 * (bound to the run and checkpoint; as it is with encryption off) and an attestation of who decided, signed with a
 * host key kept outside the stores; and, in the `record` activity, the checks of both.
 */
export interface DecisionSeals {
    /** Seals `comment` for the event (plain text as it is when encryption is off). */
    sealComment(runId: string, checkpointId: string, comment: string): Promise<string>;
    /** Opens a comment `sealComment` sealed; any other text comes back as it is. Throws when a sealed one fails to open. */
    openComment(runId: string, checkpointId: string, comment: string): Promise<string>;
    /** The signed attestation of `claims` (it names its key's kid, so the key can rotate). */
    attest(claims: DecisionClaims): Promise<string>;
    /** The claims of a genuine attestation, or why it is not one (absent, malformed, unknown key, bad signature). */
    verify(attestation: unknown): Promise<{ claims: DecisionClaims } | { invalid: string }>;
}
