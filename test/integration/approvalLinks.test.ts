/**
 * Signed approval links over real HTTP on the embedded host. The test mints links as the notification side will:
 * `linksFor` + the jose signer over the same key file the host uses (`<MESH_KEYS_DIR>/link-keys.json`).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { JoseLinkSigner, loadOrCreateLinkKeyFile } from '../../adapters/links/joseLinkSigner';
import { type LinkClaims, linksFor } from '../../domain/links';
import type { Decision } from '../../domain/quorum';
import type { RunDoc } from '../../domain/run';
import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';
import { managementApi } from '../support/managementApi';

jest.setTimeout(90_000);

const CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'";
let host: HostProcess;
let api: Api;
let signer: JoseLinkSigner;

beforeAll(async () => {
    host = await startHostProcess({ env: { MESH_ENGINE_LATENCY_MS: '0' } });
    api = new Api(host);
    signer = new JoseLinkSigner(() => loadOrCreateLinkKeyFile(join(host.dataDir, 'keys')));
});

afterAll(async () => {
    await host?.stop();
});

interface Page {
    status: number;
    html: string;
    headers: Headers;
    /** The error code the page shows, if it is an error page. */
    code: string | undefined;
}

async function page(method: 'GET' | 'POST' | 'HEAD', token: string, init: RequestInit = {}): Promise<Page> {
    const r = await fetch(`${host.origin}/approvals/${token}`, {
        method,
        ...init,
        signal: AbortSignal.timeout(30_000),
    });
    const html = await r.text();
    return {
        status: r.status,
        html,
        headers: r.headers,
        code: /<code id="error-code">([A-Z_]+)<\/code>/.exec(html)?.[1],
    };
}

const form = (fields: Record<string, string>): RequestInit => ({
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
});

async function submitHigh(title: string): Promise<string> {
    const r = await api.call('POST', '/pipeline/run', {
        user: USERS.dana,
        body: {
            input: { prompt: 'a better onboarding flow' },
            metadata: { team: 'alpha', riskLevel: 'high', complianceTags: [], title },
        },
    });
    expect(r.status).toBe(202);
    return r.body.data.orchestrationID as string;
}

async function status(id: string): Promise<any> {
    const r = await api.call('GET', `/pipeline/status/${id}`, { user: USERS.dana });
    expect(r.status).toBe(200);
    return r.body.data;
}

async function awaiting(id: string, stage: string): Promise<any> {
    return waitUntil(async () => {
        const s = await status(id);
        return s.status === 'AwaitingApproval' && s.nextAction?.stage === stage && s;
    }, `${id} to await approval at ${stage}`);
}

/** The run as the host stores it (what the notification side reads when it mints links). */
function runDoc(id: string): RunDoc {
    const db = new Database(join(host.dataDir, 'app.sqlite'), { readonly: true, fileMustExist: true });
    try {
        const row = db.prepare('SELECT doc FROM runs WHERE id = ?').get(id) as { doc: string };
        return JSON.parse(row.doc) as RunDoc;
    } finally {
        db.close();
    }
}

/** A signed link for `approver` on checkpoint `cpId` of run `id`. */
async function link(
    id: string,
    cpId: string,
    approver: { sub: string; roles: string[]; teams: string[] },
    d: Decision = 'approve',
): Promise<string> {
    const run = runDoc(id);
    const cp = run.checkpoints.find((c) => c.checkpointId === cpId)!;
    const [claims] = linksFor(run, cp, { id: approver.sub, roles: approver.roles as any, teams: approver.teams }, [d]);
    expect(claims).toBeDefined();
    return signer.sign(claims!);
}

/** A link signed as given, bypassing linksFor's rules (a submitter's link, an expired one). */
async function rawLink(over: Partial<LinkClaims> & Pick<LinkClaims, 'cp' | 'run'>): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return signer.sign({
        jti: randomUUID(),
        sub: 'ava',
        d: 'approve',
        roles: ['Mesh.Approver'],
        teams: ['alpha'],
        iat: now,
        exp: now + 600,
        ...over,
    });
}

async function decidedRecords(id: string, cpId: string): Promise<any[]> {
    const r = await api.call('GET', `/pipeline/logs/${id}?limit=1000`, { user: USERS.carl });
    return (r.body.data.events as any[]).filter((e) => e.type === 'checkpoint.decided' && e.checkpointId === cpId);
}

