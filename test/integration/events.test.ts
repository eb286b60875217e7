/**
 * SPEC "Events" and "Local operation": every state change of a run goes out as a CloudEvents 1.0 event, through the
 * outbox, the publisher and the local Event Grid stand-in, to the webhooks of MESH_EVENT_SUBSCRIPTIONS: handshake
 * first, structured mode, failed deliveries retried. De-duplicated by id, each subscriber gets every event of the
 * run's audit trail exactly once and in seq order, even across a kill -9 of the host.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { Api, approveUntilEnded, USERS, verifiedTrails } from '../support/api';
import { HostProcess, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(180_000);

interface Received {
    path: string;
    event: any;
}

/**
 * A webhook on 127.0.0.1: answers the handshake, checks each delivery, and fails on purpose: the first `failFirst`
 * deliveries, and every one while `down`.
 */
class Webhook {
    readonly received: Received[] = [];
    readonly violations: string[] = [];
    handshakes = 0;
    posts = 0;
    failed = 0;
    down = false;
    url = '';
    private server!: Server;

    constructor(private readonly failFirst: number) {}

    async start(): Promise<this> {
        this.server = createServer((req, res) => {
            let body = '';
            req.on('data', (c: Buffer) => (body += c.toString()));
            req.on('end', () => {
                if (req.method === 'OPTIONS') {
                    this.handshakes++;
                    if (req.headers['webhook-request-origin'] !== 'eventgrid.azure.net')
                        this.violations.push(`handshake origin ${String(req.headers['webhook-request-origin'])}`);
                    res.writeHead(200, { 'WebHook-Allowed-Origin': String(req.headers['webhook-request-origin']) });
                    return res.end();
                }
                this.posts++;
                if (this.down || this.failed < this.failFirst) {
                    this.failed++;
                    res.writeHead(503);
                    return res.end();
                }
                this.check(req.headers['content-type'], body);
                this.received.push({ path: req.url ?? '', event: JSON.parse(body) });
                res.writeHead(200);
                res.end();
            });
        });
        await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
        return this;
    }

    /** Structured-mode CloudEvents 1.0, one event per request, with the SPEC's attributes. */
    private check(contentType: string | undefined, body: string): void {
        const problems: string[] = [];
        if (!contentType?.startsWith('application/cloudevents+json')) problems.push(`content-type ${contentType}`);
        const e = JSON.parse(body);
        if (Array.isArray(e)) problems.push('a batch, not one event');
        if (e.specversion !== '1.0') problems.push('specversion');
        if (e.source !== '/mesh-orchestrator') problems.push('source');
        if (typeof e.type !== 'string' || !e.type.startsWith('mesh.')) problems.push('type');
        if (e.subject !== `/pipelines/${e.data?.orchestrationID}`) problems.push('subject');
        if (e.id !== `${e.data?.orchestrationID}:${e.data?.seq}`) problems.push('id');
        if (e.datacontenttype !== 'application/json') problems.push('datacontenttype');
        if (typeof e.time !== 'string' || Number.isNaN(Date.parse(e.time))) problems.push('time');
        if (!e.correlationid || e.correlationid !== e.data?.correlationID) problems.push('correlationid');
        if (problems.length) this.violations.push(`${String(e.id)}: ${problems.join(', ')}`);
    }

    /** What `path` got for one run, de-duplicated by event id (first arrival kept), in arrival order. */
    firsts(path: string, runId: string): any[] {
        const seen = new Map<string, any>();
        for (const r of this.received)
            if (r.path === path && r.event.subject === `/pipelines/${runId}` && !seen.has(r.event.id))
                seen.set(r.event.id, r.event);
        return [...seen.values()];
    }

    stop(): Promise<void> {
        return new Promise((r) => this.server.close(() => r()));
    }
}

