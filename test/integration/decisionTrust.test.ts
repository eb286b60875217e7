/**
 * Issue 10: a decision counts only if it satisfies the checkpoint, however it arrives. Decisions raised straight
 * through the durable management API (as a leaked key or an insider could) are checked by the workflow itself:
 * the submitter, no attestation, a tampered attestation and one copied from another checkpoint are each refused,
 * audited as `checkpoint.refused`, and leave the run awaiting approval; a genuine approval through the API still
 * completes the run, and a person still counts once toward a quorum. Decision comments are sealed before they
 * reach the durable history: no file under the data dir holds a comment's text, and entitled readers still see it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { Api, approveUntilEnded, runAwaitingApproval, USERS } from '../support/api';
import { type HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';
import { managementApi } from '../support/managementApi';

jest.setTimeout(180_000);

let host: HostProcess;
let api: Api;

beforeAll(async () => {
    host = await startHostProcess();
    api = new Api(host);
});

afterAll(async () => {
    await host?.stop();
});

/** The durable management API, with the host's system key when the host has one (the hostkeys change). */
const durable = (method: string, path: string, body?: unknown): Promise<Response> =>
    managementApi(host, method, path, body);

async function raise(id: string, name: string, event: unknown): Promise<void> {
    const r = await durable('POST', `/instances/${id}/raiseEvent/${encodeURIComponent(name)}`, event);
    expect(r.status).toBeLessThan(300);
}

/** The decision events an instance received, as its history holds them. */
async function raisedDecisions(id: string): Promise<Record<string, any>[]> {
    const r = await durable('GET', `/instances/${id}?showHistory=true&showHistoryOutput=true`);
    const status = (await r.json()) as { history?: Record<string, any>[] };
    return (status.history ?? [])
        .filter((e) => e.EventType === 'EventRaised' && String(e.Name).startsWith('Decision:'))
        .map((e) => (typeof e.Input === 'string' ? JSON.parse(e.Input) : e.Input) as Record<string, any>);
}

async function trail(id: string): Promise<{ chain: any; events: any[] }> {
    return (await api.call('GET', `/pipeline/logs/${id}?limit=1000`, { user: USERS.carl })).body.data;
}

const statusOf = async (id: string) =>
    (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.ada })).body.data as Record<string, any>;

function filesUnder(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
        const path = join(dir, name);
        return statSync(path).isDirectory() ? filesUnder(path) : [path];
    });
}

