/**
 * A submission the admission queue cannot take is never left `Queued` with nothing to admit it: the run is recorded
 * `Failed` (UNAVAILABLE) and the caller gets 503, so it knows to submit again.
 */
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess } from '../support/hostProcess';

jest.setTimeout(60_000);

let host: HostProcess;
let api: Api;

beforeAll(async () => {
    host = await startHostProcess({ env: { MESH_ENGINE_LATENCY_MS: '0' } });
    api = new Api(host);
});

afterAll(async () => {
    await host?.stop();
});

it('answers 503 and records the run Failed when the queue refuses the message', async () => {
    // Another writer holds the queue database (as a full or broken queue would refuse): writes time out.
    const blocker = new Database(join(host.dataDir, 'queues.sqlite'));
    blocker.pragma('busy_timeout = 0');
    blocker.exec('BEGIN EXCLUSIVE');
    let r;
    try {
        r = await api.call('POST', '/pipeline/run', {
            user: USERS.dana,
            body: { input: { prompt: 'x' }, metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] } },
        });
    } finally {
        blocker.exec('ROLLBACK');
        blocker.close();
    }
    expect(r.status).toBe(503);
    expect(r.body.error_code).toBe('UNAVAILABLE');
    const listed = await api.call('GET', '/pipeline?status=Failed', { user: USERS.dana });
    expect(listed.body.data.items).toHaveLength(1);
    const id = listed.body.data.items[0].orchestrationID as string;
    const logs = await api.call('GET', `/pipeline/logs/${id}`, { user: USERS.dana });
    expect(logs.body.data.events.map((e: any) => e.type)).toEqual(['pipeline.queued', 'pipeline.failed']);
    expect(logs.body.data.chain.verified).toBe(true);

    // With the queue back, submissions are admitted again.
    const ok = await api.call('POST', '/pipeline/run', {
        user: USERS.dana,
        body: { input: { prompt: 'y' }, metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] } },
    });
    expect(ok.status).toBe(202);
});
