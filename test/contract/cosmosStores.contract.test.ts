/**
 * The Cosmos DB stores against a local Cosmos-API server (`@vercel/cosmosdb-server`, in memory, one per file): the
 * same contract suites as the embedded store (storeContract.ts, scaleContract.ts), each test in a database of its
 * own, plus what is particular to Cosmos DB: container definitions and TTLs, append-only audit items, the unique
 * key, crash recovery between writes that SQLite would make in one transaction, the changes cursor's lookback, lazy
 * initialisation and configuration.
 *
 * The local server accepts but does not enforce TTL, and has no change feed: TTL is checked by the container
 * definitions and the items' `ttl` fields (the describe block says so), and the adapter does not use the change feed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { CosmosClient } from '@azure/cosmos';

import { auditItemId } from '../../adapters/cosmos/auditLog';
import { MAX_AUDIT_PAGE, MAX_OUTBOX_PAGE, MAX_RETENTION_PAGE, MAX_RUN_PAGE } from '../../adapters/cosmos/common';
import { CosmosConfig, parseCosmosConfig } from '../../adapters/cosmos/config';
import { CONTAINER_NAMES } from '../../adapters/cosmos/cosmosContext';
import { CosmosStoreOptions, CosmosStores, openCosmosStores } from '../../adapters/cosmos/cosmosStores';
import { idempotencyIdOf, MAX_CURSOR_VERSIONS } from '../../adapters/cosmos/runStore';
import * as sqlite from '../../adapters/embedded/sqliteStores';
import { verifyChain } from '../../domain/audit';
import { ConflictError, ValidationError } from '../../domain/errors';
import { TEST_KEYS } from '../support/chainKeys';
import { cosmosClientOf, CosmosServer, startCosmosServer } from '../support/cosmosServer';
import { describeScaleContract } from './scaleContract';
import {
    collect,
    describeEventOutboxContract,
    describeLinkUsesContract,
    describeStoreContract,
    makeEvent,
    makeRun,
} from './storeContract';

const NAME = 'Cosmos DB (local Cosmos-API server)';
const DAY_S = 86_400;

let server: CosmosServer;
let databases = 0;

beforeAll(async () => {
    server = await startCosmosServer();
});

afterAll(async () => {
    await server.close();
});

function configOf(env: Record<string, string> = {}): CosmosConfig {
    return parseCosmosConfig({
        COSMOS_ENDPOINT: server.endpoint,
        COSMOS_KEY: server.key,
        COSMOS_DATABASE: `test-${process.pid}-${++databases}`,
        ...env,
    });
}

/** Stores over a database of their own, which closing drops (the server keeps everything in memory). */
function open(env: Record<string, string> = {}, options?: CosmosStoreOptions): Promise<CosmosStores> {
    const stores = openCosmosStores(configOf(env), options);
    return Promise.resolve({
        ...stores,
        close: async () => {
            try {
                await (await stores.containers()).runs.database.delete();
            } finally {
                await stores.close();
            }
        },
    });
}

describeStoreContract(NAME, () => open());
describeScaleContract(NAME, () => open());
describeLinkUsesContract(NAME, () => open());
describeEventOutboxContract(NAME, () => open());