describe('the workflow re-checks every decision', () => {
    it('refuses forged decisions raised through the management API, audits each refusal, and still takes genuine ones', async () => {
        const canary = `canary-comment-${Date.now().toString(36)}`;
        // A genuine approval elsewhere, to capture its event (attestation included) from the durable history.
        const other = await runAwaitingApproval(api, USERS.dana, 'trust: source of a captured decision');
        const approved = await api.call('POST', `/pipeline/checkpoints/${other.checkpointId}/decision`, {
            user: USERS.ava,
            body: { decision: 'approve', comment: canary },
        });
        expect(approved.status).toBe(202);
        const captured = await waitUntil(async () => (await raisedDecisions(other.id))[0], 'the captured decision');
        expect(typeof captured.attestation).toBe('string');
        expect(JSON.stringify(captured)).not.toContain(canary);

        const target = await runAwaitingApproval(api, USERS.dana, 'trust: target of forged decisions');
        const cp = target.checkpointId;
        const name = `Decision:${cp}`;
        const base = { checkpointId: cp, decision: 'approve', channel: 'api', correlationID: 'forged' };
        // 1. the submitter approves her own run, 2. an approver with no attestation
        await raise(target.id, name, { ...base, decisionId: 'forged-1', actorId: USERS.dana.sub });
        await raise(target.id, name, { ...base, decisionId: 'forged-2', actorId: USERS.ava.sub });
        // 3. a genuine attestation with its claims edited to name this checkpoint (the signature no longer holds)
        const [v, kid, payload, sig] = (captured.attestation as string).split('.') as [string, string, string, string];
        const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
        const edited = Buffer.from(JSON.stringify({ ...claims, run: target.id, cp }), 'utf8').toString('base64url');
        await raise(target.id, name, { ...captured, checkpointId: cp, attestation: `${v}.${kid}.${edited}.${sig}` });
        // 4. the captured event as it is, raised on this checkpoint (an attestation made for another checkpoint)
        await raise(target.id, name, { ...captured, checkpointId: cp });
        // 5. not a decision at all
        await raise(target.id, name, { hello: 'world' });

        const refused = await waitUntil(async () => {
            const t = await trail(target.id);
            const r = t.events.filter((e) => e.type === 'checkpoint.refused');
            return r.length >= 5 && { ...t, refused: r };
        }, 'five refusals in the audit trail');
        expect(refused.chain).toMatchObject({ verified: true });
        expect(refused.events.filter((e) => e.type === 'checkpoint.decided')).toEqual([]);
        expect(refused.refused.map((e) => e.actor)).toEqual([
            USERS.dana.sub,
            USERS.ava.sub,
            USERS.ava.sub,
            USERS.ava.sub,
            'unknown',
        ]);
        const reasons = refused.refused.map((e) => String(e.reason));
        expect(reasons[0]).toMatch(/no attestation/);
        expect(reasons[1]).toMatch(/no attestation/);
        expect(reasons[2]).toMatch(/signature does not verify/);
        expect(reasons[3]).toMatch(/another checkpoint/);
        expect(reasons[4]).toMatch(/not a well-formed decision/);
        for (const e of refused.refused) expect(e.checkpointId).toBe(cp);
        const after = await statusOf(target.id);
        expect(after.status).toBe('AwaitingApproval');
        expect(after.nextAction?.checkpointId).toBe(cp);
        expect(after.checkpoints.find((c: any) => c.checkpointId === cp).decisions).toEqual([]);

        // A genuine approval through the API still completes the run.
        await approveUntilEnded(api, [target.id, other.id]);
        expect((await statusOf(target.id)).status).toBe('Completed');
        const final = await trail(target.id);
        expect(final.chain).toMatchObject({ verified: true });
        expect(final.events.filter((e) => e.type === 'checkpoint.decided').map((e) => e.actor)).toEqual([
            USERS.ava.sub,
            USERS.ava.sub,
        ]);

        // The comment: sealed in the durable history and every store, open to entitled readers (the logs).
        const logs = await trail(other.id);
        const decided = logs.events.find(
            (e) => e.type === 'checkpoint.decided' && e.checkpointId === other.checkpointId,
        );
        expect(decided).toMatchObject({ reason: canary });
        const shown = await statusOf(other.id);
        const decision = shown.checkpoints.find((c: any) => c.checkpointId === other.checkpointId).decisions[0];
        expect(decision).toMatchObject({ actor: USERS.ava.sub, decision: 'approve' }); // status shows no comments
        const files = filesUnder(host.dataDir);
        expect(files.some((f) => /durable\.sqlite$/.test(f))).toBe(true);
        expect(files.filter((f) => readFileSync(f).includes(canary))).toEqual([]);
    });

    it('counts a person once toward a quorum, whatever is raised in their name', async () => {
        const critical = await api.call('POST', '/pipeline/run', {
            user: USERS.dana,
            body: {
                input: { prompt: 'quorum' },
                metadata: { team: 'alpha', riskLevel: 'critical', complianceTags: [], title: 'trust: quorum' },
            },
        });
        expect(critical.status).toBe(202);
        const id = critical.body.data.orchestrationID as string;
        const waiting = await waitUntil(async () => {
            const s = await statusOf(id);
            return s.status === 'AwaitingApproval' && s.nextAction?.stage === 'taste' && s;
        }, 'the critical run to await approval');
        const cp = waiting.nextAction.checkpointId as string;
        const first = await api.call('POST', `/pipeline/checkpoints/${cp}/decision`, {
            user: USERS.ava,
            body: { decision: 'approve' },
        });
        expect(first.status).toBe(202);
        const genuine = await waitUntil(async () => (await raisedDecisions(id))[0], 'the first approval');
        await waitUntil(
            async () => (await trail(id)).events.some((e) => e.type === 'checkpoint.decided'),
            'the first approval recorded',
        );
        // ava again: the API refuses; the same event raised again, or under a new id, does not count either.
        const again = await api.call('POST', `/pipeline/checkpoints/${cp}/decision`, {
            user: USERS.ava,
            body: { decision: 'approve' },
        });
        expect(again.status).toBe(409);
        await raise(id, `Decision:${cp}`, genuine);
        await raise(id, `Decision:${cp}`, { ...genuine, decisionId: 'replayed-under-a-new-id' });
        // Events are handled in order: once this one's refusal is recorded, the two before it were handled too.
        await raise(id, `Decision:${cp}`, { sentinel: true });
        await waitUntil(
            async () => (await trail(id)).events.some((e) => e.type === 'checkpoint.refused'),
            'the sentinel refused',
        );
        const s = await statusOf(id);
        expect(s.status).toBe('AwaitingApproval');
        expect(s.checkpoints.find((c: any) => c.checkpointId === cp).decisions).toHaveLength(1);
        // A second person closes the quorum.
        const second = await api.call('POST', `/pipeline/checkpoints/${cp}/decision`, {
            user: USERS.amir,
            body: { decision: 'approve' },
        });
        expect(second.status).toBe(202);
        await waitUntil(async () => (await statusOf(id)).nextAction?.checkpointId !== cp, 'the quorum to close');
        const t = await trail(id);
        expect(t.chain).toMatchObject({ verified: true });
        expect(t.events.filter((e) => e.type === 'checkpoint.decided' && e.checkpointId === cp)).toHaveLength(2);
    });
});
