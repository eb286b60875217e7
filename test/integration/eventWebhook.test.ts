/**
 * Issue 4, the generic event webhook: with MESH_EVENT_WEBHOOK_URL and MESH_EVENT_WEBHOOK_SECRET set, the
 * forwardEvents function POSTs every lifecycle CloudEvent as JSON, signed (`X-Mesh-Signature`), retrying with
 * backoff and then through Event Grid's redelivery. A receiver that verifies every signature and fails on purpose
 * for a while still sees, de-duplicated by id, each run's audit trail exactly once and in seq order, even across a
 * kill -9 of the host.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { verifyMeshSignature } from '../../adapters/webhooks/signedWebhook';
import { Api, approveUntilEnded, USERS, verifiedTrails } from '../support/api';
import { HostProcess, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(180_000);

const SECRET = 'event-webhook-test-secret';

/**
 * A generic webhook on 127.0.0.1: verifies each request's signature (401 if invalid), answers 500 to the first
 * `failFirst` deliveries and to every one while `down`, and keeps the rest.
 */
class Receiver {
    readonly received: any[] = [];
    readonly violations: string[] = [];
    posts = 0;
    failed = 0;
    invalid = 0;
    down = false;
    url = '';
    private server!: Server;

    constructor(private readonly failFirst: number) {}