function expectPageHeaders(p: Page): void {
    expect(p.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(p.headers.get('content-security-policy')).toBe(CSP);
    expect(p.headers.get('referrer-policy')).toBe('no-referrer');
    expect(p.headers.get('cache-control')).toBe('no-store');
    expect(p.headers.get('x-correlation-id')).toBeTruthy();
    expect(p.html).toMatch(/^<!DOCTYPE html>\n<html lang="en">/);
}

describe('a high-risk run decided through signed links', () => {
    let id: string;
    let cp1: string;
    let cp2: string;
    let approve: string;

    beforeAll(async () => {
        id = await submitHigh('Onboarding revamp');
        cp1 = (await awaiting(id, 'taste')).nextAction.checkpointId as string;
        cp2 = runDoc(id).checkpoints.find((c) => c.stage === 'improvement')!.checkpointId;
        approve = await link(id, cp1, USERS.ava);
    });

    it('GET shows an accessible confirm page and changes nothing (mail scanners pre-fetch links)', async () => {
        const p = await page('GET', approve);
        expect(p.status).toBe(200);
        expectPageHeaders(p);
        expect(p.code).toBeUndefined();
        expect(p.html).toContain('Onboarding revamp');
        expect(p.html).toContain('before taste');
        expect(p.html).toContain('<dt>Requested by</dt><dd>dana</dd>');
        expect(p.html).toContain('<dt>Risk level</dt><dd>high</dd>');
        expect(p.html).toContain('<dt>Decision</dt><dd>Approve</dd>');
        const deadline = runDoc(id).checkpoints.find((c) => c.checkpointId === cp1)!.deadline!;
        expect(p.html).toContain(`<time datetime="${deadline}">`);
        expect(p.html).toContain('Latest output (creativity, iteration 1)');
        expect(p.html).toContain('(reimagined)');
        expect(p.html).toContain('<form method="post">');
        expect(p.html).toContain('<label for="comment">');
        expect(p.html).toContain('<textarea id="comment" name="comment"');
        expect(p.html).toContain('<button type="submit">Approve</button>');

        expect((await page('GET', approve)).status).toBe(200);
        expect((await page('HEAD', approve)).status).toBe(200);
        const s = await status(id);
        expect(s.status).toBe('AwaitingApproval');
        expect(s.checkpoints.find((c: any) => c.checkpointId === cp1).decisions).toEqual([]);
        expect(await decidedRecords(id, cp1)).toEqual([]);
    });

    it('refuses a tampered token (LINK_INVALID 400) and an expired one (LINK_EXPIRED 410)', async () => {
        const [h, payload, sig] = approve.split('.') as [string, string, string];
        const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
        const forged = Buffer.from(JSON.stringify({ ...claims, d: 'reject' })).toString('base64url');
        for (const token of [`${h}.${forged}.${sig}`, `${h}.${payload}.${sig.slice(0, -4)}AAAA`, 'not-a-token']) {
            for (const method of ['GET', 'POST'] as const) {
                const p = await page(method, token);
                expect([p.status, p.code]).toEqual([400, 'LINK_INVALID']);
                expectPageHeaders(p);
            }
        }
        const now = Math.floor(Date.now() / 1000);
        const expired = await rawLink({ cp: cp1, run: id, iat: now - 7200, exp: now - 60 });
        for (const method of ['GET', 'POST'] as const) {
            const p = await page(method, expired);
            expect([p.status, p.code]).toEqual([410, 'LINK_EXPIRED']);
        }
    });

    it('refuses a link whose approver is the submitter (four-eyes): FORBIDDEN', async () => {
        const selfLink = await rawLink({
            cp: cp1,
            run: id,
            sub: 'dana',
            roles: ['Mesh.Developer', 'Mesh.Approver'],
        });
        for (const method of ['GET', 'POST'] as const) {
            const p = await page(method, selfLink);
            expect([p.status, p.code]).toEqual([403, 'FORBIDDEN']);
            expect(p.html).toContain('four-eyes');
        }
    });

    it('refuses a link for a checkpoint that is not open yet: CONFLICT', async () => {
        const later = await rawLink({ cp: cp2, run: id });
        const p = await page('POST', later);
        expect([p.status, p.code]).toEqual([409, 'CONFLICT']);
        expect((await status(id)).status).toBe('AwaitingApproval');
    });

    it('refuses a comment over 2000 characters and leaves the link usable', async () => {
        const p = await page('POST', approve, form({ comment: 'x'.repeat(2001) }));
        expect([p.status, p.code]).toEqual([400, 'VALIDATION_FAILED']);
        expect((await page('GET', approve)).status).toBe(200);
    });

    it('POST decides as the link’s approver; the run moves on; the decision is audited on channel link', async () => {
        const p = await page('POST', approve, {
            ...form({ comment: 'Looks safe <b>to me</b>' }),
            headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-correlation-id': 'link-corr-1' },
        });
        expect(p.status).toBe(200);
        expectPageHeaders(p);
        expect(p.headers.get('x-correlation-id')).toBe('link-corr-1');
        expect(p.html).toContain('Decision recorded');
        expect(p.html).toContain('Looks safe &#60;b&#62;to me&#60;/b&#62;');
        expect(p.html).not.toContain('<b>to me</b>');
        await awaiting(id, 'improvement');
        const [decided, ...more] = await decidedRecords(id, cp1);
        expect(more).toEqual([]);
        expect(decided).toMatchObject({
            actor: 'ava',
            correlationID: 'link-corr-1',
            reason: 'Looks safe <b>to me</b>',
            details: { decision: 'approve', channel: 'link' },
        });
        const cp = (await status(id)).checkpoints.find((c: any) => c.checkpointId === cp1);
        expect(cp.status).toBe('Approved');
        expect(cp.decisions).toEqual([expect.objectContaining({ actor: 'ava', decision: 'approve', channel: 'link' })]);
    });

    it('a used link answers LINK_USED (410), on POST and GET alike', async () => {
        for (const method of ['POST', 'GET'] as const) {
            const p = await page(method, approve);
            expect([p.status, p.code]).toEqual([410, 'LINK_USED']);
        }
        expect(await decidedRecords(id, cp1)).toHaveLength(1);
    });

    it('a fresh link for the closed checkpoint answers CONFLICT', async () => {
        const closed = await rawLink({ cp: cp1, run: id, sub: 'amir' });
        const p = await page('POST', closed);
        expect([p.status, p.code]).toEqual([409, 'CONFLICT']);
        expect(await decidedRecords(id, cp1)).toHaveLength(1);
    });

    it('a JSON POST works too: a reject link ends the run as Rejected', async () => {
        const reject = await link(id, cp2, USERS.amir, 'reject');
        const p = await page('POST', reject, {
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ comment: 'not this time' }),
        });
        expect(p.status).toBe(200);
        await waitUntil(async () => (await status(id)).status === 'Rejected', 'the run to be rejected');
        expect((await decidedRecords(id, cp2))[0]).toMatchObject({ actor: 'amir', reason: 'not this time' });
    });
});