it('delivers every event of every run once by id, in seq order, matching its audit trail, across a kill -9', async () => {
    const hook = await new Webhook(5).start();
    const subscriptions = [
        { name: 'all-events', endpoint: `${hook.url}/all` },
        {
            name: 'stage-completions',
            endpoint: `${hook.url}/stages`,
            includedEventTypes: ['mesh.stage.completed'],
            subjectBeginsWith: '/pipelines/',
        },
    ];
    const env = {
        MESH_EVENT_SUBSCRIPTIONS: JSON.stringify(subscriptions),
        MESH_EVENTGRID_RETRY_SCALE: '0.001',
        MESH_ENGINE_LATENCY_MS: '15',
    };
    const dataDir = tempDataDir('mesh-events-');
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
            ...(await Promise.all(['low-1', 'low-2', 'low-3'].map((k) => submit(k, 'low')))),
            ...(await Promise.all(['high-1', 'high-2'].map((k) => submit(k, 'high')))),
        ];
        // Interventions (recorded outside the workflow): one run paused and resumed, one aborted.
        const paused = await submit('paused', 'low');
        const aborted = await submit('aborted', 'low');
        const stop = (id: string, action: string) =>
            api.call('POST', '/pipeline/stop', {
                user: USERS.olga,
                body: { orchestrationID: id, action, reason: `${action} for the test` },
            });
        expect((await stop(paused, 'pause')).status).toBe(202);
        expect((await stop(aborted, 'abort')).status).toBe(202);
        await new Promise((r) => setTimeout(r, 300));
        // From here until the restart the webhook is down: the resumed run's events wait in the stand-in, retried.
        hook.down = true;
        const failedBefore = hook.failed;
        expect(
            (
                await api.call('POST', '/pipeline/resume', {
                    user: USERS.olga,
                    body: { orchestrationID: paused, reason: 'go on' },
                })
            ).status,
        ).toBe(202);
        ids.push(paused, aborted);

        // Kill the host while the resumed run records and publishes its events and their deliveries are failing.
        await new Promise((r) => setTimeout(r, 300));
        const before = { received: hook.received.length, failed: hook.failed };
        await killAndRestart();
        hook.down = false;

        // Approve the high-risk runs' checkpoints as they open, until every run has ended.
        await approveUntilEnded(api, ids);
        const trails = await verifiedTrails(api, ids);
        // Every event of every trail reaches both webhooks (the second only gets stage completions).
        await waitUntil(
            () =>
                Promise.resolve(
                    ids.every(
                        (id) =>
                            hook.firsts('/all', id).length === trails.get(id)!.length &&
                            hook.firsts('/stages', id).length ===
                                trails.get(id)!.filter((e) => e.type === 'stage.completed').length,
                    ),
                ),
            'every event delivered',
            60_000,
            100,
        );

        expect(hook.violations).toEqual([]);
        for (const id of ids) {
            const trail = trails.get(id)!;
            const all = hook.firsts('/all', id);
            // In seq order, one per audit record, with the record's type, time, actor and correlation id.
            expect(all.map((e) => e.data.seq)).toEqual(trail.map((e) => e.seq));
            expect(all.map((e) => e.id)).toEqual(trail.map((e) => `${id}:${e.seq}`));
            expect(all.map((e) => e.type)).toEqual(trail.map((e) => `mesh.${e.type}`));
            expect(all.map((e) => e.time)).toEqual(trail.map((e) => e.at));
            expect(all.map((e) => e.data.actor)).toEqual(trail.map((e) => e.actor));
            expect(all.map((e) => e.correlationid)).toEqual(trail.map((e) => e.correlationID));
            const stages = hook.firsts('/stages', id);
            expect(stages.map((e) => e.data.seq)).toEqual(
                trail.filter((e) => e.type === 'stage.completed').map((e) => e.seq),
            );
        }
        const types = new Set(ids.flatMap((id) => trails.get(id)!.map((e) => e.type as string)));
        for (const t of [
            'pipeline.queued',
            'pipeline.started',
            'pipeline.paused',
            'pipeline.resumed',
            'pipeline.aborted',
            'pipeline.completed',
            'stage.started',
            'stage.completed',
            'checkpoint.opened',
            'checkpoint.decided',
        ])
            expect(types).toContain(t);
        expect(trails.get(paused)!.map((e) => e.type)).toEqual(
            expect.arrayContaining(['pipeline.paused', 'pipeline.resumed', 'pipeline.completed']),
        );
        expect(trails.get(aborted)!.map((e) => e.type)).toContain('pipeline.aborted');

        // Failed deliveries were retried (across the restart); nothing is left pending, published or dead-lettered.
        // Deliveries were failing (so pending in the stand-in) when the host was killed, and arrived after it.
        expect(before.failed).toBeGreaterThan(failedBefore);
        expect(hook.received.length).toBeGreaterThan(before.received);
        expect(hook.posts).toBe(hook.received.length + hook.failed);
        expect(hook.handshakes).toBeGreaterThanOrEqual(2);
        await waitUntil(
            () => Promise.resolve(count(dataDir, 'app.sqlite', 'outbox') === 0),
            'the outbox to drain',
            10_000,
        );
        expect(count(dataDir, 'eventgrid.sqlite', 'deliveries')).toBe(0);
        expect(count(dataDir, 'eventgrid.sqlite', 'dead_letters')).toBe(0);
    } catch (e: unknown) {
        throw new Error(`${String(e)}\nhost output:\n${host.output().slice(-3000)}`);
    } finally {
        await host.stop('SIGKILL');
        await hook.stop();
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
