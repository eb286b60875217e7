/**
 * The embedded stores: runs, audit trail, checkpoint policies, link uses, admission slots and rate counters in one
 * SQLite database, `<dataDir>/app.sqlite`, in WAL mode. Each write is one IMMEDIATE transaction, so SQLite
 * serializes writers (this process and any other opening the same file) and a kill -9 at any instant leaves each
 * write whole or absent.
 *
 * Audit rows are append-only: nothing here updates them, and a trigger refuses UPDATE. The one statement that
 * deletes them is retention's `purgeRun`, which removes a run's whole trail together with the run once its
 * retention period is over (so the trigger is BEFORE UPDATE only: DELETE stays allowed for retention). The hash
 * chain (domain/audit.ts) shows anyone who edits the file behind the trigger's back.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { allRecords, AuditRecord, chainNext, maskPii, NewAuditEvent } from '../../domain/audit';
import { ConflictError, NotFoundError, ValidationError } from '../../domain/errors';
import { eventIdOf, isPublished } from '../../domain/events';
import { type RunStatus, TERMINAL_STATUSES } from '../../domain/pipeline';
import { CheckpointPolicy, DEFAULT_POLICY, policyBody, VersionedPolicy } from '../../domain/policy';
import {
    AdmissionSlots,
    AppStores,
    AuditLog,
    EventOutbox,
    LinkUses,
    OutboxEntry,
    Page,
    PolicyStore,
    PurgeCounts,
    RateCounters,
    RetentionStore,
    RunFilter,
    RunStateCounts,
    RunStore,
} from '../../domain/ports';
import { isRole } from '../../domain/principal';
import { assertSameRequest, RunDoc } from '../../domain/run';
import { answersForTeams, waitIndexOf } from '../../domain/waiting';
import { type ChainKeyLoader, ephemeralChainKeys } from '../audit/chainKeys';

/** Every store of the app over the embedded database. */
export interface EmbeddedStores extends AppStores {
    /** Closes the database (synchronously); the stores must not be used afterwards. */
    close(): void;
}

/** Page size caps, as on Cosmos (whose adapter keeps the same ones). */
export const MAX_RUN_PAGE = 200;
export const MAX_AUDIT_PAGE = 1000;

/**
 * 1: runs, run_outputs, audit, outbox, policies, link_uses.
 * 2: runs.updated_at (retention), admission_slots, rate_windows.
 * 3: runs.idempotency_fingerprint (a reused Idempotency-Key with another body is CONFLICT).
 * 4: runs.risk_level, runs.wait_roles, runs.wait_approved, runs.info_open (the `riskLevel`, `waitingFor` and inbox
 *    filters: domain/waiting.ts `waitIndexOf`), filled in from each run's document.
 * `migrate` brings an older database up.
 */
const SCHEMA_VERSION = 4;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('change_seq', 0);

CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    idempotency_key TEXT,
    idempotency_fingerprint TEXT,
    status TEXT NOT NULL,
    team TEXT NOT NULL,
    current_stage TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    search TEXT NOT NULL,
    risk_level TEXT,
    -- While the run waits on a decision: '|role|role|' of the open checkpoint, and a JSON array of who approved it.
    wait_roles TEXT,
    wait_approved TEXT,
    -- 1 while one of its checkpoints has an open information request.
    info_open INTEGER NOT NULL DEFAULT 0,
    etag INTEGER NOT NULL,
    change_seq INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_by_idempotency_key ON runs (created_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS runs_by_change ON runs (change_seq);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS runs_by_team ON runs (team, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS runs_by_creator ON runs (created_by, created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS run_outputs (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS audit (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    at TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, seq),
    UNIQUE (run_id, event_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS audit_is_append_only BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;

-- The event outbox: one row per audit record of a SPEC event, written in the same transaction as the record,
-- deleted once published. pos is the recording order (so seq order within a run); the record is read from audit.
CREATE TABLE IF NOT EXISTS outbox (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS policies (
    version INTEGER PRIMARY KEY,
    policy TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS link_uses (
    jti TEXT PRIMARY KEY,
    used_at TEXT NOT NULL
) WITHOUT ROWID;

-- One row per run holding an admission slot: the count of rows is the number of slots held.
CREATE TABLE IF NOT EXISTS admission_slots (
    run_id TEXT PRIMARY KEY,
    acquired_at TEXT NOT NULL
) WITHOUT ROWID;

-- Fixed-window request counters: one row per (key, window), forgotten by retention once the window is over.
CREATE TABLE IF NOT EXISTS rate_windows (
    key TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
) WITHOUT ROWID;
`;

/**
 * What version 2 added to tables that version 1 already had. Idempotent (it looks before it alters), so it runs on
 * every open, inside the opening transaction: a version 1 database comes out at version 2 with its data, a version 2
 * one unchanged.
 */
function migrate(db: Database.Database): void {
    const runColumns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('runs')").all();
    if (!runColumns.some((c) => c.name === 'updated_at')) {
        // ADD COLUMN needs a default for NOT NULL; every row gets its real value right after.
        db.exec("ALTER TABLE runs ADD COLUMN updated_at TEXT NOT NULL DEFAULT ''");
        // The same normal form as isoOf (ISO 8601 UTC with milliseconds); a document without a readable
        // updatedAt falls back to its creation time.
        db.exec(
            `UPDATE runs SET updated_at = COALESCE(
                strftime('%Y-%m-%dT%H:%M:%fZ', json_extract(doc, '$.updatedAt')), created_at)`,
        );
    }
    // Version 3: keys stored before have no fingerprint (NULL) and replay as before.
    if (!runColumns.some((c) => c.name === 'idempotency_fingerprint'))
        db.exec('ALTER TABLE runs ADD COLUMN idempotency_fingerprint TEXT');
    // Version 4: the filter columns, computed from each document as every write computes them.
    if (!runColumns.some((c) => c.name === 'risk_level')) {
        db.exec(`
            ALTER TABLE runs ADD COLUMN risk_level TEXT;
            ALTER TABLE runs ADD COLUMN wait_roles TEXT;
            ALTER TABLE runs ADD COLUMN wait_approved TEXT;
            ALTER TABLE runs ADD COLUMN info_open INTEGER NOT NULL DEFAULT 0;
        `);
        const fill = db.prepare(
            'UPDATE runs SET risk_level = @riskLevel, wait_roles = @waitRoles, wait_approved = @waitApproved, ' +
                'info_open = @infoOpen WHERE id = @id',
        );
        // `all`, not `iterate`: better-sqlite3 allows no write on the connection while a read is open.
        for (const row of db.prepare<[], { id: string; doc: string }>('SELECT id, doc FROM runs').all()) {
            const { riskLevel, waitRoles, waitApproved, infoOpen } = filterColumnsOf(JSON.parse(row.doc) as RunDoc);
            fill.run({ id: row.id, riskLevel, waitRoles, waitApproved, infoOpen });
        }
    }
    db.exec(`
        CREATE INDEX IF NOT EXISTS runs_by_ended ON runs (status, updated_at);
        CREATE INDEX IF NOT EXISTS link_uses_by_used_at ON link_uses (used_at);
        CREATE INDEX IF NOT EXISTS runs_by_risk ON runs (risk_level, created_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS runs_waiting ON runs (created_at DESC, id DESC) WHERE wait_roles IS NOT NULL;
        CREATE INDEX IF NOT EXISTS runs_info_open ON runs (created_at DESC, id DESC) WHERE info_open = 1;
    `);
}

export interface EmbeddedStoreOptions {
    /**
     * The audit chain's keys (adapters/audit/chainKeys.ts). Default: a key that lives only in this process (tests and
     * tools); the composition root passes the configured ring.
     */
    chainKeys?: ChainKeyLoader;
}

/** Opens (creating if needed, migrating if older) `<dataDir>/app.sqlite` and every store over it. */
export function openEmbeddedStores(dataDir: string, options: EmbeddedStoreOptions = {}): EmbeddedStores {
    mkdirSync(dataDir, { recursive: true });
    const db = new Database(join(dataDir, 'app.sqlite'));
    try {
        db.pragma('journal_mode = WAL');
        // NORMAL in WAL mode survives any process crash (kill -9); only a power loss may drop the last commits.
        db.pragma('synchronous = NORMAL');
        db.pragma('busy_timeout = 5000');
        db.transaction(() => {
            const version = db.pragma('user_version', { simple: true }) as number;
            if (version > SCHEMA_VERSION) {
                throw new Error(
                    `${join(dataDir, 'app.sqlite')} has schema version ${version}; this build knows up to ${SCHEMA_VERSION}`,
                );
            }
            db.exec(SCHEMA);
            migrate(db);
            db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }).immediate();
    } catch (e: unknown) {
        db.close();
        throw e;
    }
    const commits = new GroupCommit(db);
    return {
        runs: new SqliteRunStore(db, commits),
        audit: new SqliteAuditLog(db, commits, options.chainKeys ?? ephemeralChainKeys()),
        policies: new SqlitePolicyStore(db, commits),
        linkUses: new SqliteLinkUses(db, commits),
        outbox: new SqliteEventOutbox(db, commits),
        slots: new SqliteAdmissionSlots(db, commits),
        rateCounters: new SqliteRateCounters(db, commits),
        retention: new SqliteRetentionStore(db, commits),
        close: () => db.close(),
    };
}

/**
 * better-sqlite3 is synchronous; the ports are async. Running the work inside the executor turns a throw into a
 * rejection, so callers see one failure path either way.
 */
export function promised<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve) => resolve(work()));
}

/**
 * Group commit: every write queued in one turn of the event loop commits in one transaction (one WAL write
 * instead of one per write), each in its own savepoint so one that throws rolls back alone. A write's promise
 * settles only after its batch committed, so a caller that awaits it reads its own write.
 */
export class GroupCommit {
    private pending: { work: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
    private scheduled = false;

    constructor(private readonly db: Database.Database) {}

    run<T>(work: () => T): Promise<T> {
        return new Promise<T>((resolve, reject) => {
            this.pending.push({ work, resolve: resolve as (v: unknown) => void, reject });
            if (!this.scheduled) {
                this.scheduled = true;
                setImmediate(() => this.flush());
            }
        });
    }

    private flush(): void {
        this.scheduled = false;
        const batch = this.pending;
        this.pending = [];
        settle(batch, commitBatch(this.db, batch));
    }
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * One transaction for the whole batch. Fast path: the units run back to back. If any throws, the batch is
 * rolled back and run again with a savepoint per unit, so only the failing unit's writes are undone (units
 * are functions of the database state, so running one again after a rollback is safe).
 */
export function commitBatch(
    db: Database.Database,
    batch: readonly { work: () => unknown }[],
): Outcome[] | { failed: unknown } {
    try {
        const values = db.transaction(() => batch.map((unit) => unit.work())).immediate();
        return values.map((value) => ({ ok: true, value }));
    } catch {
        // fall through to the isolating path
    }
    const outcomes: Outcome[] = [];
    try {
        db.transaction(() => {
            for (const unit of batch) {
                try {
                    outcomes.push({ ok: true, value: db.transaction(unit.work)() });
                } catch (error: unknown) {
                    outcomes.push({ ok: false, error });
                }
            }
        }).immediate();
    } catch (error: unknown) {
        return { failed: error };
    }
    return outcomes;
}

function settle(
    batch: readonly { resolve: (v: unknown) => void; reject: (e: unknown) => void }[],
    result: Outcome[] | { failed: unknown },
): void {
    if (!Array.isArray(result)) {
        batch.forEach((unit) => unit.reject(result.failed));
        return;
    }
    batch.forEach((unit, i) => {
        const o = result[i]!;
        if (o.ok) unit.resolve(o.value);
        else unit.reject(o.error);
    });
}

function clampLimit(limit: number, max: number): number {
    return Number.isFinite(limit) ? Math.min(max, Math.max(1, Math.trunc(limit))) : max;
}

function badToken(name: string): ValidationError {
    return new ValidationError([{ path: name, message: 'is not a valid continuation token' }]);
}

// ---------------------------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------------------------

interface RunRow {
    doc: string;
    etag: number;
    change_seq: number;
}

/** The keyset position of a run in the list order (createdAt desc, id desc). */
interface RunKey {
    c: string;
    i: string;
}

class SqliteRunStore implements RunStore {
    private readonly stmt;

    constructor(
        private readonly db: Database.Database,
        private readonly commits: GroupCommit,
    ) {
        this.stmt = {
            get: db.prepare<[string], RunRow>('SELECT doc, etag, change_seq FROM runs WHERE id = ?'),
            byIdempotencyKey: db.prepare<[string, string], RunRow & { idempotency_fingerprint: string | null }>(
                `SELECT doc, etag, change_seq, idempotency_fingerprint FROM runs
                 WHERE created_by = ? AND idempotency_key = ?`,
            ),
            nextChange: db.prepare<[], { value: number }>(
                "UPDATE meta SET value = value + 1 WHERE name = 'change_seq' RETURNING value",
            ),
            insert: db.prepare(
                `INSERT INTO runs (id, created_by, idempotency_key, idempotency_fingerprint, status, team, current_stage,
                 created_at, updated_at, search, risk_level, wait_roles, wait_approved, info_open, etag, change_seq, doc)
                 VALUES (@id, @createdBy, @idempotencyKey, @idempotencyFingerprint, @status, @team, @currentStage,
                 @createdAt, @updatedAt, @search, @riskLevel, @waitRoles, @waitApproved, @infoOpen, 1, @changeSeq, @doc)`,
            ),
            update: db.prepare(
                // Only the columns a run's life changes: SQLite then leaves the creator/team/creation indexes alone.
                `UPDATE runs SET status = @status, current_stage = @currentStage, updated_at = @updatedAt,
                 search = @search, risk_level = @riskLevel, wait_roles = @waitRoles, wait_approved = @waitApproved,
                 info_open = @infoOpen, etag = etag + 1, change_seq = @changeSeq, doc = @doc
                 WHERE id = @id AND etag = @etag`,
            ),
            changes: db.prepare<[number, number], RunRow>(
                'SELECT doc, etag, change_seq FROM runs WHERE change_seq > ? ORDER BY change_seq LIMIT ?',
            ),
            putOutput: db.prepare(
                `INSERT INTO run_outputs (run_id, key, value) VALUES (?, ?, ?)
                 ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value`,
            ),
            getOutput: db.prepare<[string, string], { value: string }>(
                'SELECT value FROM run_outputs WHERE run_id = ? AND key = ?',
            ),
            ping: db.prepare<[], { ok: number }>('SELECT 1 AS ok'),
        };
    }

    create(run: RunDoc): Promise<{ run: RunDoc; created: boolean }> {
        return this.commits.run(() => {
            if (run.idempotencyKey !== undefined) {
                const same = this.stmt.byIdempotencyKey.get(run.createdBy, run.idempotencyKey);
                if (same) {
                    assertSameRequest(same.idempotency_fingerprint ?? undefined, run.idempotencyFingerprint);
                    return { run: parseRun(same), created: false };
                }
            }
            if (this.stmt.get.get(run.id)) throw new ConflictError(`Run ${run.id} already exists.`, { id: run.id });
            const columns = columnsOf(run);
            this.stmt.insert.run({ ...columns, changeSeq: this.nextChange() });
            return { run: parseRun(columns), created: true };
        });
    }

    get(id: string): Promise<RunDoc | undefined> {
        return promised(() => {
            const row = this.stmt.get.get(id);
            return row ? parseRun(row) : undefined;
        });
    }

    /**
     * SQLite serializes writers, so `mutate` runs exactly once, inside the transaction that writes its result. The
     * etag check is kept anyway (parity with Cosmos `_etag`, and a guard should anyone ever split the read and write).
     */
    update(id: string, mutate: (run: RunDoc) => RunDoc | undefined): Promise<RunDoc> {
        return this.commits.run(() => {
            const row = this.stmt.get.get(id);
            if (!row) throw new NotFoundError(`Run ${id} not found.`);
            const next = mutate(parseRun(row));
            if (next === undefined) return parseRun(row);
            if (next.id !== id) throw new Error(`RunStore.update: mutate changed the run id ${id} to ${next.id}`);
            const columns = columnsOf(next);
            const result = this.stmt.update.run({ ...columns, changeSeq: this.nextChange(), etag: row.etag });
            if (result.changes !== 1) throw new ConflictError(`Run ${id} changed concurrently.`, { id });
            return parseRun(columns);
        });
    }

    list(filter: RunFilter, limit: number, continuationToken?: string): Promise<Page<RunDoc>> {
        return promised(() => {
            const n = clampLimit(limit, MAX_RUN_PAGE);
            const { where, args } = whereOf(filter);
            if (continuationToken !== undefined) {
                const after = decodeRunKey(continuationToken);
                where.push('(created_at < ? OR (created_at = ? AND id < ?))');
                args.push(after.c, after.c, after.i);
            }
            const sql =
                `SELECT doc, etag, change_seq, created_at, id FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ` +
                'ORDER BY created_at DESC, id DESC LIMIT ?';
            const rows = this.db
                .prepare<unknown[], RunRow & { created_at: string; id: string }>(sql)
                .all(...args, n + 1);
            const more = rows.length > n;
            if (more) rows.length = n;
            const last = rows[rows.length - 1];
            return {
                items: rows.map(parseRun),
                ...(more && last ? { continuationToken: encodeToken({ c: last.created_at, i: last.id }) } : {}),
            };
        });
    }

    stateCounts(): Promise<RunStateCounts> {
        return promised(() => {
            const rows = this.db
                .prepare<[], { status: RunStatus; n: number }>('SELECT status, COUNT(*) AS n FROM runs GROUP BY status')
                .all();
            // A run awaiting approval has one open checkpoint; runs_by_status narrows the scan to those runs.
            const oldest = this.db
                .prepare<[], { at: string | null }>(
                    `SELECT MIN(json_extract(c.value, '$.openedAt')) AS at
                     FROM runs, json_each(runs.doc, '$.checkpoints') AS c
                     WHERE runs.status = 'AwaitingApproval'
                       AND json_extract(c.value, '$.status') IN ('Open', 'Escalated')`,
                )
                .get();
            return {
                byStatus: Object.fromEntries(rows.map((r) => [r.status, r.n])),
                oldestOpenedAt: oldest?.at ?? undefined,
            };
        });
    }

    count(filter: RunFilter): Promise<number> {
        return promised(() => {
            const { where, args } = whereOf(filter);
            const sql = `SELECT COUNT(*) AS n FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`;
            return this.db.prepare<unknown[], { n: number }>(sql).get(...args)!.n;
        });
    }

    changesSince(cursor: string | undefined, limit: number): Promise<{ runs: RunDoc[]; cursor: string | undefined }> {
        return promised(() => {
            if (cursor !== undefined && !/^\d{1,15}$/.test(cursor)) throw badToken('cursor');
            const rows = this.stmt.changes.all(
                cursor === undefined ? 0 : Number(cursor),
                clampLimit(limit, MAX_RUN_PAGE),
            );
            const last = rows[rows.length - 1];
            return { runs: rows.map(parseRun), cursor: last ? String(last.change_seq) : cursor };
        });
    }

    putOutput(runId: string, key: string, output: unknown): Promise<void> {
        // Group-committed like every other write: on its own, each stage output was a WAL write of its own.
        const value = JSON.stringify(output ?? null);
        return this.commits.run(() => {
            this.stmt.putOutput.run(runId, key, value);
        });
    }

    getOutput(runId: string, key: string): Promise<unknown> {
        return promised(() => {
            const row = this.stmt.getOutput.get(runId, key);
            return row ? (JSON.parse(row.value) as unknown) : undefined;
        });
    }

    ping(): Promise<void> {
        return promised(() => {
            if (this.stmt.ping.get()?.ok !== 1) throw new Error('SQLite did not answer SELECT 1');
        });
    }

    private nextChange(): number {
        const row = this.stmt.nextChange.get();
        if (!row) throw new Error("meta row 'change_seq' is missing");
        return row.value;
    }
}

function parseRun(row: Pick<RunRow, 'doc'>): RunDoc {
    return JSON.parse(row.doc) as RunDoc;
}

/** The WHERE terms (and their arguments) of a run filter, shared by `list` and `count`. */
function whereOf(filter: RunFilter): { where: string[]; args: (string | number)[] } {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const anyOf = (column: string, values: readonly string[]) => {
        // An empty list matches nothing: a caller limited to no teams sees no runs.
        where.push(values.length ? `${column} IN (${values.map(() => '?').join(', ')})` : '0');
        args.push(...values);
    };
    const equals = (column: string, value: string) => {
        where.push(`${column} = ?`);
        args.push(value);
    };
    if (filter.status) anyOf('status', filter.status);
    if (filter.teams) anyOf('team', filter.teams);
    if (filter.team !== undefined) equals('team', filter.team);
    if (filter.stage !== undefined) equals('current_stage', filter.stage);
    if (filter.createdBy !== undefined) equals('created_by', filter.createdBy);
    if (filter.since !== undefined) {
        where.push('created_at >= ?');
        args.push(isoOf(filter.since, 'since'));
    }
    if (filter.q !== undefined && filter.q !== '') {
        where.push('instr(search, ?) > 0');
        args.push(filter.q.toLowerCase());
    }
    if (filter.riskLevel) anyOf('risk_level', filter.riskLevel);
    const w = filter.waitingFor;
    if (w) {
        // domain/waiting.ts mayDecideNow, as a query: a required role, the team (or Admin), not the submitter, not approved.
        const roles = w.roles.filter(isRole);
        where.push(
            roles.length
                ? `wait_roles IS NOT NULL AND (${roles.map(() => 'instr(wait_roles, ?) > 0').join(' OR ')})`
                : '0',
        );
        args.push(...roles.map((r) => `|${r}|`));
        if (!w.roles.includes('Mesh.Admin')) anyOf('team', w.teams);
        where.push('created_by <> ?', 'NOT EXISTS (SELECT 1 FROM json_each(wait_approved) WHERE value = ?)');
        args.push(w.id, w.id);
    }
    const a = filter.answerableBy;
    if (a) {
        // domain/waiting.ts mayAnswer: the submitter, or a Developer/DataScientist of the run's team.
        const teams = answersForTeams(a);
        where.push(
            `info_open = 1 AND (created_by = ?${teams.length ? ` OR team IN (${teams.map(() => '?').join(', ')})` : ''})`,
        );
        args.push(a.id, ...teams);
    }
    return { where, args };
}

/** The filter columns of a run (schema version 4). */
function filterColumnsOf(run: RunDoc) {
    const index = waitIndexOf(run);
    return {
        riskLevel: run.metadata.riskLevel ?? null,
        waitRoles: index.waiting ? `|${index.waiting.roles.join('|')}|` : null,
        waitApproved: index.waiting ? JSON.stringify(index.waiting.approved) : null,
        infoOpen: index.infoOpen ? 1 : 0,
    };
}

/** The indexed columns of a run, derived from its document each time it is written. */
function columnsOf(run: RunDoc) {
    const title = run.metadata.title ?? '';
    return {
        ...filterColumnsOf(run),
        id: run.id,
        createdBy: run.createdBy,
        idempotencyKey: run.idempotencyKey ?? null,
        idempotencyFingerprint: run.idempotencyKey !== undefined ? (run.idempotencyFingerprint ?? null) : null,
        status: run.status,
        team: run.metadata.team,
        currentStage: run.currentStage,
        createdAt: isoOf(run.createdAt, 'createdAt'),
        updatedAt: isoOf(run.updatedAt, 'updatedAt'),
        // `q` is a case-insensitive substring of id, title or team; JS lower-cases beyond ASCII, SQLite's lower() does not.
        search: `${run.id}\n${title}\n${run.metadata.team}`.toLowerCase(),
        doc: JSON.stringify(run),
    };
}

/** Times are compared as text, so every one is stored and queried in one form: ISO 8601 UTC with milliseconds. */
function isoOf(time: string, field: string): string {
    const ms = Date.parse(time);
    if (Number.isNaN(ms)) throw new ValidationError([{ path: field, message: 'must be an ISO 8601 date-time' }]);
    return new Date(ms).toISOString();
}

function encodeToken(key: RunKey): string {
    return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

function decodeRunKey(token: string): RunKey {
    try {
        const key = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Partial<RunKey> | null;
        if (typeof key?.c === 'string' && typeof key.i === 'string') return { c: key.c, i: key.i };
    } catch (_e: unknown) {
        // Not JSON: reported below like any other malformed token.
    }
    throw badToken('continuationToken');
}

// ---------------------------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------------------------

class SqliteAuditLog implements AuditLog {
    private readonly stmt;

    constructor(
        db: Database.Database,
        private readonly commits: GroupCommit,
        private readonly chainKeys: ChainKeyLoader,
    ) {
        this.stmt = {
            byEventId: db.prepare<[string, string], { record: string }>(
                'SELECT record FROM audit WHERE run_id = ? AND event_id = ?',
            ),
            last: db.prepare<[string], { record: string }>(
                'SELECT record FROM audit WHERE run_id = ? ORDER BY seq DESC LIMIT 1',
            ),
            insert: db.prepare('INSERT INTO audit (run_id, seq, event_id, at, record) VALUES (?, ?, ?, ?, ?)'),
            enqueue: db.prepare('INSERT INTO outbox (id, run_id, seq) VALUES (?, ?, ?)'),
            latest: db.prepare<[string, number], { record: string }>(
                'SELECT record FROM audit WHERE run_id = ? ORDER BY seq DESC LIMIT ?',
            ),
            page: db.prepare<[string, number, number], { record: string; seq: number }>(
                'SELECT record, seq FROM audit WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?',
            ),
        };
    }

    /**
     * Masks PII in `details` first, so what is hashed is what is stored (and what readers see). A SPEC event's record
     * also enters the outbox, in the same transaction: the record and its event are durable together or not at all.
     * The chain key is loaded before the write is queued, so the group-committed unit stays synchronous.
     */
    async append(event: NewAuditEvent): Promise<AuditRecord> {
        const key = (await this.chainKeys()).current;
        return this.commits.run(() => {
            const stored = this.stmt.byEventId.get(event.runId, event.eventId);
            if (stored) return parseRecord(stored);
            const last = this.stmt.last.get(event.runId);
            const masked = event.details === undefined ? event : { ...event, details: maskPii(event.details) };
            const record = chainNext(last ? parseRecord(last) : undefined, masked, key);
            this.stmt.insert.run(record.runId, record.seq, record.eventId, record.at, JSON.stringify(record));
            if (isPublished(record.type))
                this.stmt.enqueue.run(eventIdOf(record.runId, record.seq), record.runId, record.seq);
            return record;
        });
    }

    list(runId: string, limit: number, continuationToken?: string): Promise<Page<AuditRecord>> {
        return promised(() => this.page(runId, clampLimit(limit, MAX_AUDIT_PAGE), continuationToken));
    }

    latest(runId: string, limit: number): Promise<AuditRecord[]> {
        return promised(() =>
            this.stmt.latest.all(runId, clampLimit(limit, MAX_AUDIT_PAGE)).map(parseRecord).reverse(),
        );
    }

    all(runId: string): AsyncIterable<AuditRecord> {
        return allRecords((id, n, token) => this.list(id, n, token), runId, MAX_AUDIT_PAGE);
    }

    private page(runId: string, n: number, continuationToken: string | undefined): Page<AuditRecord> {
        if (continuationToken !== undefined && !/^\d{1,15}$/.test(continuationToken)) {
            throw badToken('continuationToken');
        }
        const rows = this.stmt.page.all(runId, continuationToken === undefined ? 0 : Number(continuationToken), n + 1);
        const more = rows.length > n;
        if (more) rows.length = n;
        const last = rows[rows.length - 1];
        return {
            items: rows.map(parseRecord),
            ...(more && last ? { continuationToken: String(last.seq) } : {}),
        };
    }
}

function parseRecord(row: { record: string }): AuditRecord {
    return JSON.parse(row.record) as AuditRecord;
}

// ---------------------------------------------------------------------------------------------------------------
// Event outbox
// ---------------------------------------------------------------------------------------------------------------

/** Cap on one `pending` read. */
export const MAX_OUTBOX_PAGE = 1000;

class SqliteEventOutbox implements EventOutbox {
    private readonly stmt;

    constructor(
        db: Database.Database,
        private readonly commits: GroupCommit,
    ) {
        this.stmt = {
            pending: db.prepare<[number], { id: string; run_id: string; seq: number; record: string }>(
                `SELECT o.id, o.run_id, o.seq, a.record FROM outbox o
                 JOIN audit a ON a.run_id = o.run_id AND a.seq = o.seq
                 ORDER BY o.pos LIMIT ?`,
            ),
            remove: db.prepare<[string]>('DELETE FROM outbox WHERE id = ?'),
            count: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM outbox'),
        };
    }

    pending(limit: number): Promise<OutboxEntry[]> {
        return promised(() =>
            this.stmt.pending.all(clampLimit(limit, MAX_OUTBOX_PAGE)).map((row) => ({
                id: row.id,
                runId: row.run_id,
                seq: row.seq,
                record: parseRecord(row),
            })),
        );
    }

    pendingCount(): Promise<number> {
        return promised(() => this.stmt.count.get()!.n);
    }

    markPublished(ids: readonly string[]): Promise<void> {
        if (!ids.length) return Promise.resolve();
        return this.commits.run(() => {
            for (const id of ids) this.stmt.remove.run(id);
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Policies: every version is kept, so the history of the policy can be read back.
// ---------------------------------------------------------------------------------------------------------------

class SqlitePolicyStore implements PolicyStore {
    private readonly stmt;

    constructor(
        db: Database.Database,
        private readonly commits: GroupCommit,
    ) {
        this.stmt = {
            latest: db.prepare<[], { version: number; policy: string; updated_at: string; updated_by: string }>(
                'SELECT version, policy, updated_at, updated_by FROM policies ORDER BY version DESC LIMIT 1',
            ),
            insert: db.prepare('INSERT INTO policies (version, policy, updated_at, updated_by) VALUES (?, ?, ?, ?)'),
        };
    }

    get(): Promise<VersionedPolicy> {
        return promised(() => this.current());
    }

    put(policy: CheckpointPolicy, expectedVersion: number, actor: string, at: string): Promise<VersionedPolicy> {
        return this.commits.run(() => {
            const current = this.current().version;
            if (expectedVersion !== current) {
                throw new ConflictError(`The policy is at version ${current}, not ${expectedVersion}.`, {
                    expectedVersion,
                    currentVersion: current,
                });
            }
            const body = policyBody(policy);
            const saved: VersionedPolicy = { ...body, version: current + 1, updatedAt: at, updatedBy: actor };
            this.stmt.insert.run(saved.version, JSON.stringify(body), at, actor);
            return structuredClone(saved);
        });
    }

    private current(): VersionedPolicy {
        const row = this.stmt.latest.get();
        if (!row)
            return {
                ...structuredClone(DEFAULT_POLICY),
                version: 0,
                updatedAt: '1970-01-01T00:00:00.000Z',
                updatedBy: 'system',
            };
        const body = JSON.parse(row.policy) as CheckpointPolicy;
        return { ...body, version: row.version, updatedAt: row.updated_at, updatedBy: row.updated_by };
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Approval link uses: one row per used link. The primary key decides who wins: of any number of uses of one link,
// from any process, exactly one inserts the row.
// ---------------------------------------------------------------------------------------------------------------

class SqliteLinkUses implements LinkUses {
    private readonly stmt;

    constructor(
        db: Database.Database,
        private readonly commits: GroupCommit,
    ) {
        this.stmt = {
            insert: db.prepare<[string, string]>('INSERT OR IGNORE INTO link_uses (jti, used_at) VALUES (?, ?)'),
            get: db.prepare<[string], { ok: number }>('SELECT 1 AS ok FROM link_uses WHERE jti = ?'),
        };
    }

    use(jti: string, at: string): Promise<boolean> {
        return this.commits.run(() => this.stmt.insert.run(jti, isoOf(at, 'at')).changes === 1);
    }

    used(jti: string): Promise<boolean> {
        return promised(() => this.stmt.get.get(jti) !== undefined);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Admission slots: one row per holder. Check and insert run in one write transaction, and SQLite serializes those
// across connections, so no two acquirers (of any process) both see the last free slot.
// ---------------------------------------------------------------------------------------------------------------

class SqliteAdmissionSlots implements AdmissionSlots {
    private readonly stmt;

    constructor(
        db: Database.Database,
        private readonly commits: GroupCommit,
    ) {
        this.stmt = {
            holds: db.prepare<[string], { ok: number }>('SELECT 1 AS ok FROM admission_slots WHERE run_id = ?'),
            held: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM admission_slots'),
            holders: db.prepare<[], { run_id: string }>('SELECT run_id FROM admission_slots ORDER BY acquired_at'),
            insert: db.prepare<[string, string]>('INSERT INTO admission_slots (run_id, acquired_at) VALUES (?, ?)'),
            remove: db.prepare<[string]>('DELETE FROM admission_slots WHERE run_id = ?'),
        };
    }

    acquire(runId: string, capacity: number): Promise<boolean> {
        return this.commits.run(() => {
            if (this.stmt.holds.get(runId)) return true;
            if (this.heldNow() >= capacity) return false;
            this.stmt.insert.run(runId, new Date().toISOString());
            return true;
        });
    }

    release(runId: string): Promise<void> {
        return this.commits.run(() => {
            this.stmt.remove.run(runId);
        });
    }

    held(): Promise<number> {
        return promised(() => this.heldNow());
    }

    holders(): Promise<string[]> {
        return promised(() => this.stmt.holders.all().map((r) => r.run_id));
    }

    private heldNow(): number {
        return this.stmt.held.get()?.n ?? 0;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Rate counters: one UPSERT per increment, returning the count it wrote.
// ---------------------------------------------------------------------------------------------------------------

class SqliteRateCounters implements RateCounters {
    private readonly stmt;

    constructor(
        db: Database.Database,
        private readonly commits: GroupCommit,
    ) {
        this.stmt = {
            increment: db.prepare<[string, number, number], { count: number }>(
                `INSERT INTO rate_windows (key, window_start, window_ms, count) VALUES (?, ?, ?, 1)
                 ON CONFLICT (key, window_start) DO UPDATE
                 SET count = count + 1, window_ms = max(window_ms, excluded.window_ms)
                 RETURNING count`,
            ),
            // A key's earlier windows are over once a later one starts: forgotten at once, so the table holds about
            // one row per active key (the retention purge catches keys that went quiet).
            forget: db.prepare<[string, number]>('DELETE FROM rate_windows WHERE key = ? AND window_start < ?'),
        };
    }

    increment(key: string, windowStart: number, windowMs: number): Promise<number> {
        if (!Number.isSafeInteger(windowStart) || !Number.isSafeInteger(windowMs) || windowMs <= 0) {
            return Promise.reject(
                new ValidationError([
                    { path: 'window', message: 'windowStart and windowMs must be whole ms, windowMs > 0' },
                ]),
            );
        }
        return this.commits.run(() => {
            this.stmt.forget.run(key, windowStart);
            const row = this.stmt.increment.get(key, windowStart, windowMs);
            if (!row) throw new Error('rate_windows upsert returned no row');
            return row.count;
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Retention: what ended before the cutoff, and removing it. A run goes whole (row, outputs, audit trail, outbox
// entries) in one transaction, so a crash never leaves half a run.
// ---------------------------------------------------------------------------------------------------------------

/** Cap on one `expiredRuns` read. */
export const MAX_RETENTION_PAGE = 1000;

const TERMINAL = [...TERMINAL_STATUSES];

class SqliteRetentionStore implements RetentionStore {
    private readonly stmt;

    constructor(
        db: Database.Database,
        private readonly commits: GroupCommit,
    ) {
        this.stmt = {
            expired: db.prepare<unknown[], { id: string }>(
                `SELECT id FROM runs WHERE status IN (${TERMINAL.map(() => '?').join(', ')}) AND updated_at < ?
                 ORDER BY updated_at, id LIMIT ?`,
            ),
            run: db.prepare<[string]>('DELETE FROM runs WHERE id = ?'),
            outputs: db.prepare<[string]>('DELETE FROM run_outputs WHERE run_id = ?'),
            // Retention is the only deleter of audit rows (see the header).
            audit: db.prepare<[string]>('DELETE FROM audit WHERE run_id = ?'),
            outbox: db.prepare<[string]>('DELETE FROM outbox WHERE run_id = ?'),
            slot: db.prepare<[string]>('DELETE FROM admission_slots WHERE run_id = ?'),
            linkUses: db.prepare<[string]>('DELETE FROM link_uses WHERE used_at < ?'),
            windows: db.prepare<[number]>('DELETE FROM rate_windows WHERE window_start + window_ms < ?'),
        };
    }

    expiredRuns(before: string, limit: number): Promise<string[]> {
        return promised(() =>
            this.stmt.expired
                .all(...TERMINAL, isoOf(before, 'before'), clampLimit(limit, MAX_RETENTION_PAGE))
                .map((row) => row.id),
        );
    }

    purgeRun(runId: string): Promise<PurgeCounts> {
        return this.commits.run(() => {
            // The outbox rows go first: they name audit rows (a dispatcher joins them).
            this.stmt.outbox.run(runId);
            this.stmt.slot.run(runId);
            return {
                runs: this.stmt.run.run(runId).changes,
                outputs: this.stmt.outputs.run(runId).changes,
                auditRecords: this.stmt.audit.run(runId).changes,
            };
        });
    }

    purgeAged(before: string): Promise<number> {
        return this.commits.run(() => {
            const iso = isoOf(before, 'before');
            return this.stmt.linkUses.run(iso).changes + this.stmt.windows.run(Date.parse(iso)).changes;
        });
    }
}