describe(`Cosmos DB stores: ${NAME}`, () => {
    let s: CosmosStores;

    beforeEach(async () => {
        s = await open();
    });

    afterEach(async () => {
        await s.close();
    });

    it('keeps the same page caps as the embedded store', () => {
        expect({ MAX_RUN_PAGE, MAX_AUDIT_PAGE, MAX_OUTBOX_PAGE, MAX_RETENTION_PAGE }).toEqual({
            MAX_RUN_PAGE: sqlite.MAX_RUN_PAGE,
            MAX_AUDIT_PAGE: sqlite.MAX_AUDIT_PAGE,
            MAX_OUTBOX_PAGE: sqlite.MAX_OUTBOX_PAGE,
            MAX_RETENTION_PAGE: sqlite.MAX_RETENTION_PAGE,
        });
    });

    it('returns no system or helper property from any read', async () => {
        await s.runs.create(makeRun('r1', { idempotencyKey: 'k' }, { title: 'T' }));
        await s.runs.update('r1', (r) => ({ ...r, status: 'Running' }));
        await s.audit.append(makeEvent('r1', 1));
        await s.policies.put({ rules: [] }, 0, 'carol', '2025-03-01T10:00:00.000Z');
        const reads = [
            await s.runs.get('r1'),
            await s.runs.list({}, 10),
            await s.runs.changesSince(undefined, 10),
            await s.runs.create(makeRun('r2', { idempotencyKey: 'k' })),
            await s.audit.list('r1', 10),
            await s.audit.latest('r1', 10),
            await s.audit.append(makeEvent('r1', 1)),
            await s.outbox.pending(10),
            await s.policies.get(),
        ];
        for (const read of reads) {
            expect(JSON.stringify(read)).not.toMatch(/"(_[a-zA-Z]+|ttl)":/);
        }
    });

    it('finds runs waiting at an upgrade: items without the waiting fields are rewritten before waitingFor', async () => {
        const cp = 'old-wait.0.taste.before.0';
        const run = makeRun('old-wait', {
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
                    approvals: 1,
                    timeoutMs: 1000,
                    onTimeout: 'reject',
                    escalateTo: [],
                    channels: [],
                    rule: 'r',
                    status: 'Open',
                    openedAt: '2025-03-01T10:00:00.000Z',
                    deadline: '2025-03-02T10:00:00.000Z',
                    escalated: false,
                    decisions: [],
                },
            ],
        });
        // As the adapter wrote items before the waiting fields existed.
        const { runs } = await s.containers();
        await runs.items.create({
            ...run,
            _team: 'alpha',
            _createdAt: run.createdAt,
            _updatedAt: run.updatedAt,
            _search: 'old-wait\n\nalpha',
            _changed: 1,
        });
        const approver = { id: 'ava', roles: ['Mesh.Approver' as const], teams: ['alpha'] };
        await expect(s.runs.count({ waitingFor: approver })).resolves.toBe(1);
        expect((await s.runs.list({ waitingFor: approver }, 10)).items).toEqual([run]);
    });

    describe('audit items are append-only', () => {
        it('a record can never be overwritten: a create with its id is refused with 409', async () => {
            const record = await s.audit.append(makeEvent('run-x', 1));
            const { audit } = await s.containers();
            await expect(audit.items.create({ ...record, id: auditItemId(1), actor: 'mallory' })).rejects.toMatchObject(
                { code: 409 },
            );
            const stored = await collect(s.audit.all('run-x'));
            expect(stored).toEqual([record]);
            expect(verifyChain(stored, TEST_KEYS).verified).toBe(true);
        });

        it('the unique key on eventId refuses a second item with the same eventId in the run', async () => {
            const record = await s.audit.append(makeEvent('run-x', 1));
            const { audit } = await s.containers();
            await expect(audit.items.create({ ...record, id: auditItemId(2), seq: 2 })).rejects.toMatchObject({
                code: 409,
            });
            // Unique keys are per partition (run): another run may use the same eventId.
            await expect(audit.items.create({ ...record, runId: 'run-y', id: auditItemId(1) })).resolves.toMatchObject({
                statusCode: 201,
            });
        });

        it('only the audit module writes audit items, and only with create; only retention deletes them', () => {
            const dir = join(__dirname, '../../adapters/cosmos');
            const source = (file: string) => readFileSync(join(dir, file), 'utf8');
            const auditModule = source('auditLog.ts');
            expect(auditModule).toMatch(/audit\.items\.create/);
            expect(auditModule).not.toMatch(/\.(upsert|replace|patch|delete|batch)\s*[(<]/);
            expect(auditModule).not.toMatch(/executeBulkOperations|bulk\s*\(/i);
            // Which modules take hold of the audit container at all.
            const touching = readdirSync(dir)
                .filter((f) => f.endsWith('.ts'))
                .filter((f) => /\bc\.audit\b|\{\s*audit\b[^}]*\}\s*=\s*await\s+this\.ctx\.containers/.test(source(f)));
            expect(touching.sort()).toEqual(['auditLog.ts', 'retentionStore.ts']);
            expect(source('retentionStore.ts')).not.toMatch(/\.(upsert|replace|patch)\s*[(<]/);
        });
    });

    describe('idempotency keys without a transaction', () => {
        it('finishes a keyed create that crashed between its two writes, under the run id the key names', async () => {
            const keyId = idempotencyIdOf('alice', 'k-crash');
            const { idempotency } = await s.containers();
            await idempotency.items.create({ id: keyId, runId: 'r-lost' });

            const first = await s.runs.create(makeRun('r-new', { idempotencyKey: 'k-crash' }));
            expect(first).toEqual({
                run: { ...makeRun('r-new', { idempotencyKey: 'k-crash' }), id: 'r-lost' },
                created: true,
            });
            const again = await s.runs.create(makeRun('r-other', { idempotencyKey: 'k-crash' }));
            expect(again).toEqual({ run: first.run, created: false });
            await expect(s.runs.get('r-new')).resolves.toBeUndefined();
        });

        it('gives the key back when the run id is taken by another run', async () => {
            await s.runs.create(makeRun('r1', { createdBy: 'bob' }));
            await expect(s.runs.create(makeRun('r1', { idempotencyKey: 'k' }))).rejects.toBeInstanceOf(ConflictError);
            await expect(s.runs.create(makeRun('r2', { idempotencyKey: 'k' }))).resolves.toMatchObject({
                created: true,
                run: { id: 'r2', createdBy: 'alice' },
            });
        });

        it("never answers with another creator's run when a stale key names it", async () => {
            await s.runs.create(makeRun('r-bob', { createdBy: 'bob' }));
            const keyId = idempotencyIdOf('alice', 'k');
            const { idempotency } = await s.containers();
            // As a failed compensation would leave it.
            await idempotency.items.create({ id: keyId, runId: 'r-bob' });
            await expect(s.runs.create(makeRun('r-alice', { idempotencyKey: 'k' }))).resolves.toMatchObject({
                created: true,
                run: { id: 'r-alice', createdBy: 'alice' },
            });
        });
    });

    describe('outbox entries without a transaction', () => {
        it('a retried append re-creates an entry lost in a crash between the record and the entry', async () => {
            await s.audit.append(makeEvent('r1', 1));
            const { outbox } = await s.containers();
            await outbox.item('r1:1', 'r1:1').delete();
            await expect(s.outbox.pending(10)).resolves.toEqual([]);
            await s.audit.append(makeEvent('r1', 1));
            expect((await s.outbox.pending(10)).map((e) => e.id)).toEqual(['r1:1']);
        });

        it("an append first makes sure the previous record's entry exists, so a run's events stay in seq order", async () => {
            await s.audit.append(makeEvent('r1', 1));
            const { outbox } = await s.containers();
            await outbox.item('r1:1', 'r1:1').delete();
            await s.audit.append(makeEvent('r1', 2));
            expect((await s.outbox.pending(10)).map((e) => e.id)).toEqual(['r1:1', 'r1:2']);
        });
    });

    describe('changesSince without a change feed', () => {
        it('delivers a write that became visible after the cursor passed its stamp (within the lookback)', async () => {
            await s.runs.create(makeRun('r1'));
            await s.runs.create(makeRun('r2'));
            const { cursor } = await s.runs.changesSince(undefined, 10);
            await s.runs.create(makeRun('r3'));
            // As if another instance stamped r3 a second before r2 but committed it only now.
            const { runs } = await s.containers();
            const { resource: r2 } = await runs.item('r2', 'r2').read();
            const { resource: r3 } = await runs.item('r3', 'r3').read();
            await runs.item('r3', 'r3').replace({ ...r3, _changed: r2._changed - 1_000_000 });

            const late = await s.runs.changesSince(cursor, 10);
            expect(late.runs.map((r) => r.id)).toEqual(['r3']);
            await expect(s.runs.changesSince(late.cursor, 10)).resolves.toEqual({ runs: [], cursor: late.cursor });
        });

        it('neither skips nor repeats runs whose stamps tie, across pages', async () => {
            const { runs } = await s.containers();
            for (const id of ['r1', 'r2', 'r3']) {
                await s.runs.create(makeRun(id));
                const { resource } = await runs.item(id, id).read();
                await runs.item(id, id).replace({ ...resource, _changed: 1_740_000_000_000_000 });
            }
            const seen: string[] = [];
            let cursor: string | undefined;
            for (let i = 0; i < 3; i++) {
                const page = await s.runs.changesSince(cursor, 1);
                seen.push(...page.runs.map((r) => r.id));
                cursor = page.cursor;
            }
            expect(seen.sort()).toEqual(['r1', 'r2', 'r3']);
            await expect(s.runs.changesSince(cursor, 10)).resolves.toEqual({ runs: [], cursor });
        });

        it('keeps its cursor bounded under a burst, delivering every change once', async () => {
            const ids = Array.from({ length: MAX_CURSOR_VERSIONS * 3 }, (_, i) => `b${String(i).padStart(3, '0')}`);
            for (const id of ids) await s.runs.create(makeRun(id));
            const seen: string[] = [];
            let cursor: string | undefined;
            let longest = 0;
            for (let i = 0; i < 20; i++) {
                const page = await s.runs.changesSince(cursor, 25);
                seen.push(...page.runs.map((r) => r.id));
                cursor = page.cursor;
                longest = Math.max(longest, cursor?.length ?? 0);
            }
            expect(seen).toEqual(ids);
            expect(longest).toBeLessThan(4096);
            // Later writes still arrive after the cap moved the low-water mark.
            await s.runs.update('b000', (r) => ({ ...r, status: 'Running' }));
            const after = await s.runs.changesSince(cursor, 25);
            expect(after.runs.map((r) => r.id)).toEqual(['b000']);
        });

        it('rejects a cursor of the wrong shape', async () => {
            const cursor = Buffer.from(JSON.stringify({ t: 'late', s: [] })).toString('base64url');
            await expect(s.runs.changesSince(cursor, 10)).rejects.toBeInstanceOf(ValidationError);
        });
    });

    it('retries an update that lost the etag race (412), running mutate again', async () => {
        await s.runs.create(makeRun('r1'));
        let calls = 0;
        await Promise.all(
            Array.from({ length: 10 }, () =>
                s.runs.update('r1', (r) => {
                    calls++;
                    return { ...r, iteration: r.iteration + 1 };
                }),
            ),
        );
        await expect(s.runs.get('r1')).resolves.toMatchObject({ iteration: 10 });
        expect(calls).toBeGreaterThan(10);
    });
});

