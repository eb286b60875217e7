/**
 * Retention on both stores (issue 5): with a retention period of a few seconds, runs that ended are removed whole
 * (projection, outputs, idempotency key, audit trail, outbox, durable history) from every table or container, the
 * purge itself stays audited in the `_retention` chain, and a run still waiting for a person is kept.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { Api, runAwaitingApproval, USERS } from '../support/api';
import { cosmosClientOf } from '../support/cosmosServer';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';
import { type StoreKind, STORES } from '../support/stores';

jest.setTimeout(90_000);

/** Every stored row or item that mentions one of `ids`, outside the retention chain, as `where: text`. */
async function traces(store: StoreKind, host: HostProcess, ids: string[]) {
    const cosmos = host.cosmos;
    const found: string[] = [];
    const scan = (where: string, text: string) => {
        if (ids.some((id) => text.includes(id)) && !text.includes('"_retention"') && !text.includes("'_retention'"))
            found.push(`${where}: ${text.slice(0, 160)}`);
    };
    const files = [...(store === 'embedded' ? ['app.sqlite'] : []), 'durable.sqlite', 'queues.sqlite'];
    for (const file of files.filter((f) => existsSync(join(host.dataDir, f)))) {
        const db = new Database(join(host.dataDir, file), { readonly: true, fileMustExist: true });
        try {
            const tables = db
                .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
                .all()
                .map((t) => t.name);
            for (const table of tables) {
                for (const row of db.prepare(`SELECT * FROM "${table}"`).all() as Record<string, unknown>[]) {
                    if (table === 'audit' && row.run_id === '_retention') continue;
                    scan(`${file}/${table}`, JSON.stringify(row));
                }
            }
        } finally {
            db.close();
        }
    }
    if (store === 'cosmos' && cosmos) {
        const client = cosmosClientOf(cosmos);
        try {
            const { resources: dbs } = await client.databases.readAll().fetchAll();
            for (const d of dbs) {
                const { resources: containers } = await client.database(d.id).containers.readAll().fetchAll();
                for (const c of containers) {
                    const { resources: items } = await client
                        .database(d.id)
                        .container(c.id)
                        .items.query('SELECT * FROM c')
                        .fetchAll();
                    for (const item of items) {
                        if (item.runId === '_retention') continue;
                        scan(`cosmos/${c.id}`, JSON.stringify(item));
                    }
                }
            }
        } finally {
            client.dispose();
        }
    }
    return found;
}

describe.each(STORES)('retention on the %s store', (store) => {
    let host: HostProcess;
    let api: Api;

    beforeAll(async () => {
        host = await startHostProcess({
            store,
            env: {
                MESH_ENGINE_LATENCY_MS: '0',
                MESH_RETENTION_DAYS: String(3 / 86_400),
                MESH_RETENTION_SCHEDULE: '*/1 * * * * *',
            },
        });
        api = new Api(host);
    });

    afterAll(async () => {
        await host?.stop();
    });

    it('removes ended runs from every table and container, keeps live ones, and audits the purge', async () => {
        const ids: string[] = [];
        for (const n of [1, 2]) {
            const r = await api.call('POST', '/pipeline/run', {
                user: USERS.dana,
                headers: { 'idempotency-key': `retention-${store}-${n}` },
                body: {
                    input: { prompt: `short-lived ${n}` },
                    metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] },
                },
            });
            expect(r.status).toBe(202);
            ids.push(r.body.data.orchestrationID);
        }
        const live = await runAwaitingApproval(api, USERS.dana, 'kept while it waits');
        for (const id of ids)
            await waitUntil(async () => {
                const r = await api.call('GET', `/pipeline/status/${id}`, { user: USERS.olga });
                // Completed, or already purged (the period is 3 s).
                return r.status === 404 || r.body.data.status === 'Completed';
            }, `${id} to complete`);

        // Gone from the API...
        for (const id of ids)
            await waitUntil(
                async () => (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.olga })).status === 404,
                `${id} to be purged`,
                30_000,
                250,
            );
        for (const id of ids)
            expect((await api.call('GET', `/pipeline/logs/${id}`, { user: USERS.carl })).status).toBe(404);
        // ... and from every table and container, durable history included (allow the batch in flight to finish).
        await waitUntil(async () => (await traces(store, host, ids)).length === 0, 'no trace left', 10_000, 250).catch(
            async () => expect(await traces(store, host, ids)).toEqual([]),
        );

        // The purge is audited, in a chain Compliance can read and verify.
        const trail = await api.call('GET', '/pipeline/logs/_retention?limit=1000', { user: USERS.carl });
        expect(trail.status).toBe(200);
        expect(trail.body.data.chain.verified).toBe(true);
        const purged = trail.body.data.events.flatMap((e: any) =>
            e.type === 'retention.purged' ? e.details.runIds : [],
        );
        expect(purged).toEqual(expect.arrayContaining(ids));
        expect(trail.body.data.events[0]).toMatchObject({ actor: 'system', type: 'retention.purged' });
        expect((await api.call('GET', '/pipeline/logs/_retention', { user: USERS.dana })).status).toBe(404);

        // A run still waiting for a person is kept whole, however old.
        const kept = await api.call('GET', `/pipeline/status/${live.id}`, { user: USERS.dana });
        expect(kept.body.data.status).toBe('AwaitingApproval');
        const logs = await api.call('GET', `/pipeline/logs/${live.id}`, { user: USERS.dana });
        expect(logs.body.data.chain.verified).toBe(true);
        expect(logs.body.data.events[0]).toMatchObject({ seq: 1, type: 'pipeline.queued' });

        // An idempotency key of a purged run is free again: the same request makes a new run.
        const again = await api.call('POST', '/pipeline/run', {
            user: USERS.dana,
            headers: { 'idempotency-key': `retention-${store}-1` },
            body: { input: { prompt: 'again' }, metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] } },
        });
        expect(again.status).toBe(202);
        expect(ids).not.toContain(again.body.data.orchestrationID);
    });
});
