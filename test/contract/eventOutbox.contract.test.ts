/**
 * The embedded store's event outbox (EventOutbox): an entry per audit record of a SPEC event, written in the same
 * transaction as the record, read back in recording order, forgotten once marked published.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { openEmbeddedStores } from '../../adapters/embedded/sqliteStores';
import { EVENT_TYPES, POLICY_CHAIN } from '../../domain/audit';
import { makeEvent } from './storeContract';

const dirs: string[] = [];
function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'mesh-outbox-'));
    dirs.push(dir);
    return dir;
}
afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('embedded SQLite event outbox', () => {
    it('holds one entry per SPEC event record, keyed runId:seq, with the stored record', async () => {
        const s = openEmbeddedStores(tempDir());
        try {
            const records = [];
            for (const [i, type] of EVENT_TYPES.entries())
                records.push(await s.audit.append(makeEvent('r1', i + 1, { type })));
            const pending = await s.outbox.pending(100);
            expect(pending.map((e) => e.id)).toEqual(records.map((r) => `r1:${r.seq}`));
            expect(pending.map((e) => e.record)).toEqual(records);
            expect(pending[0]).toMatchObject({ runId: 'r1', seq: 1 });
        } finally {
            s.close();
        }
    });

    it('leaves policy changes out: they are audited, not published', async () => {
        const s = openEmbeddedStores(tempDir());
        try {
            await s.audit.append(makeEvent(POLICY_CHAIN, 1, { type: 'policy.updated', stage: undefined }));
            expect(await s.outbox.pending(10)).toEqual([]);
        } finally {
            s.close();
        }
    });

    it('adds nothing for an append repeated with the same eventId', async () => {
        const s = openEmbeddedStores(tempDir());
        try {
            await s.audit.append(makeEvent('r1', 1));
            await s.audit.append(makeEvent('r1', 1));
            await Promise.all([s.audit.append(makeEvent('r1', 2)), s.audit.append(makeEvent('r1', 2))]);
            expect((await s.outbox.pending(10)).map((e) => e.id)).toEqual(['r1:1', 'r1:2']);
        } finally {
            s.close();
        }
    });

    it('returns entries in recording order (so seq order per run) under concurrent appends, a page at a time', async () => {
        const s = openEmbeddedStores(tempDir());
        try {
            const writes = [];
            for (let i = 1; i <= 20; i++)
                for (const run of ['a', 'b', 'c']) writes.push(s.audit.append(makeEvent(run, i)));
            await Promise.all(writes);
            const all = await s.outbox.pending(1000);
            expect(all).toHaveLength(60);
            for (const run of ['a', 'b', 'c'])
                expect(all.filter((e) => e.runId === run).map((e) => e.seq)).toEqual(
                    Array.from({ length: 20 }, (_, i) => i + 1),
                );
            expect(await s.outbox.pending(7)).toEqual(all.slice(0, 7));
        } finally {
            s.close();
        }
    });

    it('forgets what is marked published (idempotently) and keeps the rest across a reopen', async () => {
        const dir = tempDir();
        const s = openEmbeddedStores(dir);
        for (let i = 1; i <= 4; i++) await s.audit.append(makeEvent('r1', i));
        await s.outbox.markPublished(['r1:1', 'r1:2']);
        await s.outbox.markPublished(['r1:1', 'nope:9']);
        await s.outbox.markPublished([]);
        s.close();
        const again = openEmbeddedStores(dir);
        try {
            expect((await again.outbox.pending(10)).map((e) => e.id)).toEqual(['r1:3', 'r1:4']);
            // Audit records stay whatever the outbox does.
            expect((await again.audit.list('r1', 10)).items).toHaveLength(4);
        } finally {
            again.close();
        }
    });

    it('writes the entry in the same transaction as the record: when one cannot be written, neither is', async () => {
        const dir = tempDir();
        const s = openEmbeddedStores(dir);
        try {
            await s.audit.append(makeEvent('r1', 1));
            // Another writer took the outbox key the next record would get, so its outbox insert fails.
            const other = new Database(join(dir, 'app.sqlite'));
            other.prepare("INSERT INTO outbox (id, run_id, seq) VALUES ('r1:2', 'x', 0)").run();
            other.close();
            // (Matched by code: better-sqlite3's error class may come from another jest module registry.)
            await expect(s.audit.append(makeEvent('r1', 2))).rejects.toMatchObject({
                code: 'SQLITE_CONSTRAINT_UNIQUE',
            });
            expect((await s.audit.list('r1', 10)).items.map((r) => r.seq)).toEqual([1]);
        } finally {
            s.close();
        }
    });
});
