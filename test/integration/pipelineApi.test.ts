/**
 * The product over real HTTP on the embedded host: runs through every stage, checkpoints decided by the
 * right people only, interventions, the verified audit trail, idempotency and listing.
 */
import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';
import { STORES } from '../support/stores';
import { tamperAuditRecord } from '../support/tamper';

jest.setTimeout(60_000);

const STAGES = ['generation', 'filtering', 'creativity', 'taste', 'improvement'];

describe.each(STORES)('pipeline API on the %s store', (store) => {
    let host: HostProcess;
    let api: Api;

    beforeAll(async () => {
        host = await startHostProcess({ store, env: { MESH_ENGINE_LATENCY_MS: '0' } });
        api = new Api(host);
    });

    afterAll(async () => {
        await host?.stop();
    });

    async function submit(
        riskLevel = 'low',
        user = USERS.dana,
        extra: Record<string, unknown> = {},
        headers: Record<string, string> = {},
    ): Promise<string> {
        const r = await api.call('POST', '/pipeline/run', {
            user,
            headers,
            body: {
                input: { prompt: 'a better onboarding flow' },
                metadata: { team: user.teams[0] ?? 'alpha', riskLevel, complianceTags: [], title: `test ${riskLevel}` },
                ...extra,
            },
        });
        expect(r.status).toBe(202);
        return r.body.data.orchestrationID as string;
    }

    async function status(id: string, user = USERS.dana): Promise<any> {
        const r = await api.call('GET', `/pipeline/status/${id}`, { user });
        expect(r.status).toBe(200);
        return r.body.data;
    }

    async function until(id: string, wanted: string, user = USERS.dana): Promise<any> {
        return waitUntil(async () => {
            const s = await status(id, user);
            return s.status === wanted && s;
        }, `${id} to be ${wanted}`);
    }

    async function decide(
        checkpointId: string,
        user: (typeof USERS)[keyof typeof USERS],
        decision: string,
        comment = 'ok',
    ) {
        return api.call('POST', `/pipeline/checkpoints/${checkpointId}/decision`, {
            user,
            body: { decision, comment },
        });
    }

    async function logs(id: string, user = USERS.carl): Promise<any> {
        const r = await api.call('GET', `/pipeline/logs/${id}?limit=1000`, { user });
        expect(r.status).toBe(200);
        return r.body.data;
    }

    it('runs a low-risk workflow through all five stages and verifies its audit chain', async () => {
        const id = await submit('low');
        const done = await until(id, 'Completed');
        expect(done.stages.map((s: any) => s.name)).toEqual(STAGES);
        expect(
            done.stages.every((s: any) => s.status === 'Completed' && s.attempts >= 1 && s.startedAt && s.endedAt),
        ).toBe(true);
        expect(done.output).toBeDefined();
        expect(done.nextAction).toBeNull();
        const l = await logs(id);
        expect(l.chain.verified).toBe(true);
        expect(l.events.map((e: any) => e.seq)).toEqual(l.events.map((_: unknown, i: number) => i + 1));
        expect(l.events.map((e: any) => e.type)).toEqual([
            'pipeline.queued',
            'pipeline.started',
            ...STAGES.flatMap(() => ['stage.started', 'stage.completed']),
            'pipeline.completed',
        ]);
        for (const e of l.events)
            expect(e).toEqual(
                expect.objectContaining({
                    actor: expect.any(String),
                    at: expect.any(String),
                    correlationID: expect.any(String),
                    hash: expect.any(String),
                    prevHash: expect.any(String),
                }),
            );
    });

    it('stops a high-risk run before taste and after improvement; only a team approver who is not the submitter decides', async () => {
        const id = await submit('high');
        const waiting = await until(id, 'AwaitingApproval');
        expect(waiting.nextAction).toMatchObject({
            type: 'approval',
            stage: 'taste',
            position: 'before',
            requiredRoles: ['Mesh.Approver'],
        });
        const cp = waiting.nextAction.checkpointId as string;

        expect((await decide(cp, USERS.dana, 'approve')).status).toBe(403); // submitter: not an approver
        const selfApprover = { sub: 'dana', roles: ['Mesh.Developer', 'Mesh.Approver'], teams: ['alpha'] };
        const four = await decide(cp, selfApprover, 'approve');
        expect(four.status).toBe(403); // four-eyes
        expect(four.body.error_code).toBe('FORBIDDEN');
        expect((await decide(cp, USERS.bea, 'approve')).status).toBe(404); // another team's approver cannot see it
        expect((await decide(cp, USERS.ava, 'approve')).status).toBe(202);

        const second = await waitUntil(async () => {
            const s = await status(id);
            return s.status === 'AwaitingApproval' && s.nextAction?.stage === 'improvement' && s;
        }, 'the after-improvement checkpoint');
        expect(second.nextAction.position).toBe('after');
        expect((await decide(second.nextAction.checkpointId, USERS.amir, 'approve')).status).toBe(202);
        await until(id, 'Completed');
        const types = (await logs(id)).events.map((e: any) => e.type);
        expect(types.filter((t: string) => t === 'checkpoint.opened')).toHaveLength(2);
        expect(types.filter((t: string) => t === 'checkpoint.decided')).toHaveLength(2);
    });

    it('needs two distinct approvers for a critical run; one person counts once', async () => {
        const id = await submit('critical');
        const cp = (await until(id, 'AwaitingApproval')).nextAction.checkpointId as string;
        expect((await decide(cp, USERS.ava, 'approve')).status).toBe(202);
        await waitUntil(
            async () => (await status(id)).checkpoints.find((c: any) => c.checkpointId === cp)?.decisions.length === 1,
            'first approval recorded',
        );
        const again = await decide(cp, USERS.ava, 'approve');
        expect(again.status).toBe(409);
        expect((await status(id)).status).toBe('AwaitingApproval');
        expect((await decide(cp, USERS.amir, 'approve')).status).toBe(202);
        await waitUntil(async () => {
            const s = await status(id);
            return s.nextAction?.stage === 'improvement' && s;
        }, 'the second checkpoint');
    });

    it('a rejection ends the run as Rejected', async () => {
        const id = await submit('high');
        const cp = (await until(id, 'AwaitingApproval')).nextAction.checkpointId as string;
        expect((await decide(cp, USERS.ava, 'reject', 'not safe')).status).toBe(202);
        const s = await until(id, 'Rejected');
        expect(s.stages.find((x: any) => x.name === 'taste').status).toBe('Pending');
        expect((await decide(cp, USERS.amir, 'approve')).status).toBe(409); // nothing changes a finished run
    });

    it('request_info keeps the run waiting and records the question', async () => {
        const id = await submit('high');
        const cp = (await until(id, 'AwaitingApproval')).nextAction.checkpointId as string;
        expect((await decide(cp, USERS.ava, 'request_info', 'which dataset?')).status).toBe(202);
        await waitUntil(
            async () =>
                (await logs(id)).events.some(
                    (e: any) =>
                        e.type === 'checkpoint.decided' &&
                        e.details?.decision === 'request_info' &&
                        e.reason === 'which dataset?',
                ),
            'request_info audited',
        );
        expect((await status(id)).status).toBe('AwaitingApproval');
        expect((await decide(cp, USERS.ava, 'approve')).status).toBe(202);
        await waitUntil(
            async () => (await status(id)).nextAction?.stage === 'improvement',
            'approval after request_info',
        );
    });

    it('pauses at a checkpoint, refuses decisions while paused, resumes, and aborts with the actor and reason audited', async () => {
        const id = await submit('high');
        await until(id, 'AwaitingApproval');
        expect(
            (
                await api.call('POST', '/pipeline/stop', {
                    user: USERS.ava,
                    body: { orchestrationID: id, action: 'pause', reason: 'x' },
                })
            ).status,
        ).toBe(403);
        expect(
            (
                await api.call('POST', '/pipeline/stop', {
                    user: USERS.olga,
                    body: { orchestrationID: id, action: 'pause', reason: 'maintenance window' },
                })
            ).status,
        ).toBe(202);
        const paused = await until(id, 'Paused');
        expect((await decide(paused.nextAction.checkpointId, USERS.ava, 'approve')).status).toBe(409);
        expect(
            (
                await api.call('POST', '/pipeline/resume', {
                    user: USERS.olga,
                    body: { orchestrationID: id, reason: '   ' },
                })
            ).status,
        ).toBe(400);
        expect(
            (
                await api.call('POST', '/pipeline/resume', {
                    user: USERS.olga,
                    body: { orchestrationID: id, reason: 'window over' },
                })
            ).status,
        ).toBe(202);
        await until(id, 'AwaitingApproval');
        const resumeAgain = await api.call('POST', '/pipeline/resume', {
            user: USERS.olga,
            body: { orchestrationID: id, reason: 'again' },
        });
        expect(resumeAgain.status).toBe(409);
        expect(resumeAgain.body.error_code).toBe('CONFLICT');
        // The submitter may abort their own run.
        expect(
            (
                await api.call('POST', '/pipeline/stop', {
                    user: USERS.dana,
                    body: { orchestrationID: id, action: 'abort', reason: 'wrong prompt' },
                })
            ).status,
        ).toBe(202);
        await until(id, 'Aborted');
        const events = (await logs(id)).events;
        expect(events.find((e: any) => e.type === 'pipeline.paused')).toMatchObject({
            actor: 'olga',
            reason: 'maintenance window',
        });
        expect(events.find((e: any) => e.type === 'pipeline.resumed')).toMatchObject({
            actor: 'olga',
            reason: 'window over',
        });
        expect(events.find((e: any) => e.type === 'pipeline.aborted')).toMatchObject({
            actor: 'dana',
            reason: 'wrong prompt',
        });
        const late = await api.call('POST', '/pipeline/stop', {
            user: USERS.olga,
            body: { orchestrationID: id, action: 'abort', reason: 'again' },
        });
        expect(late.status).toBe(409);
    });

    it('returns the same run for a retried submission with the same Idempotency-Key', async () => {
        const a = await submit('low', USERS.dana, {}, { 'idempotency-key': 'retry-1' });
        const b = await submit('low', USERS.dana, {}, { 'idempotency-key': 'retry-1' });
        expect(b).toBe(a);
        const c = await submit('low', USERS.sam, {}, { 'idempotency-key': 'retry-1' });
        expect(c).not.toBe(a); // keys are per caller
    });

    it('refuses an Idempotency-Key reused with a different body (CONFLICT), and still replays the same body', async () => {
        const body = (prompt: string) => ({
            input: { prompt },
            metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [], title: 'idem' },
        });
        const headers = { 'idempotency-key': 'reuse-1' };
        const first = await api.call('POST', '/pipeline/run', { user: USERS.dana, headers, body: body('first') });
        expect(first.status).toBe(202);
        const id = first.body.data.orchestrationID as string;
        const countBefore = (await api.call('GET', '/pipeline?limit=200', { user: USERS.ada })).body.data.items.length;
        const logsBefore = (await api.call('GET', `/pipeline/logs/${id}`, { user: USERS.ada })).body.data.events.length;

        const other = await api.call('POST', '/pipeline/run', { user: USERS.dana, headers, body: body('second') });
        expect(other.status).toBe(409);
        expect(other.body.error_code).toBe('CONFLICT');
        expect(other.body.message).toMatch(/Idempotency-Key .*different request body/);
        expect(JSON.stringify(other.body)).not.toContain(id);

        // The same body in another key order and spacing is the same request (canonical JSON): replayed.
        const reordered = JSON.stringify({ metadata: body('first').metadata, input: { prompt: 'first' } }, null, 2);
        const again = await api.call('POST', '/pipeline/run', { user: USERS.dana, headers, raw: reordered });
        expect(again.status).toBe(202);
        expect(again.body.data.orchestrationID).toBe(id);
        expect((await api.call('GET', '/pipeline?limit=200', { user: USERS.ada })).body.data.items.length).toBe(
            countBefore,
        );
        const logsAfter = (await api.call('GET', `/pipeline/logs/${id}`, { user: USERS.ada })).body.data.events;
        expect(logsAfter.filter((e: any) => e.type === 'pipeline.queued')).toHaveLength(1);
        expect(logsAfter.length).toBeGreaterThanOrEqual(logsBefore);
    });

    it('lists only the runs a caller may see, with filters and pages', async () => {
        const mine = await submit('low', USERS.bob);
        await until(mine, 'Completed', USERS.bob);
        const asBob = await api.call('GET', '/pipeline?limit=200', { user: USERS.bob });
        expect(asBob.status).toBe(200);
        expect(asBob.body.data.items.every((r: any) => r.team === 'beta')).toBe(true);
        const asCarl = await api.call('GET', '/pipeline?team=beta&status=Completed', { user: USERS.carl });
        expect(asCarl.body.data.items.map((r: any) => r.orchestrationID)).toContain(mine);
        const page1 = await api.call('GET', '/pipeline?limit=2', { user: USERS.ada });
        expect(page1.body.data.items).toHaveLength(2);
        const page2 = await api.call(
            'GET',
            `/pipeline?limit=2&continuationToken=${encodeURIComponent(page1.body.data.continuationToken)}`,
            { user: USERS.ada },
        );
        expect(page2.body.data.items[0].orchestrationID).not.toBe(page1.body.data.items[0].orchestrationID);
        expect((await api.call('GET', '/pipeline?status=Bogus', { user: USERS.ada })).status).toBe(400);
    });

    it('streams all audit records as NDJSON', async () => {
        const id = await submit('low');
        await until(id, 'Completed');
        const r = await fetch(`${host.origin}/pipeline/logs/${id}?format=ndjson`, {
            headers: { authorization: `Bearer ${await api.token(USERS.dana)}` },
        });
        expect(r.headers.get('content-type')).toBe('application/x-ndjson');
        const lines = (await r.text())
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l));
        expect(lines[0]).toMatchObject({ seq: 1, type: 'pipeline.queued' });
        expect(lines.at(-2)).toMatchObject({ type: 'pipeline.completed' });
        // The last line is the chain's verdict.
        expect(lines.at(-1)).toEqual({ chain: { verified: true, head: lines.at(-2).hash } });
    });

    it('serves live status changes over SSE', async () => {
        const controller = new AbortController();
        const r = await fetch(`${host.origin}/pipeline/events`, {
            headers: { authorization: `Bearer ${await api.token(USERS.dana)}` },
            signal: controller.signal,
        });
        expect(r.headers.get('content-type')).toBe('text/event-stream');
        const id = await submit('low');
        const reader = r.body!.getReader();
        let text = '';
        const deadline = Date.now() + 20_000;
        while (!text.includes(`"orchestrationID":"${id}","status":"Completed"`) && Date.now() < deadline) {
            const { value, done } = await reader.read();
            if (done) break;
            text += new TextDecoder().decode(value);
        }
        controller.abort();
        expect(text).toContain(`"orchestrationID":"${id}","status":"Completed"`);
        // The event id is the store's change cursor (opaque; numeric on the embedded store).
        expect(text).toMatch(/^id: \S+$/m);
    });

    it('serves the OpenAPI document unenveloped', async () => {
        const r = await fetch(`${host.origin}/openapi.json`);
        const doc = (await r.json()) as { openapi: string; paths: Record<string, unknown> };
        expect(doc.openapi).toBe('3.1.0');
        expect(Object.keys(doc.paths)).toEqual(
            expect.arrayContaining(['/pipeline/run', '/pipeline/status/{id}', '/pipeline/logs/{id}']),
        );
    });

    it('names the tampered audit record when its chain no longer verifies', async () => {
        const id = await submit('low');
        await until(id, 'Completed');
        // An attacker with write access to the database edits one record (behind the store's back).
        await tamperAuditRecord(store, host, id, 3, (record) => ({ ...record, actor: 'mallory' }));
        const l = await logs(id);
        expect(l.chain.verified).toBe(false);
        expect(l.chain.brokenAt).toEqual({ seq: 3, reason: 'hash mismatch' });
    });
});
