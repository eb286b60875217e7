import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { openEmbeddedStores } from '../../adapters/embedded/sqliteStores';
import { verifyChain } from '../../domain/audit';
import { RunDoc } from '../../domain/run';
import { TEST_KEYS } from '../support/chainKeys';
import { describeScaleContract } from './scaleContract';
import { collect, describeStoreContract, makeEvent, makeRun } from './storeContract';

const dirs: string[] = [];

function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'mesh-stores-'));
    dirs.push(dir);
    return dir;
}

afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describeStoreContract('embedded SQLite', () => Promise.resolve(openEmbeddedStores(tempDir())));
describeScaleContract('embedded SQLite', () => Promise.resolve(openEmbeddedStores(tempDir())));

/** The schema as version 1 of the embedded store wrote it (before runs.updated_at, slots and rate windows). */
const V1_SCHEMA = `
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('change_seq', 0);
CREATE TABLE runs (
    id TEXT PRIMARY KEY, created_by TEXT NOT NULL, idempotency_key TEXT, status TEXT NOT NULL, team TEXT NOT NULL,
    current_stage TEXT, created_at TEXT NOT NULL, search TEXT NOT NULL, etag INTEGER NOT NULL,
    change_seq INTEGER NOT NULL, doc TEXT NOT NULL
);
CREATE UNIQUE INDEX runs_by_idempotency_key ON runs (created_by, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX runs_by_change ON runs (change_seq);
CREATE INDEX runs_by_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_by_team ON runs (team, created_at DESC, id DESC);
CREATE INDEX runs_by_status ON runs (status, created_at DESC, id DESC);
CREATE INDEX runs_by_creator ON runs (created_by, created_at DESC, id DESC);
CREATE TABLE run_outputs (run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key))
    WITHOUT ROWID;
CREATE TABLE audit (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL, at TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (run_id, seq), UNIQUE (run_id, event_id)
) WITHOUT ROWID;
CREATE TRIGGER audit_is_append_only BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TABLE outbox (pos INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, run_id TEXT NOT NULL,
    seq INTEGER NOT NULL);
CREATE TABLE policies (version INTEGER PRIMARY KEY, policy TEXT NOT NULL, updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL);
CREATE TABLE link_uses (jti TEXT PRIMARY KEY, used_at TEXT NOT NULL) WITHOUT ROWID;
PRAGMA user_version = 1;
`;

