/** Readiness (GET /health/ready) checks the durable backend AND the run store: either failing is a 503 naming it. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';

import { openEmbeddedStores } from '../../adapters/embedded/sqliteStores';
import { enveloped } from '../../adapters/http/envelope';
import { healthReady, type ReadinessProbes } from '../../functions/http/healthReady';

const request = () => new HttpRequest({ method: 'GET', url: 'http://localhost/health/ready' });
const context = () => new InvocationContext({ functionName: 'healthReady', logHandler: () => undefined });

async function probe(probes: ReadinessProbes): Promise<{ status: number; body: Record<string, unknown> }> {
    const res: HttpResponseInit = await enveloped((req, ctx) => healthReady(req, ctx, probes))(request(), context());
    return { status: res.status ?? 200, body: res.jsonBody as Record<string, unknown> };
}

describe('readiness', () => {
    let dir: string;
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'mesh-ready-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('is 200 with both checks ok when the durable backend and the run store answer', async () => {
        const stores = openEmbeddedStores(dir);
        try {
            const res = await probe({
                durableBackend: () => Promise.resolve(undefined),
                store: () => stores.runs.ping(),
            });
            expect(res.status).toBe(200);
            expect(res.body).toMatchObject({
                error_code: null,
                data: { status: 'ready', checks: { durableBackend: 'ok', store: 'ok' } },
            });
        } finally {
            stores.close();
        }
    });

    it('is 503 naming the store when the run store cannot be read', async () => {
        const stores = openEmbeddedStores(dir);
        stores.close(); // every read of the closed database throws
        const res = await probe({ durableBackend: () => Promise.resolve(undefined), store: () => stores.runs.ping() });
        expect(res.status).toBe(503);
        expect(res.body).toMatchObject({ error_code: 'UNAVAILABLE', data: null });
        expect(res.body.message).toBe('Not ready: store did not answer.');
    });

    it('is 503 naming the durable backend when it does not answer', async () => {
        const stores = openEmbeddedStores(dir);
        try {
            const res = await probe({
                durableBackend: () => Promise.reject(new Error('task hub storage unreachable')),
                store: () => stores.runs.ping(),
            });
            expect(res.status).toBe(503);
            expect(res.body.message).toBe('Not ready: durableBackend did not answer.');
        } finally {
            stores.close();
        }
    });

    it('names both when neither answers', async () => {
        const fail = () => Promise.reject(new Error('down'));
        const res = await probe({ durableBackend: fail, store: fail });
        expect(res.status).toBe(503);
        expect(res.body.message).toBe('Not ready: durableBackend, store did not answer.');
    });
});