describe('TTL (not enforced by the local Cosmos server: checked by container definition and item ttl fields)', () => {
    let s: CosmosStores;

    afterEach(async () => {
        await s.close();
    });

    async function definitions(stores: CosmosStores): Promise<Record<string, number | undefined>> {
        const containers = await stores.containers();
        const entries = await Promise.all(
            CONTAINER_NAMES.map(async (name) => [name, (await containers[name].read()).resource?.defaultTtl] as const),
        );
        return Object.fromEntries(entries);
    }

    it('defines the expiring containers with their configured days and the others with -1 (on, never by itself)', async () => {
        s = await open({ COSMOS_TTL_DAYS: '30', COSMOS_TTL_DAYS_LINKS: '7' });
        await expect(definitions(s)).resolves.toEqual({
            links: 7 * DAY_S,
            idempotency: 30 * DAY_S,
            outbox: 30 * DAY_S,
            ratelimits: 30 * DAY_S,
            runs: -1,
            outputs: -1,
            audit: -1,
            policies: -1,
            admission: -1,
        });
    });

    it('brings an existing container to a changed TTL on the next start', async () => {
        s = await open();
        const database = (await s.containers()).runs.database.id;
        await expect(definitions(s)).resolves.toMatchObject({ outbox: 90 * DAY_S });
        const again = openCosmosStores(configOf({ COSMOS_DATABASE: database, COSMOS_TTL_DAYS_OUTBOX: '10' }));
        try {
            await expect(definitions(again)).resolves.toMatchObject({ outbox: 10 * DAY_S, links: 90 * DAY_S });
        } finally {
            await again.close();
        }
    });

    it('gives each rate window an item ttl ending a minute after the window', async () => {
        s = await open();
        const start = Date.now() - 10_000;
        await s.rateCounters.increment('tenant-a', start, 60_000);
        await s.rateCounters.increment('tenant-a', Date.UTC(2025, 2, 1), 60_000);
        const { resources } = await (
            await s.containers()
        ).ratelimits.items
            .query('SELECT * FROM c ORDER BY c.windowStart ASC')
            .fetchAll();
        expect(resources.map((r) => r.ttl)).toEqual([61, expect.any(Number)]);
        expect(resources[1].ttl).toBeGreaterThanOrEqual(108);
        expect(resources[1].ttl).toBeLessThanOrEqual(111);
    });

    it('keeps a published outbox entry as a tombstone with an item ttl; pending entries carry none', async () => {
        s = await open();
        await s.audit.append(makeEvent('r1', 1));
        const { outbox } = await s.containers();
        await expect(outbox.item('r1:1', 'r1:1').read()).resolves.toMatchObject({
            resource: { published: false },
        });
        expect((await outbox.item('r1:1', 'r1:1').read()).resource.ttl).toBeUndefined();
        await s.outbox.markPublished(['r1:1']);
        await expect(outbox.item('r1:1', 'r1:1').read()).resolves.toMatchObject({
            resource: { published: true, ttl: 3 * DAY_S },
        });
    });
});

