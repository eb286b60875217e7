/**
 * Issue 10, SPEC "Trust (v1.1)": comments, inputs, outputs and reasons appear in plaintext in no file under
 * MESH_DATA_DIR (app, durable and queue databases and their WAL/SHM files, the local Event Grid store, the
 * notification outbox and the mail catcher's .eml files), and events carry personal data masked.
 *
 * One high-risk run carries a canary in its input (and its title, a label allowed only in the run's row and the
 * notifications), in a pause and a resume reason, in a request_info
 * comment and in the submitter's answer to it (issue 11), in an approval comment through the API and in one through a
 * signed link; a second run is aborted with a
 * canary reason. A local Event Grid subscription receives every event. Once every event is delivered, every file
 * under the data dir is read as bytes, while the host runs and again after it stopped: each canary is reported with
 * the files it was found in.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';

import { outboxPath, readOutbox } from '../../adapters/notify/outbox';
import { Api, USERS, verifiedTrails } from '../support/api';
import { type HostProcess, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(240_000);

const TAG = randomBytes(4).toString('hex');
const canary = (what: string): string => `CANARY${TAG}${what}`;
/** What a person typed: sealed wherever it is stored, in plaintext in no file. */
const CANARIES = {
    input: canary('INPUT'),
    pauseReason: canary('PAUSE'),
    resumeReason: canary('RESUME'),
    requestInfoComment: canary('INFO'),
    infoAnswer: canary('ANSWER'),
    apiDecisionComment: canary('APIDECISION'),
    linkDecisionComment: canary('LINKDECISION'),
    abortReason: canary('ABORT'),
};
/**
 * A run's title is a label, not sealed (docs/decisions.md, "Who reads a person's words"): searchable, and named in
 * the notifications that ask people to decide. It may appear only in the run's row and the notification copies.
 */
const TITLE = canary('TITLE');
const TITLE_MAY_APPEAR_IN = /^(app\.sqlite(-wal)?|outbox\.jsonl|mail\/[^/]+\.eml)$/;
/** Personal data typed into a reason and into a comment: never stored in plaintext, masked in every event. */
const REASON_PII = { email: `pat.${TAG}@example.org`, phone: '+44 20 7946 0958' };
const REASON_PII_MASKED = { email: 'p***@example.org', phone: '+** ** **** **58' };
const COMMENT_PII = { email: `kim.${TAG}@example.net`, phone: '+1 425 555 0199' };
const COMMENT_PII_MASKED = { email: 'k***@example.net', phone: '+* *** *** **99' };

/** A webhook subscription's endpoint: answers the handshake and keeps every event. */
class Webhook {
    readonly events: any[] = [];
    url = '';
    private server!: Server;

