/**
 * The embedded store's event outbox: the EventOutbox contract (storeContract.ts; the Cosmos DB adapter runs it in
 * cosmosStores.contract.test.ts), plus what only SQLite promises: the entry is written in the same transaction as its
 * audit record, and it survives a reopen.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { openEmbeddedStores } from '../../adapters/embedded/sqliteStores';
import { describeEventOutboxContract, makeEvent } from './storeContract';

const dirs: string[] = [];
function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'mesh-outbox-'));
    dirs.push(dir);
    return dir;
}
afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describeEventOutboxContract('embedded SQLite', () => Promise.resolve(openEmbeddedStores(tempDir())));

describe('embedded SQLite event outbox', () => {
    it('keeps unpublished entries across a reopen', async () => {
        const dir = tempDir();
        const s = openEmbeddedStores(dir);
        for (let i = 1; i <= 4; i++) await s.audit.append(makeEvent('r1', i));
        await s.outbox.markPublished(['r1:1', 'r1:2']);
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
