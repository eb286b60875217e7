/**
 * The info loop on the embedded host (issue 11): a high-risk run waits at its checkpoint; an approver asks for
 * information; the submitter sees the open request on the status page and is notified (outbox, mail catcher); only
 * the submitter or their team may answer (another team: 404, Compliance, Operator and the approver: 403), once
 * (409 after the answer); the answer is audited as `checkpoint.info_provided` (actor: the submitter; the chain
 * verifies); the approvers are asked again with fresh one-click links, one of which then approves, and the run moves on.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { outboxPath, readOutbox } from '../../adapters/notify/outbox';
import type { NotificationRecord } from '../../domain/ports';
import { Api, runAwaitingApproval, USERS } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';

jest.setTimeout(120_000);

let host: HostProcess;
let api: Api;

beforeAll(async () => {
    host = await startHostProcess({ env: { MESH_ENGINE_LATENCY_MS: '0' } });
    api = new Api(host);
});

afterAll(async () => {
    await host?.stop();
});

async function status(id: string, user = USERS.dana): Promise<any> {
    const r = await api.call('GET', `/pipeline/status/${id}`, { user });
    expect(r.status).toBe(200);
    return r.body.data;
}

function outbox(filter: (r: NotificationRecord) => boolean): NotificationRecord[] {
    return readOutbox(outboxPath(host.dataDir)).filter(filter);
}

async function arrived(
    what: string,
    filter: (r: NotificationRecord) => boolean,
    count = 1,
): Promise<NotificationRecord[]> {
    return waitUntil(() => {
        const r = outbox(filter);
        return Promise.resolve(r.length >= count && r);
    }, what);
}

it('asks, notifies, answers once (submitter or team only), audits, asks the approvers again, and the run continues', async () => {
    const question = 'Which dataset did you use?';
    const answerText = 'The anonymised Q3 export, ticket DATA-42.';
    const { id, checkpointId: cp } = await runAwaitingApproval(api, USERS.dana, 'Info loop');
    const info = (user: (typeof USERS)[keyof typeof USERS], body: unknown) =>
        api.call('POST', `/pipeline/checkpoints/${cp}/info`, { user, body });

    // The submitter hears that their run waits (personal e-mail, only a link to the run's page).
    const [waits] = await arrived(
        "the submitter's notice that the checkpoint opened",
        (r) => r.runId === id && r.personId === 'dana' && r.eventType === 'mesh.checkpoint.opened',
    );
    expect(waits).toMatchObject({ channel: 'email', to: 'dana@example.com', status: 'sent' });
    expect(waits!.links).toEqual([{ decision: 'open', url: `${host.origin}/dashboard?view=run:${id}` }]);

    // No request open yet: 409.
    const early = await info(USERS.dana, { comment: 'too soon' });
    expect(early.status).toBe(409);
    expect(early.body.error_code).toBe('CONFLICT');

    // Ava asks for information.
    const asked = await api.call('POST', `/pipeline/checkpoints/${cp}/decision`, {
        user: USERS.ava,
        body: { decision: 'request_info', comment: question },
    });
    expect(asked.status).toBe(202);
    const open = await waitUntil(async () => {
        const c = (await status(id)).checkpoints.find((x: any) => x.checkpointId === cp);
        return c?.infoRequest && c;
    }, 'the open info request on the status page');
    expect(open.infoRequest).toEqual({ by: 'ava', at: expect.any(String), comment: question });
    expect(open.status).toBe('Open');
    expect((await status(id)).status).toBe('AwaitingApproval');

    // The submitter is told information was requested, without the question quoted.
    const [requested] = await arrived(
        "the submitter's notice of the request",
        (r) => r.runId === id && r.personId === 'dana' && r.eventType === 'mesh.checkpoint.decided',
    );
    expect(requested).toMatchObject({
        channel: 'email',
        to: 'dana@example.com',
        subject: 'Information requested for "Info loop"',
    });
    expect(requested!.links).toEqual([{ decision: 'open', url: `${host.origin}/dashboard?view=run:${id}` }]);

    // Bad input changes nothing.
    expect((await info(USERS.dana, {})).status).toBe(400);
    expect((await info(USERS.dana, { comment: '' })).status).toBe(400);
    expect((await info(USERS.dana, { comment: '   ' })).status).toBe(400);
    expect((await info(USERS.dana, { comment: 'x', extra: 1 })).status).toBe(400);
    const badId = await api.call('POST', `/pipeline/checkpoints/not-a-checkpoint/info`, {
        user: USERS.dana,
        body: { comment: 'x' },
    });
    expect(badId.status).toBe(400);
    // Another team does not see the run: 404. Those who see it but do not speak for it: 403.
    const other = await info(USERS.bob, { comment: 'me?' });
    expect(other.status).toBe(404);
    expect(other.body.error_code).toBe('NOT_FOUND');
    for (const user of [USERS.carl, USERS.olga, USERS.ava]) {
        const r = await info(user, { comment: 'me?' });
        expect({ user: user.sub, status: r.status, code: r.body.error_code }).toEqual({
            user: user.sub,
            status: 403,
            code: 'FORBIDDEN',
        });
    }
    expect((await status(id)).checkpoints.find((x: any) => x.checkpointId === cp).infoRequest).toBeDefined();

    // The submitter answers.
    const answered = await info(USERS.dana, { comment: answerText });
    expect(answered.status).toBe(202);
    expect(answered.body.data).toEqual({ checkpointId: cp, orchestrationID: id });
    // Once: a second answer (the submitter's teammate here) is CONFLICT.
    const twice = await info(USERS.sam, { comment: 'also' });
    expect(twice.status).toBe(409);
    expect(twice.body.error_code).toBe('CONFLICT');

    const after = (await status(id)).checkpoints.find((x: any) => x.checkpointId === cp);
    expect(after.infoRequest).toBeUndefined();
    expect(after.infoAnswers).toEqual([{ by: 'dana', at: expect.any(String), comment: answerText }]);
    expect(after.status).toBe('Open');

    // Audited: the submitter as actor, their words as the reason, the chain verifies.
    const logs = (await api.call('GET', `/pipeline/logs/${id}?limit=1000`, { user: USERS.carl })).body.data;
    expect(logs.chain).toMatchObject({ verified: true });
    const provided = logs.events.filter((e: any) => e.type === 'checkpoint.info_provided');
    expect(provided).toEqual([
        expect.objectContaining({ actor: 'dana', checkpointId: cp, reason: answerText, stage: 'taste' }),
    ]);

    // The approvers are asked again: personal e-mails with fresh one-click links, the Teams channel once without.
    const again = await arrived(
        'the approvers asked again',
        (r) => r.runId === id && r.eventType === 'mesh.checkpoint.info_provided',
        3,
    );
    expect(again.map((r) => `${r.channel}:${r.personId}`).sort()).toEqual([
        'email:amir',
        'email:ava',
        'teams:#channel',
    ]);
    for (const r of again)
        expect(r.subject).toBe('Information provided: approval needed for "Info loop" (before taste)');
    const avaAgain = again.find((r) => r.personId === 'ava')!;
    expect(avaAgain.links.map((l) => l.decision)).toEqual(['approve', 'reject', 'request_info']);
    expect(again.find((r) => r.channel === 'teams')!.links).toEqual([
        { decision: 'open', url: `${host.origin}/dashboard?view=run:${id}` },
    ]);

    // Ava approves with the link she was sent after the answer; the run moves on past the checkpoint.
    const approved = await fetch(avaAgain.links[0]!.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ comment: 'thanks, fine' }).toString(),
    });
    expect(approved.status).toBe(200);
    const moved = await waitUntil(async () => {
        const s = await status(id);
        return s.stages.find((st: any) => st.name === 'taste').status !== 'Pending' && s;
    }, 'the run to move past the checkpoint into taste');
    expect(moved.checkpoints.find((x: any) => x.checkpointId === cp)).toMatchObject({ status: 'Approved' });
    expect(moved.checkpoints.find((x: any) => x.checkpointId === cp).infoRequest).toBeUndefined();
    // …and the submitter hears of the approval too.
    await arrived(
        "the submitter's notice of the approval",
        (r) => r.runId === id && r.personId === 'dana' && r.subject.startsWith('Approved by'),
    );

    // Nobody's words in the notification copies under the data dir.
    const copies = [
        outboxPath(host.dataDir),
        ...readdirSync(join(host.dataDir, 'mail')).map((f) => join(host.dataDir, 'mail', f)),
    ].map((f) => readFileSync(f, 'utf8'));
    for (const words of [question, answerText, 'thanks, fine'])
        expect({ words, found: copies.some((c) => c.includes(words)) }).toEqual({ words, found: false });
});
