/**
 * The LinkUses contract (a link works once; storeContract.ts) run against the embedded SQLite store and the in-memory
 * fake the domain tests use, plus what only a durable store can show: across connections (processes) and reopening.
 * The Cosmos DB adapter runs the same contract in cosmosStores.contract.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { openEmbeddedStores } from '../../adapters/embedded/sqliteStores';
import type { LinkUses } from '../../domain/ports';
import { MemoryLinkUses } from '../support/linkFixtures';
import { describeLinkUsesContract } from './storeContract';

const AT = '2025-06-01T12:00:00.000Z';
const dirs: string[] = [];
const closers: (() => void)[] = [];

function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'mesh-link-uses-'));
    dirs.push(dir);
    return dir;
}

function sqlite(dir = tempDir()): LinkUses {
    const stores = openEmbeddedStores(dir);
    closers.push(() => stores.close());
    return stores.linkUses;
}

afterEach(() => closers.splice(0).forEach((close) => close()));
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

describeLinkUsesContract('embedded SQLite', () => Promise.resolve(openEmbeddedStores(tempDir())));
describeLinkUsesContract('in memory', () => Promise.resolve({ linkUses: new MemoryLinkUses(), close() {} }), 'fake');

describe('LinkUses (embedded SQLite, durable)', () => {
    it('one winner across connections to the same database (as across processes)', async () => {
        const dir = tempDir();
        const a = sqlite(dir);
        const b = sqlite(dir);
        const results = await Promise.all(
            Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).use('jti-dddddddddddddddd', AT)),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        await expect(a.used('jti-dddddddddddddddd')).resolves.toBe(true);
        await expect(b.used('jti-dddddddddddddddd')).resolves.toBe(true);
    });

    it('survives closing and reopening', async () => {
        const dir = tempDir();
        const first = openEmbeddedStores(dir);
        await expect(first.linkUses.use('jti-eeeeeeeeeeeeeeee', AT)).resolves.toBe(true);
        first.close();
        const again = sqlite(dir);
        await expect(again.used('jti-eeeeeeeeeeeeeeee')).resolves.toBe(true);
        await expect(again.use('jti-eeeeeeeeeeeeeeee', AT)).resolves.toBe(false);
    });
});
