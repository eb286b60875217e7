/**
 * Waiting on whom, the inbox and cross-origin use over real HTTP on the embedded host, on every store:
 * `nextAction.waitingOn` as a checkpoint opens and takes one of two approvals, `total` with filters and pages,
 * `waitingFor` and `riskLevel`, `GET /pipeline/inbox` for approvers, submitters and other teams, and CORS preflights
 * answered for listed origins only (MESH_CORS_ORIGINS).
 */
import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';
import { STORES } from '../support/stores';

jest.setTimeout(90_000);

const ALLOWED = 'https://plugins.example.com';

describe.each(STORES)('waiting on whom, inbox and CORS on the %s store', (store) => {
    let host: HostProcess;
    let api: Api;

    beforeAll(async () => {
        host = await startHostProcess({
            store,
            env: { MESH_ENGINE_LATENCY_MS: '0', MESH_CORS_ORIGINS: `${ALLOWED},http://localhost:5173` },
        });
        api = new Api(host);
    });

    afterAll(async () => {
        await host?.stop();
    });

    let n = 0;
    const unique = (what: string) => `${what} ${store} ${process.pid} ${++n}`;

    async function submit(riskLevel: string, user: (typeof USERS)[keyof typeof USERS], title: string): Promise<string> {
        const r = await api.call('POST', '/pipeline/run', {
            user,
            body: {
                input: { prompt: title },
                metadata: { team: user.teams[0], riskLevel, complianceTags: [], title },
            },
        });
        expect(r.status).toBe(202);
        return r.body.data.orchestrationID as string;
    }

    async function awaiting(id: string, user: (typeof USERS)[keyof typeof USERS] = USERS.ada): Promise<any> {
        return waitUntil(async () => {
            const s = (await api.call('GET', `/pipeline/status/${id}`, { user })).body.data;
            return s.status === 'AwaitingApproval' && s.nextAction?.stage === 'taste' && s;
        }, `${id} to await approval`);
    }

    async function inbox(user: (typeof USERS)[keyof typeof USERS]): Promise<any[]> {
        const r = await api.call('GET', '/pipeline/inbox', { user });
        expect(r.status).toBe(200);
        return r.body.data.items as any[];
    }

    async function list(query: string, user: (typeof USERS)[keyof typeof USERS]): Promise<any> {
        const r = await api.call('GET', `/pipeline?${query}`, { user });
        expect([r.status, r.body.error_code]).toEqual([200, null]);
        return r.body.data;
    }

    it('waitingOn names who may decide now, since when and until when; one of two approvals moves it on', async () => {
        const title = unique('critical waiting');
        const id = await submit('critical', USERS.dana, title);
        const waiting = await awaiting(id, USERS.dana);
        const cp = waiting.nextAction.checkpointId as string;
        const on = waiting.nextAction.waitingOn;
        // The directory's alpha approvers; never dana (the submitter); not ada (Admin, but not an Approver until escalation).
        expect(on.approvers).toEqual(
            expect.arrayContaining([
                { id: 'ava', name: 'Ava Approver' },
                { id: 'amir', name: 'Amir Approver' },
            ]),
        );
        expect(on.approvers).toHaveLength(2);
        expect(on).toMatchObject({
            deadline: waiting.nextAction.deadline,
            approvals: { have: 0, need: 2 },
            escalated: false,
        });
        expect(Date.parse(on.since)).toBeLessThanOrEqual(Date.now());
        expect(Date.parse(on.since)).toBeLessThan(Date.parse(on.deadline));

        const q = `q=${encodeURIComponent(title)}`;
        expect((await list(`waitingFor=ava&${q}`, USERS.ava)).total).toBe(1);
        expect((await inbox(USERS.ava)).map((i) => i.checkpointId)).toContain(cp);

        const decided = await api.call('POST', `/pipeline/checkpoints/${cp}/decision`, {
            user: USERS.ava,
            body: { decision: 'approve', comment: 'fine by me' },
        });
        expect(decided.status).toBe(202);
        const after = await waitUntil(async () => {
            const s = (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.dana })).body.data;
            return s.nextAction?.waitingOn?.approvals.have === 1 && s;
        }, 'the first approval to count');
        expect(after.nextAction.waitingOn).toMatchObject({
            approvers: [{ id: 'amir', name: 'Amir Approver' }],
            since: on.since,
            approvals: { have: 1, need: 2 },
        });

        // ava approved: no longer waited for; amir still is, whoever asks (within what they may see).
        expect(await list(`waitingFor=ava&${q}`, USERS.ava)).toMatchObject({ total: 0, items: [] });
        const forAmir = await list(`waitingFor=amir&${q}`, USERS.ada);
        expect(forAmir.total).toBe(1);
        expect(forAmir.items.map((r: any) => r.orchestrationID)).toEqual([id]);
        expect((await list(`waitingFor=dana&${q}`, USERS.ada)).total).toBe(0); // the submitter never
        expect((await list(`waitingFor=nobody-known&${q}`, USERS.ada)).total).toBe(0);
        expect((await list(`waitingFor=amir&${q}`, USERS.bob)).total).toBe(0); // another team sees nothing

        const amirs = (await inbox(USERS.amir)).filter((i) => i.checkpointId === cp);
        expect(amirs).toEqual([
            expect.objectContaining({
                action: 'decide',
                orchestrationID: id,
                title,
                team: 'alpha',
                riskLevel: 'critical',
                stage: 'taste',
                position: 'before',
                since: on.since,
                deadline: on.deadline,
                approvals: { have: 1, need: 2 },
                escalated: false,
                requiredRoles: ['Mesh.Approver'],
            }),
        ]);
        expect((await inbox(USERS.ava)).map((i) => i.checkpointId)).not.toContain(cp);
        expect((await inbox(USERS.dana)).filter((i) => i.action === 'decide')).toEqual([]);
    });

    it('the inbox lists what the caller may decide, oldest first, and never another team’s runs', async () => {
        const first = await submit('high', USERS.dana, unique('inbox first'));
        await awaiting(first);
        const second = await submit('high', USERS.sam, unique('inbox second'));
        await awaiting(second);
        const beta = await submit('high', USERS.bob, unique('inbox beta'));
        await awaiting(beta);

        const avas = await inbox(USERS.ava);
        const ids = avas.map((i) => i.orchestrationID);
        expect(ids).toEqual(expect.arrayContaining([first, second]));
        expect(ids.indexOf(first)).toBeLessThan(ids.indexOf(second));
        expect(ids).not.toContain(beta);
        expect(avas.every((i) => i.team === 'alpha' && i.action === 'decide')).toBe(true);
        const since = avas.map((i) => Date.parse(i.since));
        expect(since).toEqual([...since].sort((a, b) => a - b));

        const beas = (await inbox(USERS.bea)).map((i) => i.orchestrationID);
        expect(beas).toContain(beta);
        expect(beas).not.toEqual(expect.arrayContaining([first]));
        expect(beas).not.toContain(second);
        // Submitters and people without a deciding role decide nothing; an Admin who is no Approver neither.
        for (const u of [USERS.dana, USERS.sam, USERS.bob, USERS.carl, USERS.ada])
            expect((await inbox(u)).filter((i) => i.action === 'decide')).toEqual([]);
        expect((await api.call('GET', '/pipeline/inbox')).status).toBe(401);
    });

    it('answers total with filters and pages, and filters by riskLevel', async () => {
        const tag = unique('total tag');
        const made = [
            await submit('low', USERS.bob, `${tag} a`),
            await submit('low', USERS.bob, `${tag} b`),
            await submit('medium', USERS.bob, `${tag} c`),
        ];
        const q = `q=${encodeURIComponent(tag)}`;
        const page1 = await list(`${q}&limit=2`, USERS.bob);
        expect(page1.total).toBe(3);
        expect(page1.items).toHaveLength(2);
        const page2 = await list(
            `${q}&limit=2&continuationToken=${encodeURIComponent(page1.continuationToken)}`,
            USERS.bob,
        );
        expect(page2.total).toBe(3);
        expect(page2.items).toHaveLength(1);
        expect(page2.continuationToken).toBeUndefined();
        expect([...page1.items, ...page2.items].map((r: any) => r.orchestrationID).sort()).toEqual([...made].sort());

        const medium = await list(`${q}&riskLevel=medium`, USERS.bob);
        expect(medium.total).toBe(1);
        expect(medium.items.map((r: any) => r.riskLevel)).toEqual(['medium']);
        expect((await list(`${q}&riskLevel=low,medium`, USERS.bob)).total).toBe(3);
        expect((await list(`${q}&riskLevel=critical`, USERS.bob)).total).toBe(0);
        // Another team's runs are neither listed nor counted.
        expect(await list(q, USERS.dana)).toMatchObject({ total: 0, items: [] });
        expect((await list(q, USERS.carl)).total).toBe(3);

        for (const bad of ['riskLevel=extreme', 'riskLevel=low,none', 'waitingFor=', `waitingFor=${'x'.repeat(257)}`]) {
            const r = await api.call('GET', `/pipeline?${bad}`, { user: USERS.bob });
            expect([bad, r.status, r.body.error_code]).toEqual([bad, 400, 'VALIDATION_FAILED']);
        }
    });

    it('serves /pipeline/inbox beside /pipeline/status/{id} without either shadowing the other', async () => {
        const status = await api.call('GET', '/pipeline/status/inbox', { user: USERS.ada });
        expect([status.status, status.body.error_code]).toEqual([404, 'NOT_FOUND']);
        expect(status.body.message).toContain("Run 'inbox'");
        const box = await api.call('GET', '/pipeline/inbox', { user: USERS.ada });
        expect(box.status).toBe(200);
        expect(Array.isArray(box.body.data.items)).toBe(true);
        expect((await api.call('POST', '/pipeline/inbox', { user: USERS.ada, body: {} })).status).toBe(405);
    });

    it("lists an open info request as the submitter's 'answer' item until it is answered", async () => {
        const id = await submit('high', USERS.dana, unique('info inbox'));
        const cp = (await awaiting(id, USERS.dana)).nextAction.checkpointId as string;
        const asked = await api.call('POST', `/pipeline/checkpoints/${cp}/decision`, {
            user: USERS.ava,
            body: { decision: 'request_info', comment: 'which data set?' },
        });
        expect(asked.status).toBe(202);
        const item = await waitUntil(
            async () => (await inbox(USERS.dana)).find((i) => i.checkpointId === cp && i.action === 'answer'),
            "dana's answer item",
        );
        expect(item).toMatchObject({ orchestrationID: id, infoRequest: { by: 'ava' } });
        // Only the run's team answers: another team's inbox never shows it.
        expect((await inbox(USERS.bob)).some((i) => i.checkpointId === cp)).toBe(false);
        const answered = await api.call('POST', `/pipeline/checkpoints/${cp}/info`, {
            user: USERS.dana,
            body: { comment: 'the 2026 survey' },
        });
        expect(answered.status).toBe(202);
        await waitUntil(
            async () => !(await inbox(USERS.dana)).some((i) => i.checkpointId === cp && i.action === 'answer'),
            'the answer item to go',
        );
        // The checkpoint still waits for a decision: the approvers keep their 'decide' item.
        expect((await inbox(USERS.ava)).some((i) => i.checkpointId === cp && i.action === 'decide')).toBe(true);
    });

    describe('CORS (MESH_CORS_ORIGINS)', () => {
        const ROUTES: [string, string][] = [
            ['/pipeline', 'GET'],
            ['/pipeline/inbox', 'GET'],
            ['/pipeline/status/run-x', 'GET'],
            ['/pipeline/logs/run-x', 'GET'],
            ['/pipeline/run', 'POST'],
            ['/pipeline/stop', 'POST'],
            ['/pipeline/resume', 'POST'],
            ['/pipeline/events', 'GET'],
            ['/pipeline/checkpoints/run-x.1.taste.before.0/decision', 'POST'],
            ['/pipeline/checkpoints/run-x.1.taste.before.0/info', 'POST'],
            ['/checkpoint-policies', 'PUT'],
            ['/checkpoint-policies', 'GET'],
            ['/health/live', 'GET'],
            ['/health/ready', 'GET'],
            ['/openapi.json', 'GET'],
        ];
        const preflight = (path: string, origin: string, method: string) =>
            fetch(host.origin + path, {
                method: 'OPTIONS',
                headers: {
                    origin,
                    'access-control-request-method': method,
                    'access-control-request-headers': 'authorization, content-type',
                },
            });

        it.each(ROUTES)('answers the preflight of %s (%s) for a listed origin', async (path, method) => {
            const r = await preflight(path, ALLOWED, method);
            expect(r.status).toBe(204);
            expect(r.headers.get('access-control-allow-origin')).toBe(ALLOWED);
            expect(r.headers.get('access-control-allow-methods')).toContain(method);
            expect(r.headers.get('access-control-allow-headers')).toBe(
                'authorization, content-type, idempotency-key, x-correlation-id, last-event-id, api-version',
            );
            expect(r.headers.get('access-control-allow-credentials')).toBeNull();
        });

        it.each(ROUTES)('refuses the preflight of %s (%s) for another origin', async (path, method) => {
            const r = await preflight(path, 'https://evil.example', method);
            expect(r.status).toBe(403);
            expect(r.headers.get('access-control-allow-origin')).toBeNull();
            expect(((await r.json()) as any).error_code).toBe('FORBIDDEN');
        });

        it('adds allow-origin and the exposed headers to answers for listed origins only', async () => {
            const token = await api.token(USERS.ada);
            const get = (origin: string) =>
                fetch(`${host.origin}/pipeline?limit=1`, { headers: { origin, authorization: `Bearer ${token}` } });
            const ok = await get('http://localhost:5173');
            expect(ok.status).toBe(200);
            expect(ok.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
            expect(ok.headers.get('access-control-expose-headers')).toBe('x-correlation-id, retry-after');
            expect(ok.headers.get('vary')).toMatch(/origin/i);
            const other = await get('https://evil.example');
            expect(other.status).toBe(200); // the API answers; the browser withholds it from the other origin
            expect(other.headers.get('access-control-allow-origin')).toBeNull();
            // Errors carry it too, so the widget can show them.
            const denied = await fetch(`${host.origin}/pipeline/inbox`, { headers: { origin: ALLOWED } });
            expect(denied.status).toBe(401);
            expect(denied.headers.get('access-control-allow-origin')).toBe(ALLOWED);
        });
    });
});
