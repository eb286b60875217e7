/**
 * The ChainAnchors contract (domain/ports.ts), run against the local anchor store (SQLite under MESH_KEYS_DIR) and the
 * Azure append-blob store (against Azurite).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { anchorBlobName, BlobChainAnchors, headOf } from '../../adapters/audit/blobAnchors';
import { ANCHOR_DB_FILE, SqliteChainAnchors } from '../../adapters/audit/sqliteAnchors';
import type { ChainAnchors } from '../../domain/ports';
import { type Azurite, startAzurite } from '../support/azurite';

jest.setTimeout(60_000);

const h = (n: number, c = 'a'): string => c.repeat(63) + String(n % 10);

function describeAnchorContract(name: string, open: () => ChainAnchors | Promise<ChainAnchors>): void {
    describe(`ChainAnchors contract: ${name}`, () => {
        let anchors: ChainAnchors;
        let run = 0;
        const runId = (): string => `run-${name.replace(/\W/g, '')}-${++run}`;
        beforeEach(async () => {
            anchors = await open();
        });

        it('has no head for a run never anchored', async () => {
            expect(await anchors.head(runId())).toBeUndefined();
        });

        it('moves the head forward with each anchored seq', async () => {
            const id = runId();
            await anchors.record(id, 1, h(1));
            expect(await anchors.head(id)).toEqual({ seq: 1, hash: h(1) });
            await anchors.record(id, 2, h(2));
            await anchors.record(id, 3, h(3));
            expect(await anchors.head(id)).toEqual({ seq: 3, hash: h(3) });
        });

        it('never moves the head back, and keeps the first hash anchored for a seq', async () => {
            const id = runId();
            await anchors.record(id, 2, h(2));
            await anchors.record(id, 1, h(1));
            expect(await anchors.head(id)).toEqual({ seq: 2, hash: h(2) });
            await anchors.record(id, 2, h(2, 'b'));
            expect(await anchors.head(id)).toEqual({ seq: 2, hash: h(2) });
        });

        it('is idempotent, and takes concurrent anchors of one run', async () => {
            const id = runId();
            await Promise.all([1, 2, 3, 4, 5, 3, 2].map((n) => anchors.record(id, n, h(n))));
            expect(await anchors.head(id)).toEqual({ seq: 5, hash: h(5) });
        });

        it('keeps runs apart, system chains and odd ids included', async () => {
            const a = runId();
            const odd = `${runId()}/../ü ${'x'.repeat(10)}`;
            await anchors.record(a, 7, h(7));
            await anchors.record('_policies', 1, h(1, 'c'));
            await anchors.record(odd, 4, h(4));
            expect(await anchors.head(a)).toEqual({ seq: 7, hash: h(7) });
            expect(await anchors.head(odd)).toEqual({ seq: 4, hash: h(4) });
            expect((await anchors.head('_policies'))?.seq).toBeGreaterThanOrEqual(1);
        });
    });
}

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('local anchor store', () => {
    let dir: string;
    let store: SqliteChainAnchors | undefined;
    beforeAll(() => {
        dir = mkdtempSync(join(tmpdir(), 'mesh-anchors-'));
        dirs.push(dir);
    });
    afterAll(() => store?.close());

    describeAnchorContract('local SQLite', () => (store ??= new SqliteChainAnchors(join(dir, 'keys'))));

    it('is a private file outside the data dir, whose rows cannot be updated or deleted', async () => {
        const s = (store ??= new SqliteChainAnchors(join(dir, 'keys')));
        await s.record('r-private', 1, h(1));
        expect(statSync(join(dir, 'keys')).mode & 0o077).toBe(0);
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const Database = require('better-sqlite3') as typeof import('better-sqlite3');
        const db = new Database(join(dir, 'keys', ANCHOR_DB_FILE));
        try {
            expect(() => db.prepare("UPDATE anchors SET seq = 0 WHERE run_id = 'r-private'").run()).toThrow(
                /append-only/,
            );
            expect(() => db.prepare("DELETE FROM anchors WHERE run_id = 'r-private'").run()).toThrow(/append-only/);
        } finally {
            db.close();
        }
    });
});

describe('Azure append-blob anchor store (Azurite)', () => {
    let azurite: Azurite | undefined;
    beforeAll(async () => {
        azurite = await startAzurite();
    });
    afterAll(async () => {
        await azurite?.close();
    });

    describeAnchorContract(
        'append blob',
        () => new BlobChainAnchors({ connection: azurite!.connection, container: 'audit-anchors' }),
    );

    it('writes one append blob per run, one line per anchor', async () => {
        const anchors = new BlobChainAnchors({ connection: azurite!.connection, container: 'audit-anchors' });
        await anchors.record('run-lines', 1, h(1));
        await anchors.record('run-lines', 2, h(2));
        const { ContainerClient } = await import('@azure/storage-blob');
        const blob = new ContainerClient(azurite!.connection, 'audit-anchors').getBlobClient(
            anchorBlobName('run-lines'),
        );
        const props = await blob.getProperties();
        expect(props.blobType).toBe('AppendBlob');
        const text = (await blob.downloadToBuffer()).toString('utf8');
        expect(text).toBe(`{"seq":1,"hash":"${h(1)}"}\n{"seq":2,"hash":"${h(2)}"}\n`);
        expect(headOf(text)).toEqual({ seq: 2, hash: h(2) });
    });
});
