import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { openEmbeddedStores } from '../../adapters/embedded/sqliteStores';
import { verifyChain } from '../../domain/audit';
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
            expect(verifyChain(await collect(again.audit.all('r1'))).verified).toBe(true);
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
            expect(verifyChain(await collect(stores.audit.all('run-t'))).verified).toBe(true);

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
            expect(verifyChain(records)).toMatchObject({
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
            expect(verifyChain(await collect(stores.audit.all('run-d'))).brokenAt).toEqual({
                seq: 5,
                reason: 'seq gap: expected 4',
            });
        } finally {
            stores.close();
        }
    });

    it('has no statement that updates or deletes audit rows', () => {
        const source = readFileSync(join(__dirname, '../../adapters/embedded/sqliteStores.ts'), 'utf8');
        expect(source).not.toMatch(/UPDATE\s+audit\b/i);
        expect(source).not.toMatch(/DELETE\s+FROM\s+audit\b/i);
        expect(source).not.toMatch(/(REPLACE|UPSERT)\s+INTO\s+audit\b/i);
        expect(source).not.toMatch(/INSERT\s+OR\s+REPLACE\s+INTO\s+audit\b/i);
    });
});