    async start(): Promise<this> {
        this.server = createServer((req, res) => {
            let body = '';
            req.on('data', (c: Buffer) => (body += c.toString()));
            req.on('end', () => {
                this.posts++;
                if (req.method !== 'POST') this.violations.push(`method ${req.method}`);
                const signature = req.headers['x-mesh-signature'];
                if (!verifyMeshSignature(typeof signature === 'string' ? signature : undefined, body, SECRET)) {
                    this.invalid++;
                    res.writeHead(401);
                    return res.end();
                }
                if (this.down || this.failed < this.failFirst) {
                    this.failed++;
                    res.writeHead(500);
                    return res.end();
                }
                if (!req.headers['content-type']?.startsWith('application/json'))
                    this.violations.push(`content-type ${req.headers['content-type']}`);
                const e = JSON.parse(body);
                if (e.specversion !== '1.0' || typeof e.id !== 'string' || !String(e.type).startsWith('mesh.'))
                    this.violations.push(`not a mesh CloudEvent: ${body.slice(0, 200)}`);
                this.received.push(e);
                res.writeHead(200);
                res.end();
            });
        });
        await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/mesh-events`;
        return this;
    }

    /** What arrived for one run, de-duplicated by event id (first arrival kept), in arrival order. */
    firsts(runId: string): any[] {
        const seen = new Map<string, any>();
        for (const e of this.received) if (e.subject === `/pipelines/${runId}` && !seen.has(e.id)) seen.set(e.id, e);
        return [...seen.values()];
    }

    stop(): Promise<void> {
        return new Promise((r) => this.server.close(() => r()));
    }
}

it('forwards every event of every run, signed, once by id and in seq order, across failures and a kill -9', async () => {
    const receiver = await new Receiver(8).start();
    const env = {
        MESH_EVENT_WEBHOOK_URL: receiver.url,
        MESH_EVENT_WEBHOOK_SECRET: SECRET,
        MESH_EVENTGRID_RETRY_SCALE: '0.001',
        MESH_ENGINE_LATENCY_MS: '15',
    };
    const dataDir = tempDataDir('mesh-event-webhook-');
    let host: HostProcess = await startHostProcess({ dataDir, env });
    let api = new Api(host);
    const killAndRestart = async (): Promise<void> => {
        await host.stop('SIGKILL');
        host = await startHostProcess({ dataDir, env });
        api = new Api(host);
    };
    const submit = async (key: string, riskLevel: string): Promise<string> => {
        const r = await api.call('POST', '/pipeline/run', {
            user: USERS.dana,
            headers: { 'idempotency-key': key, 'x-correlation-id': `corr-${key}` },
            body: { input: { prompt: key }, metadata: { team: 'alpha', riskLevel, complianceTags: [] } },
        });
        expect(r.status).toBe(202);
        return r.body.data.orchestrationID as string;
    };

    try {
        const ids = [
            ...(await Promise.all(['low-1', 'low-2'].map((k) => submit(k, 'low')))),
            ...(await Promise.all(['high-1', 'high-2'].map((k) => submit(k, 'high')))),
        ];
        const aborted = await submit('aborted', 'low');
        expect(
            (
                await api.call('POST', '/pipeline/stop', {
                    user: USERS.olga,
                    body: { orchestrationID: aborted, action: 'abort', reason: 'abort for the test' },
                })
            ).status,
        ).toBe(202);
        ids.push(aborted);
        await new Promise((r) => setTimeout(r, 300));

        // The receiver goes down; deliveries fail (and wait in the stand-in) while the host is killed midway.
        receiver.down = true;
        const failedBefore = receiver.failed;
        await new Promise((r) => setTimeout(r, 400));
        const before = { received: receiver.received.length, failed: receiver.failed };
        await killAndRestart();
        receiver.down = false;

        // Approve the high-risk runs' checkpoints as they open, until every run has ended.
        await approveUntilEnded(api, ids);
        const trails = await verifiedTrails(api, ids);
        await waitUntil(
            () => Promise.resolve(ids.every((id) => receiver.firsts(id).length === trails.get(id)!.length)),
            'every event forwarded',
            60_000,
            100,
        );

        // Every request was signed validly; each run's events, de-duplicated, are its audit trail in seq order.
        expect(receiver.invalid).toBe(0);
        expect(receiver.violations).toEqual([]);
        for (const id of ids) {
            const trail = trails.get(id)!;
            const got = receiver.firsts(id);
            expect(got.map((e) => e.data.seq)).toEqual(trail.map((e) => e.seq));
            expect(got.map((e) => e.id)).toEqual(trail.map((e) => `${id}:${e.seq}`));
            expect(got.map((e) => e.type)).toEqual(trail.map((e) => `mesh.${e.type}`));
            expect(got.map((e) => e.time)).toEqual(trail.map((e) => e.at));
            expect(got.map((e) => e.correlationid)).toEqual(trail.map((e) => e.correlationID));
        }
        const types = new Set(ids.flatMap((id) => trails.get(id)!.map((e) => e.type as string)));
        for (const t of [
            'pipeline.queued',
            'pipeline.started',
            'pipeline.aborted',
            'pipeline.completed',
            'stage.started',
            'stage.completed',
            'checkpoint.opened',
            'checkpoint.decided',
        ])
            expect(types).toContain(t);
        expect(trails.get(aborted)!.map((e) => e.type)).toContain('pipeline.aborted');

        // Deliveries failed (the first ones, and while down across the kill) and were retried until they arrived.
        expect(before.failed).toBeGreaterThan(failedBefore);
        expect(receiver.failed).toBeGreaterThanOrEqual(8);
        expect(receiver.received.length).toBeGreaterThan(before.received);
        expect(receiver.posts).toBe(receiver.received.length + receiver.failed);
        await waitUntil(
            () => Promise.resolve(count(dataDir, 'eventgrid.sqlite', 'deliveries') === 0),
            'the stand-in to finish delivering',
            10_000,
        );
        expect(count(dataDir, 'eventgrid.sqlite', 'dead_letters')).toBe(0);
    } catch (e: unknown) {
        throw new Error(`${String(e)}\nhost output:\n${host.output().slice(-3000)}`);
    } finally {
        await host.stop('SIGKILL');
        await receiver.stop();
    }
});

function count(dataDir: string, file: string, table: string): number {
    const db = new Database(join(dataDir, file), { readonly: true, fileMustExist: true });
    try {
        return (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
    } finally {
        db.close();
    }
}