    async start(): Promise<this> {
        this.server = createServer((req, res) => {
            let body = '';
            req.on('data', (c: Buffer) => (body += c.toString()));
            req.on('end', () => {
                if (req.method === 'OPTIONS') {
                    res.writeHead(200, { 'WebHook-Allowed-Origin': String(req.headers['webhook-request-origin']) });
                    return res.end();
                }
                this.events.push(JSON.parse(body));
                res.writeHead(200);
                res.end();
            });
        });
        await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/events`;
        return this;
    }

    /** One run's events, de-duplicated by id. */
    of(runId: string): any[] {
        return [
            ...new Map(this.events.filter((e) => e.subject === `/pipelines/${runId}`).map((e) => [e.id, e])).values(),
        ];
    }

    stop(): Promise<void> {
        return new Promise((r) => this.server.close(() => r()));
    }
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
        const path = join(dir, name);
        return statSync(path).isDirectory() ? filesUnder(path) : [path];
    });
}

/** For each canary, the files under `dir` whose bytes hold it (UTF-8, as SQLite, JSON lines and e-mails store text). */
function grep(dir: string, needles: Record<string, string>): Record<string, string[]> {
    const files = filesUnder(dir).map((path) => ({ path: relative(dir, path), bytes: readFileSync(path) }));
    return Object.fromEntries(
        Object.entries(needles).map(([name, needle]) => [
            name,
            files.filter((f) => f.bytes.includes(Buffer.from(needle, 'utf8'))).map((f) => f.path),
        ]),
    );
}

const NOWHERE = (needles: Record<string, string>): Record<string, string[]> =>
    Object.fromEntries(Object.keys(needles).map((k) => [k, []]));

let hook: Webhook;
let host: HostProcess;
let api: Api;

beforeAll(async () => {
    hook = await new Webhook().start();
    const keysRoot = tempDataDir('mesh-canary-keys-');
    host = await startHostProcess({
        dataDir: tempDataDir('mesh-canaries-'),
        env: {
            // Keys outside the data dir, as the README asks of a real installation.
            MESH_KEYS_DIR: join(keysRoot, 'keys'),
            MESH_EVENT_SUBSCRIPTIONS: JSON.stringify([{ name: 'everything', endpoint: hook.url }]),
            MESH_EVENTGRID_RETRY_SCALE: '0.001',
            MESH_ENGINE_LATENCY_MS: '0',
        },
    });
    // The test's tokens are signed with the host's key, which lives in `<keysRoot>/keys` here.
    api = new Api({ ...host, dataDir: keysRoot });
});

afterAll(async () => {
    await host?.stop();
    await hook?.stop();
});

async function status(id: string, user = USERS.dana): Promise<any> {
    const r = await api.call('GET', `/pipeline/status/${id}`, { user });
    expect(r.status).toBe(200);
    return r.body.data;
}

async function waitingAt(id: string, stage: string): Promise<string> {
    const s = await waitUntil(
        async () => {
            const st = await status(id);
            return st.status === 'AwaitingApproval' && st.nextAction?.stage === stage && st;
        },
        `run ${id} to await approval at ${stage}`,
        60_000,
        100,
    );
    return s.nextAction.checkpointId as string;
}

async function submitHigh(prompt: string, title: string): Promise<string> {
    const r = await api.call('POST', '/pipeline/run', {
        user: USERS.dana,
        body: { input: { prompt }, metadata: { team: 'alpha', riskLevel: 'high', complianceTags: [], title } },
    });
    expect(r.status).toBe(202);
    return r.body.data.orchestrationID as string;
}

it('keeps every canary out of every file under the data dir, and events carry personal data masked', async () => {
    const id = await submitHigh(`write about ${CANARIES.input}`, `launch ${TITLE}`);
    const aborted = await submitHigh('a run to abort', 'to abort');
    const cp1 = await waitingAt(id, 'taste');

    // Pause and resume at the checkpoint, with personal data in the pause reason.
    const stop = await api.call('POST', '/pipeline/stop', {
        user: USERS.olga,
        body: {
            orchestrationID: id,
            action: 'pause',
            reason: `${CANARIES.pauseReason} call ${REASON_PII.email} or ${REASON_PII.phone}`,
        },
    });
    expect(stop.status).toBe(202);
    const resume = await api.call('POST', '/pipeline/resume', {
        user: USERS.olga,
        body: { orchestrationID: id, reason: `${CANARIES.resumeReason} done` },
    });
    expect(resume.status).toBe(202);

    // request_info with personal data in the comment: the run's team reads it as typed on the status page.
    const infoComment = `${CANARIES.requestInfoComment} which dataset? mail ${COMMENT_PII.email}, ring ${COMMENT_PII.phone}`;
    const decide = (cp: string, decision: string, comment: string) =>
        api.call('POST', `/pipeline/checkpoints/${cp}/decision`, { user: USERS.ava, body: { decision, comment } });
    expect((await decide(cp1, 'request_info', infoComment)).status).toBe(202);
    await waitUntil(
        async () => (await status(id)).history.some((h: any) => h.reason === infoComment),
        'the request_info comment, as typed, on the status page of the run team',
    );
    // Compliance, outside the team, reads the same history masked.
    const asCompliance = (await status(id, USERS.carl)).history.find((h: any) => h.type === 'checkpoint.decided');
    expect(asCompliance.reason).toBe(
        `${CANARIES.requestInfoComment} which dataset? mail ${COMMENT_PII_MASKED.email}, ring ${COMMENT_PII_MASKED.phone}`,
    );
    // The submitter answers (issue 11), with personal data: her team reads it as typed, Compliance masked.
    await waitUntil(
        async () => (await status(id)).checkpoints.some((c: any) => c.checkpointId === cp1 && c.infoRequest),
        'the open info request',
    );
    const answer = `${CANARIES.infoAnswer} the Q3 export; mail ${COMMENT_PII.email}`;
    const answered = await api.call('POST', `/pipeline/checkpoints/${cp1}/info`, {
        user: USERS.dana,
        body: { comment: answer },
    });
    expect(answered.status).toBe(202);
    const answers = (u = USERS.dana) =>
        status(id, u).then((st) => st.checkpoints.find((c: any) => c.checkpointId === cp1).infoAnswers);
    expect(await answers()).toEqual([expect.objectContaining({ by: 'dana', comment: answer })]);
    expect(await answers(USERS.carl)).toEqual([
        expect.objectContaining({ comment: `${CANARIES.infoAnswer} the Q3 export; mail ${COMMENT_PII_MASKED.email}` }),
    ]);
    // The approvers are asked again (their notifications, like the submitter's, quote nobody's words).
    await waitUntil(
        () =>
            Promise.resolve(
                readOutbox(outboxPath(host.dataDir)).some((r) => r.eventType === 'mesh.checkpoint.info_provided'),
            ),
        'the approvers asked again after the answer',
    );
    expect((await decide(cp1, 'approve', `${CANARIES.apiDecisionComment} fine`)).status).toBe(202);

    // The next checkpoint is decided through the signed link of its notification, with a comment.
    const cp2 = await waitingAt(id, 'improvement');
    const link = await waitUntil(
        () =>
            Promise.resolve(
                readOutbox(outboxPath(host.dataDir))
                    .filter((r) => r.checkpointId === cp2)
                    .flatMap((r) => r.links)
                    .find((l) => l.decision === 'approve'),
            ),
        'an approval link for the second checkpoint',
    );
    const posted = await fetch(link.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ comment: `${CANARIES.linkDecisionComment} ok` }).toString(),
        signal: AbortSignal.timeout(30_000),
    });
    expect(posted.status).toBe(200);
    await waitUntil(async () => (await status(id)).status === 'Completed', 'the run to complete', 60_000, 100);

    // The other run is aborted with a reason.
    await waitingAt(aborted, 'taste');
    const abort = await api.call('POST', '/pipeline/stop', {
        user: USERS.olga,
        body: { orchestrationID: aborted, action: 'abort', reason: `${CANARIES.abortReason} stop it` },
    });
    expect(abort.status).toBe(202);
    await waitUntil(async () => (await status(aborted)).status === 'Aborted', 'the abort');

    // Every event of both runs reaches the subscriber (the trails as Compliance reads them are masked too).
    const trails = await waitUntil(
        async () => {
            const t = await verifiedTrails(api, [id, aborted]);
            return [id, aborted].every((r) => hook.of(r).length === t.get(r)!.length) && t;
        },
        'every event delivered',
        60_000,
        200,
    );
    const delivered = JSON.stringify([...hook.of(id), ...hook.of(aborted)]);
    const compliance = JSON.stringify([...trails.values()]);
    for (const [name, text] of [
        ['events', delivered],
        ['logs', compliance],
    ] as const) {
        for (const pii of [REASON_PII, COMMENT_PII])
            expect({ [name]: text.includes(pii.email) || text.includes(pii.phone) }).toEqual({ [name]: false });
        for (const masked of [REASON_PII_MASKED, COMMENT_PII_MASKED])
            expect({ [name]: text.includes(masked.email) && text.includes(masked.phone) }).toEqual({ [name]: true });
    }
    const pausedEvent = hook.of(id).find((e) => e.type === 'mesh.pipeline.paused');
    expect(pausedEvent.data.reason).toBe(
        `${CANARIES.pauseReason} call ${REASON_PII_MASKED.email} or ${REASON_PII_MASKED.phone}`,
    );
    const infoEvent = hook.of(id).find((e) => e.type === 'mesh.checkpoint.decided');
    expect(infoEvent.data.reason).toBe(
        `${CANARIES.requestInfoComment} which dataset? mail ${COMMENT_PII_MASKED.email}, ring ${COMMENT_PII_MASKED.phone}`,
    );
    // Subscribers get the words they need: the canaries themselves (no personal data) arrive as typed.
    for (const words of [CANARIES.resumeReason, CANARIES.apiDecisionComment, CANARIES.abortReason])
        expect(delivered).toContain(words);
    // The abort's reason: the actor's words in the audit record, a fixed reference in the workflow's history.
    expect(trails.get(aborted)!.find((e) => e.type === 'pipeline.aborted')).toMatchObject({
        actor: 'olga',
        reason: `${CANARIES.abortReason} stop it`,
    });

    const needles = {
        ...CANARIES,
        reasonEmail: REASON_PII.email,
        reasonPhone: REASON_PII.phone,
        commentEmail: COMMENT_PII.email,
        commentPhone: COMMENT_PII.phone,
    };
    const titleOutOfPlace = (dir: string) => grep(dir, { TITLE }).TITLE!.filter((f) => !TITLE_MAY_APPEAR_IN.test(f));
    // While the host runs (WAL and shared-memory files present), then after it stopped (checkpointed into the
    // databases). Compared at once, so a failure lists every canary with every file it was found in.
    const running = { canaries: grep(host.dataDir, needles), titleElsewhere: titleOutOfPlace(host.dataDir) };
    await host.stop();
    const stopped = { canaries: grep(host.dataDir, needles), titleElsewhere: titleOutOfPlace(host.dataDir) };
    const clean = { canaries: NOWHERE(needles), titleElsewhere: [] };
    expect({ running, stopped }).toEqual({ running: clean, stopped: clean });
});

it('shows personal data in events and logs when the checkpoint policy says personalData: show', async () => {
    const dataDir = tempDataDir('mesh-canaries-show-');
    const shown = await new Webhook().start();
    const h = await startHostProcess({
        dataDir,
        env: {
            MESH_EVENT_SUBSCRIPTIONS: JSON.stringify([{ name: 'everything', endpoint: shown.url }]),
            MESH_EVENTGRID_RETRY_SCALE: '0.001',
            MESH_ENGINE_LATENCY_MS: '0',
        },
    });
    const a = new Api(h);
    try {
        const current = (await a.call('GET', '/checkpoint-policies', { user: USERS.carl })).body.data;
        const bad = await a.call('PUT', '/checkpoint-policies', {
            user: USERS.carl,
            body: { rules: current.rules, expectedVersion: current.version, personalData: 'everything' },
        });
        expect(bad.status).toBe(400);
        const put = await a.call('PUT', '/checkpoint-policies', {
            user: USERS.carl,
            body: { rules: current.rules, expectedVersion: current.version, personalData: 'show' },
        });
        expect(put.status).toBe(200);
        expect(put.body.data.personalData).toBe('show');
        const r = await a.call('POST', '/pipeline/run', {
            user: USERS.dana,
            body: { input: { prompt: 'p' }, metadata: { team: 'alpha', riskLevel: 'high', complianceTags: [] } },
        });
        const runId = r.body.data.orchestrationID as string;
        await waitUntil(
            async () =>
                (await a.call('GET', `/pipeline/status/${runId}`, { user: USERS.dana })).body.data.status ===
                'AwaitingApproval',
            'the run to wait',
            60_000,
            100,
        );
        const reason = `hold: call ${REASON_PII.email} or ${REASON_PII.phone}`;
        const stop = await a.call('POST', '/pipeline/stop', {
            user: USERS.olga,
            body: { orchestrationID: runId, action: 'pause', reason },
        });
        expect(stop.status).toBe(202);
        const event = await waitUntil(
            () => Promise.resolve(shown.of(runId).find((e) => e.type === 'mesh.pipeline.paused')),
            'the paused event',
        );
        expect(event.data.reason).toBe(reason);
        const logs = (await a.call('GET', `/pipeline/logs/${runId}`, { user: USERS.carl })).body.data;
        expect(logs.events.find((e: any) => e.type === 'pipeline.paused').reason).toBe(reason);
        // At rest it is sealed all the same.
        expect(grep(dataDir, { email: REASON_PII.email })).toEqual({ email: [] });
    } finally {
        await h.stop();
        await shown.stop();
    }
});
