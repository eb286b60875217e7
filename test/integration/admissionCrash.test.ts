/**
 * Admission survives kill -9 (issue 5): with far more runs queued than slots, the host is killed twice while the
 * admitter works through the queue. After restarts every accepted run completes, each exactly once, in a verified
 * chain, and no slot is left held (a leaked slot would shrink capacity for good).
 */
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { Api, USERS, verifiedTrails } from '../support/api';
import { HostProcess, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(180_000);

const RUNS = 120;
const env = { MESH_RUN_CAPACITY: '8', MESH_ENGINE_LATENCY_MS: '25', MESH_QUEUE_LOCK_MS: '2000' };

it('kill -9 while runs wait for slots: every accepted run is admitted and completes once, no slot leaks', async () => {
    const dataDir = tempDataDir('mesh-admission-crash-');
    let host: HostProcess = await startHostProcess({ dataDir, env });
    let api = new Api(host);
    const restart = async (): Promise<void> => {
        await host.stop('SIGKILL');
        host = await startHostProcess({ dataDir, env });
        api = new Api(host);
    };
    try {
        const ids: string[] = [];
        for (let batch = 0; batch < RUNS / 20; batch++) {
            const answers = await Promise.all(
                Array.from({ length: 20 }, (_, i) =>
                    api.call('POST', '/pipeline/run', {
                        user: USERS.dana,
                        body: {
                            input: { prompt: `queued ${batch}.${i}` },
                            metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] },
                        },
                    }),
                ),
            );
            for (const r of answers) {
                expect(r.status).toBe(202);
                ids.push(r.body.data.orchestrationID as string);
            }
        }
        const queued = await api.call('GET', '/pipeline?status=Queued&limit=200', { user: USERS.olga });
        expect(queued.body.data.items.length).toBeGreaterThan(RUNS / 3);

        await new Promise((r) => setTimeout(r, 400));
        await restart();
        await new Promise((r) => setTimeout(r, 700));
        await restart();

        await waitUntil(
            async () => {
                const page = await api.call('GET', '/pipeline?status=Completed&limit=200', { user: USERS.olga });
                return page.body.data.items.length === RUNS;
            },
            'every queued run to complete',
            120_000,
            250,
        );
        const trails = await verifiedTrails(api, ids);
        for (const [id, events] of trails) {
            const types = events.map((e: any) => e.type);
            expect([id, types.filter((t: string) => t === 'pipeline.started').length]).toEqual([id, 1]);
            expect([id, types.filter((t: string) => t === 'pipeline.completed').length]).toEqual([id, 1]);
        }
    } finally {
        await host.stop();
    }
    const db = new Database(join(dataDir, 'app.sqlite'), { readonly: true });
    try {
        expect(db.prepare('SELECT count(*) AS n FROM admission_slots').get()).toEqual({ n: 0 });
    } finally {
        db.close();
    }
});