/** A version 1 database at `<dir>/app.sqlite` holding the given runs, as version 1 would have written them. */
function writeV1Database(dir: string, runs: RunDoc[]): void {
    const db = new Database(join(dir, 'app.sqlite'));
    try {
        db.pragma('journal_mode = WAL');
        db.exec(V1_SCHEMA);
        const insert = db.prepare(
            `INSERT INTO runs (id, created_by, idempotency_key, status, team, current_stage, created_at, search, etag,
             change_seq, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
        );
        runs.forEach((run, i) =>
            insert.run(
                run.id,
                run.createdBy,
                run.idempotencyKey ?? null,
                run.status,
                run.metadata.team,
                run.currentStage,
                run.createdAt,
                `${run.id}\n\n${run.metadata.team}`,
                i + 1,
                JSON.stringify(run),
            ),
        );
        db.prepare("UPDATE meta SET value = ? WHERE name = 'change_seq'").run(runs.length);
    } finally {
        db.close();
    }
}

describe('embedded SQLite stores', () => {
    it('opens <dataDir>/app.sqlite in WAL mode', () => {
        const dir = tempDir();
        openEmbeddedStores(dir).close();
        const db = new Database(join(dir, 'app.sqlite'), { readonly: true });
        try {
            expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
        } finally {
            db.close();
        }
    });

    it('keeps everything across a close and reopen, and the chain continues', async () => {
        const dir = tempDir();
        const first = openEmbeddedStores(dir);
        await first.runs.create(makeRun('r1', { idempotencyKey: 'k' }));
        await first.runs.putOutput('r1', 'generation.0', { ok: true });
        for (let i = 1; i <= 3; i++) await first.audit.append(makeEvent('r1', i));
        await first.policies.put({ rules: [] }, 0, 'carol', '2025-03-01T10:00:00.000Z');
        const { cursor } = await first.runs.changesSince(undefined, 10);
        first.close();

        const again = openEmbeddedStores(dir);
        try {
            await expect(again.runs.create(makeRun('r9', { idempotencyKey: 'k' }))).resolves.toMatchObject({
                created: false,
                run: { id: 'r1' },
            });
            await expect(again.runs.getOutput('r1', 'generation.0')).resolves.toEqual({ ok: true });
            await expect(again.audit.append(makeEvent('r1', 4))).resolves.toMatchObject({ seq: 4 });
            expect(verifyChain(await collect(again.audit.all('r1')), TEST_KEYS).verified).toBe(true);
            await expect(again.policies.get()).resolves.toMatchObject({ version: 1, rules: [] });
            await again.runs.update('r1', (r) => ({ ...r, status: 'Running' }));
            const after = await again.runs.changesSince(cursor, 10);
            expect(after.runs.map((r) => r.id)).toEqual(['r1']);
            expect(Number(after.cursor)).toBeGreaterThan(Number(cursor));
        } finally {
            again.close();
        }
    });

    it('refuses UPDATE of audit rows, and verifyChain names a row edited behind the trigger', async () => {
        const dir = tempDir();
        const stores = openEmbeddedStores(dir);
        try {
            for (let i = 1; i <= 5; i++) await stores.audit.append(makeEvent('run-t', i));
            expect(verifyChain(await collect(stores.audit.all('run-t')), TEST_KEYS).verified).toBe(true);

            // A second connection, as someone with the file would have.
            const db = new Database(join(dir, 'app.sqlite'));
            try {
                const tamper = db.prepare(
                    "UPDATE audit SET record = json_set(record, '$.actor', 'mallory') WHERE run_id = ? AND seq = ?",
                );
                expect(() => tamper.run('run-t', 3)).toThrow(/append-only/);
                db.exec('DROP TRIGGER audit_is_append_only');
                expect(tamper.run('run-t', 3).changes).toBe(1);
            } finally {
                db.close();
            }

            const records = await collect(stores.audit.all('run-t'));
            expect(records[2]!.actor).toBe('mallory');
            expect(verifyChain(records, TEST_KEYS)).toMatchObject({
                verified: false,
                brokenAt: { seq: 3, reason: 'hash mismatch' },
            });
        } finally {
            stores.close();
        }
    });

    it('names the record after a deleted one as a seq gap', async () => {
        const dir = tempDir();
        const stores = openEmbeddedStores(dir);
        try {
            for (let i = 1; i <= 5; i++) await stores.audit.append(makeEvent('run-d', i));
            const db = new Database(join(dir, 'app.sqlite'));
            try {
                db.prepare('DELETE FROM audit WHERE run_id = ? AND seq = 4').run('run-d');
            } finally {
                db.close();
            }
            expect(verifyChain(await collect(stores.audit.all('run-d')), TEST_KEYS).brokenAt).toEqual({
                seq: 5,
                reason: 'seq gap: expected 4',
            });
        } finally {
            stores.close();
        }
    });

    it('has no statement that updates audit rows, and deletes them only in retention', () => {
        const source = readFileSync(join(__dirname, '../../adapters/embedded/sqliteStores.ts'), 'utf8');
        expect(source).not.toMatch(/UPDATE\s+audit\b/i);
        expect(source).not.toMatch(/(REPLACE|UPSERT)\s+INTO\s+audit\b/i);
        expect(source).not.toMatch(/INSERT\s+OR\s+REPLACE\s+INTO\s+audit\b/i);
        // The one DELETE purges a run's whole trail, in the retention store.
        expect(source.match(/DELETE\s+FROM\s+audit\b/gi)).toHaveLength(1);
        const retention = source.slice(source.indexOf('class SqliteRetentionStore'));
        expect(retention).toMatch(/DELETE\s+FROM\s+audit\b/i);
    });

    it('migrates a version 1 database in place, keeping its data', async () => {
        const dir = tempDir();
        const running = makeRun('v1-run', {
            status: 'Running',
            idempotencyKey: 'k-v1',
            updatedAt: '2025-03-02T12:00:00+02:00',
        });
        const ended = makeRun('v1-done', { status: 'Completed', updatedAt: '2025-03-03T12:00:00+02:00' });
        const cp = 'v1-wait.0.taste.before.0';
        const waiting = makeRun(
            'v1-wait',
            {
                status: 'AwaitingApproval',
                nextAction: {
                    type: 'approval',
                    checkpointId: cp,
                    stage: 'taste',
                    position: 'before',
                    requiredRoles: ['Mesh.Approver'],
                    deadline: '2025-03-02T10:00:00.000Z',
                },
                checkpoints: [
                    {
                        checkpointId: cp,
                        key: 'taste.before.0',
                        iteration: 0,
                        stage: 'taste',
                        position: 'before',
                        requiredRoles: ['Mesh.Approver'],
                        approvals: 2,
                        timeoutMs: 1000,
                        onTimeout: 'reject',
                        escalateTo: [],
                        channels: [],
                        rule: 'r',
                        status: 'Open',
                        openedAt: '2025-03-01T10:00:00.000Z',
                        deadline: '2025-03-02T10:00:00.000Z',
                        escalated: false,
                        decisions: [
                            { actorId: 'amir', decision: 'approve', channel: 'api', at: '2025-03-01T10:00:00.000Z' },
                        ],
                    },
                ],
            },
            { riskLevel: 'high' },
        );
        writeV1Database(dir, [running, ended, waiting]);

        const stores = openEmbeddedStores(dir);
        try {
            await expect(stores.runs.get('v1-run')).resolves.toEqual(running);
            // updated_at was backfilled (and normalized to UTC) from each document.
            await expect(stores.retention.expiredRuns('2025-04-01T00:00:00.000Z', 10)).resolves.toEqual(['v1-done']);
            await expect(stores.retention.expiredRuns('2025-03-03T10:00:00.001Z', 10)).resolves.toEqual(['v1-done']);
            await expect(stores.retention.expiredRuns('2025-03-03T10:00:00.000Z', 10)).resolves.toEqual([]);
            await stores.runs.update('v1-run', (r) => ({ ...r, status: 'Completed' }));
            await expect(stores.retention.expiredRuns('2025-04-01T00:00:00.000Z', 10)).resolves.toEqual([
                'v1-run',
                'v1-done',
            ]);
            await expect(stores.retention.expiredRuns('2025-03-02T10:00:00.001Z', 10)).resolves.toEqual(['v1-run']);
            // A key stored without a fingerprint replays whatever the retry's fingerprint.
            await expect(
                stores.runs.create(
                    makeRun('other', { idempotencyKey: 'k-v1', idempotencyFingerprint: 'f'.repeat(64) }),
                ),
            ).resolves.toMatchObject({ created: false, run: { id: 'v1-run' } });
            // Version 4's filter columns were filled in from each document.
            const approver = (id: string) => ({ id, roles: ['Mesh.Approver' as const], teams: ['alpha'] });
            await expect(stores.runs.count({ riskLevel: ['high'] })).resolves.toBe(1);
            expect((await stores.runs.list({ waitingFor: approver('ava') }, 10)).items.map((r) => r.id)).toEqual([
                'v1-wait',
            ]);
            await expect(stores.runs.count({ waitingFor: approver('amir') })).resolves.toBe(0);
            const { runs } = await stores.runs.changesSince('3', 10);
            expect(runs.map((r) => r.id)).toEqual(['v1-run']);
            await expect(stores.slots.acquire('v1-run', 1)).resolves.toBe(true);
            await expect(stores.rateCounters.increment('k', 0, 1000)).resolves.toBe(1);
        } finally {
            stores.close();
        }

        // Opening again changes nothing: the migration is idempotent.
        const again = openEmbeddedStores(dir);
        try {
            await expect(again.slots.held()).resolves.toBe(1);
            await expect(again.retention.expiredRuns('2025-04-01T00:00:00.000Z', 10)).resolves.toEqual([
                'v1-run',
                'v1-done',
            ]);
        } finally {
            again.close();
        }
        const db = new Database(join(dir, 'app.sqlite'), { readonly: true });
        try {
            expect(db.pragma('user_version', { simple: true })).toBe(4);
        } finally {
            db.close();
        }
    });

    it('refuses a database written by a newer schema version', () => {
        const dir = tempDir();
        const db = new Database(join(dir, 'app.sqlite'));
        db.pragma('user_version = 99');
        db.close();
        expect(() => openEmbeddedStores(dir)).toThrow(/schema version 99/);
    });
});