describe('initialisation', () => {
    const rawClient = (): CosmosClient => cosmosClientOf(server);

    it('adds the composite indexes an existing runs container lacks', async () => {
        const client = rawClient();
        const id = `test-raw-${++databases}`;
        const { database } = await client.databases.createIfNotExists({ id });
        await database.containers.create({ id: 'runs', partitionKey: { paths: ['/id'] } });
        const stores = openCosmosStores(configOf({ COSMOS_DATABASE: id }));
        try {
            await stores.runs.create(makeRun('a'));
            await stores.runs.create(makeRun('b'));
            expect((await stores.runs.list({}, 10)).items.map((r) => r.id)).toEqual(['b', 'a']);
            const { resource } = await database.container('runs').read();
            expect(resource?.indexingPolicy?.compositeIndexes).toHaveLength(2);
        } finally {
            await stores.close();
            await database.delete();
            client.dispose();
        }
    });

    it('refuses a container it cannot change in place, and tries again on the next call', async () => {
        const client = rawClient();
        const id = `test-raw-${++databases}`;
        const { database } = await client.databases.createIfNotExists({ id });
        await database.containers.create({ id: 'audit', partitionKey: { paths: ['/runId'] } });
        const stores = openCosmosStores(configOf({ COSMOS_DATABASE: id }));
        try {
            await expect(stores.runs.get('r1')).rejects.toThrow(/'audit' lacks the unique key \["\/eventId"\]/);
            await database.container('audit').delete();
            await database.containers.create({ id: 'audit', partitionKey: { paths: ['/id'] } });
            await expect(stores.runs.get('r1')).rejects.toThrow(/'audit' is partitioned by \["\/id"\]/);
            await database.container('audit').delete();
            await expect(stores.runs.get('r1')).resolves.toBeUndefined();
            await expect(stores.audit.append(makeEvent('r1', 1))).resolves.toMatchObject({ seq: 1 });
        } finally {
            await stores.close();
            await database.delete();
            client.dispose();
        }
    });

    it('opens without I/O, and retries an initialisation that failed (the server was down)', async () => {
        const probe = await startCosmosServer();
        const port = Number(new URL(probe.endpoint).port);
        await probe.close();

        const stores = openCosmosStores(
            parseCosmosConfig({ COSMOS_ENDPOINT: `http://127.0.0.1:${port}`, COSMOS_KEY: probe.key }),
        );
        let revived: CosmosServer | undefined;
        try {
            await expect(stores.runs.get('r1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
            revived = await startCosmosServer(port);
            await expect(stores.runs.get('r1')).resolves.toBeUndefined();
            await expect(stores.runs.create(makeRun('r1'))).resolves.toMatchObject({ created: true });
        } finally {
            await stores.close();
            await revived?.close();
        }
        await expect(stores.runs.get('r1')).rejects.toThrow(/closed/);
    });

    it('builds the client with the Entra ID credential when there is no key', async () => {
        // The SDK sends bearer tokens over TLS only, and the local server speaks plain HTTP: the refusal shows that
        // the client was built for Entra ID (a key client would have succeeded). A full round trip needs Azure.
        const credential: NonNullable<CosmosStoreOptions['credential']> = {
            getToken: () => Promise.resolve({ token: 'entra-token', expiresOnTimestamp: Date.now() + 3_600_000 }),
        };
        const config = parseCosmosConfig({ COSMOS_ENDPOINT: server.endpoint, COSMOS_DATABASE: 'entra' });
        expect(config.key).toBeUndefined();
        const stores = openCosmosStores(config, { credential });
        try {
            await expect(stores.runs.get('r1')).rejects.toThrow(/Bearer token authentication is not permitted/);
        } finally {
            await stores.close();
        }
    });
});

describe('parseCosmosConfig', () => {
    const KEY = 'c2VjcmV0LWtleS1ub3QtdG8tYmUtc2hvd24=';

    it('reads the settings, with defaults, into a frozen object that never shows the key', () => {
        const config = parseCosmosConfig({ COSMOS_ENDPOINT: 'http://127.0.0.1:8081', COSMOS_KEY: KEY });
        expect(config).toEqual({
            endpoint: 'http://127.0.0.1:8081',
            database: 'mesh',
            ttlDays: { links: 90, idempotency: 90, outbox: 90, ratelimits: 90 },
            disableEndpointDiscovery: true,
        });
        expect(config.key).toBe(KEY);
        expect(Object.isFrozen(config)).toBe(true);
        expect(JSON.stringify(config)).not.toContain(KEY);
        expect({ ...config }).not.toHaveProperty('key');
    });

    it('takes the database, TTLs and endpoint discovery from the environment', () => {
        const config = parseCosmosConfig({
            COSMOS_ENDPOINT: 'https://acct.documents.azure.com:443/',
            COSMOS_DATABASE: 'mesh-prod',
            COSMOS_TTL_DAYS: '30',
            COSMOS_TTL_DAYS_RATELIMITS: '1',
        });
        expect(config).toEqual({
            endpoint: 'https://acct.documents.azure.com:443/',
            database: 'mesh-prod',
            ttlDays: { links: 30, idempotency: 30, outbox: 30, ratelimits: 1 },
            disableEndpointDiscovery: false,
        });
        expect(config.key).toBeUndefined();
        expect(
            parseCosmosConfig({ COSMOS_ENDPOINT: 'http://localhost:8081', COSMOS_DISABLE_ENDPOINT_DISCOVERY: 'false' })
                .disableEndpointDiscovery,
        ).toBe(false);
        expect(
            parseCosmosConfig({ COSMOS_ENDPOINT: 'https://x.example', COSMOS_DISABLE_ENDPOINT_DISCOVERY: 'true' })
                .disableEndpointDiscovery,
        ).toBe(true);
    });

    it('names every problem in one error, and never a secret', () => {
        let message = '';
        try {
            parseCosmosConfig({
                COSMOS_KEY: KEY,
                COSMOS_TTL_DAYS: '0',
                COSMOS_TTL_DAYS_OUTBOX: 'soon',
                COSMOS_TTL_DAYS_AUDIT: '30',
                COSMOS_TTL_DAYS_LINK: '7',
                COSMOS_DISABLE_ENDPOINT_DISCOVERY: 'maybe',
                COSMOS_DATABASE: 'a/b',
            });
        } catch (e: unknown) {
            message = (e as Error).message;
        }
        for (const name of [
            'COSMOS_ENDPOINT is required',
            'COSMOS_DATABASE',
            'COSMOS_TTL_DAYS must',
            'COSMOS_TTL_DAYS_OUTBOX',
            'COSMOS_TTL_DAYS_AUDIT is not supported',
            'COSMOS_TTL_DAYS_LINK names no expiring container',
            'COSMOS_DISABLE_ENDPOINT_DISCOVERY',
        ])
            expect(message).toContain(name);
        expect(message).not.toContain(KEY);

        const pasted = `AccountEndpoint=https://acct.documents.azure.com:443/;AccountKey=${KEY};`;
        expect(() => parseCosmosConfig({ COSMOS_ENDPOINT: pasted })).toThrow(
            new Error('Invalid Cosmos DB configuration: COSMOS_ENDPOINT must be an http(s) URL.'),
        );
        expect(() => parseCosmosConfig({ COSMOS_ENDPOINT: 'http://cosmos.internal:8081' })).toThrow(
            /plain http is accepted on loopback only/,
        );
    });
});