describe('concurrent uses and escaping', () => {
    it('of concurrent POSTs of one fresh link exactly one decides; the others answer LINK_USED', async () => {
        const id = await submitHigh('<script>alert("x")</script> & co');
        const cp = (await awaiting(id, 'taste')).nextAction.checkpointId as string;
        const token = await link(id, cp, USERS.amir);

        const shown = await page('GET', token);
        expect(shown.status).toBe(200);
        expect(shown.html).not.toContain('<script>');
        expect(shown.html).toContain('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; co');

        const pages = await Promise.all(Array.from({ length: 6 }, () => page('POST', token)));
        expect(pages.map((p) => p.status).sort()).toEqual([200, 410, 410, 410, 410, 410]);
        expect(pages.filter((p) => p.status === 410).every((p) => p.code === 'LINK_USED')).toBe(true);
        await awaiting(id, 'improvement');
        expect(await decidedRecords(id, cp)).toHaveLength(1);
    });
});

describe('a link whose run’s workflow ended outside the API (issue 10)', () => {
    it('answers CONFLICT without using the link up; the run is reconciled to Aborted', async () => {
        const id = await submitHigh('terminated behind the API');
        const cp = (await awaiting(id, 'taste')).nextAction.checkpointId as string;
        const token = await link(id, cp, USERS.amir);
        expect((await managementApi(host, 'POST', `/instances/${id}/terminate?reason=x`)).status).toBeLessThan(300);
        await waitUntil(async () => {
            const r = await managementApi(host, 'GET', `/instances/${id}`);
            return ((await r.json()) as { runtimeStatus?: string }).runtimeStatus === 'Terminated';
        }, 'the instance to be terminated');
        const p = await page('POST', token);
        expect([p.status, p.code]).toEqual([409, 'CONFLICT']);
        expect((await page('POST', token)).code).toBe('CONFLICT');
        expect((await status(id)).status).toBe('Aborted');
        expect(await decidedRecords(id, cp)).toHaveLength(0);
    });
});
