/**
 * Notification fan-out (issue 4): rendering (Adaptive Card and Block Kit validated against subset schemas, e-mail
 * bodies), the webhook signature, the JSON directory, the fan-out rules and the outbox command.
 */
import { mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

import { parseNotifyConfig } from '../../adapters/config';
import { JsonDirectory, parseDirectory } from '../../adapters/directory/jsonDirectory';
import { EmailNotifier, MailCatcher } from '../../adapters/notify/email';
import { OutboxFile, outboxPath, readOutbox } from '../../adapters/notify/outbox';
import { adaptiveCard, renderEmail, slackPayload, teamsPayload } from '../../adapters/notify/render';
import { SIGNATURE_HEADER, signMeshPayload, verifyMeshSignature, WebhookNotifier } from '../../adapters/notify/webhook';
import { CHANNEL_RECIPIENT, notifyForEvent, type NotifyPorts } from '../../domain/notify';
import type { NotificationMessage, Notifier, Person } from '../../domain/ports';
import type { RunDoc } from '../../domain/run';
import { main as outboxCli } from '../../local/cli/outbox';
import { waitingRun } from '../support/linkFixtures';

const schemas = join(__dirname, '../fixtures/schemas');
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const validCard = ajv.compile(JSON.parse(readFileSync(join(schemas, 'adaptive-card-subset.json'), 'utf8')) as object);
const validSlack = ajv.compile(JSON.parse(readFileSync(join(schemas, 'slack-blocks-subset.json'), 'utf8')) as object);

const ava: Person = {
    id: 'ava',
    name: 'Ava <A&B>',
    email: 'ava@example.com',
    roles: ['Mesh.Approver'],
    teams: ['alpha'],
};
const url = (d: string): string => `http://127.0.0.1:7071/approvals/eyJ.${d}.sig`;
const message = (over: Partial<NotificationMessage> = {}): NotificationMessage => ({
    eventId: 'run-1:7',
    eventType: 'mesh.checkpoint.opened',
    runId: 'run-1',
    checkpointId: 'run-1.1.taste.before.0',
    recipient: ava,
    subject: 'Approval needed for "Onboarding" (before taste)',
    lines: ['The run waits for approval.', 'Decide before 2025-06-02T12:00:00.000Z.'],
    links: [
        { decision: 'approve', url: url('approve') },
        { decision: 'reject', url: url('reject') },
        { decision: 'request_info', url: url('request_info') },
    ],
    ...over,
});
const tmp = (): string => mkdtempSync(join(tmpdir(), 'mesh-notify-'));

describe('rendering', () => {
    it('builds an Adaptive Card 1.5 with one Action.OpenUrl per link, valid against the subset schema', () => {
        const card = adaptiveCard(message());
        expect(validCard(card)).toBe(true);
        expect(card.version).toBe('1.5');
        expect(card.actions).toEqual([
            { type: 'Action.OpenUrl', title: 'Approve', url: url('approve'), style: 'positive' },
            { type: 'Action.OpenUrl', title: 'Reject', url: url('reject'), style: 'destructive' },
            { type: 'Action.OpenUrl', title: 'Request info', url: url('request_info') },
        ]);
        const payload = teamsPayload(message()) as { attachments: { contentType: string; content: unknown }[] };
        expect(payload.attachments[0]!.contentType).toBe('application/vnd.microsoft.card.adaptive');
        // no links: no actions, still valid
        expect(validCard(adaptiveCard(message({ links: [], checkpointId: null })))).toBe(true);
    });

    it('the subset schema refuses what Teams would refuse', () => {
        const card = adaptiveCard(message()) as { actions: Record<string, unknown>[] };
        expect(validCard({ ...card, actions: [{ type: 'Action.OpenUrl', title: 'x' }] })).toBe(false);
        expect(validCard({ ...card, actions: [{ type: 'Action.Submit', url: url('a') }] })).toBe(false);
        expect(validCard({ ...card, body: [{ type: 'TextBlock', text: 'x', weight: 'Heavy' }] })).toBe(false);
    });

    it('builds Block Kit with three url buttons, valid against the subset schema and escaped', () => {
        const p = slackPayload(message(), 'U0AVA') as {
            blocks: { type: string; elements?: unknown[]; text?: { text: string } }[];
        };
        expect(validSlack(p)).toBe(true);
        const actions = p.blocks.find((b) => b.type === 'actions')!;
        expect(actions.elements).toEqual([
            expect.objectContaining({
                type: 'button',
                url: url('approve'),
                style: 'primary',
                text: expect.objectContaining({ text: 'Approve' }),
            }),
            expect.objectContaining({ type: 'button', url: url('reject'), style: 'danger' }),
            expect.objectContaining({
                type: 'button',
                url: url('request_info'),
                text: expect.objectContaining({ text: 'Request info' }),
            }),
        ]);
        const section = p.blocks.find((b) => b.type === 'section')!;
        expect(section.text!.text).toMatch(/^For <@U0AVA>\n/);
        const byName = slackPayload(message({ subject: 'x'.repeat(400) }), 'ava@example.com') as typeof p;
        expect(validSlack(byName)).toBe(true);
        expect(byName.blocks.find((b) => b.type === 'section')!.text!.text).toContain('Ava &lt;A&amp;B&gt;');
        expect(validSlack({ blocks: [{ type: 'header', text: { type: 'plain_text', text: 'x'.repeat(151) } }] })).toBe(
            false,
        );
    });

    it('a shared channel message: one sign-in link, no "For <person>", valid on Teams and Slack', () => {
        const open = 'https://mesh.example/pipeline/status/run-1';
        const m = message({ recipient: CHANNEL_RECIPIENT, links: [{ decision: 'open', url: open }] });
        const card = adaptiveCard(m);
        expect(validCard(card)).toBe(true);
        expect(card.actions).toEqual([
            { type: 'Action.OpenUrl', title: 'Open in Mesh Orchestrator (sign in)', url: open },
        ]);
        expect(JSON.stringify(card)).not.toContain('For ');
        const p = slackPayload(m, 'channel') as { blocks: { type: string; elements?: unknown[] }[] };
        expect(validSlack(p)).toBe(true);
        expect(p.blocks.find((b) => b.type === 'actions')!.elements).toEqual([
            expect.objectContaining({ type: 'button', action_id: 'mesh_open', url: open }),
        ]);
        expect(JSON.stringify(p)).not.toContain('For ');
    });

    it('renders e-mail as text and escaped HTML with the three links', () => {
        const m = renderEmail(message({ lines: ['<script>alert(1)</script>'] }));
        expect(m.subject).toBe(message().subject);
        expect(m.text).toContain(`Approve: ${url('approve')}`);
        expect(m.text).toContain(`Request info: ${url('request_info')}`);
        expect(m.html).toContain(`href="${url('reject')}"`);
        expect(m.html).not.toContain('<script>');
        expect(m.html).toContain('Ava &#60;A&#38;B&#62;');
    });

    it('the local mail catcher writes an .eml with both parts', async () => {
        const dir = tmp();
        const email = new EmailNotifier('Mesh <mesh@localhost>', new MailCatcher(join(dir, 'mail')));
        await email.send(message(), 'ava@example.com');
        const [file] = readdirSync(join(dir, 'mail'));
        const eml = readFileSync(join(dir, 'mail', file!), 'utf8');
        expect(file).toMatch(/\.eml$/);
        expect(eml).toMatch(/^To: ava@example\.com$/m);
        expect(eml).toContain('text/plain');
        expect(eml).toContain('text/html');
    });
});

describe('webhook signature', () => {
    const body = JSON.stringify({ hello: 'world' });
    const at = new Date('2025-06-01T12:00:00Z');

    it('verifies a signature made within the window', () => {
        const h = signMeshPayload(body, 's3cret', at);
        expect(h).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
        expect(verifyMeshSignature(h, body, 's3cret', at)).toBe(true);
        expect(verifyMeshSignature(h, body, 's3cret', new Date(at.getTime() + 299_000))).toBe(true);
    });

    it('refuses a tampered body, another secret, a forged or malformed header', () => {
        const h = signMeshPayload(body, 's3cret', at);
        expect(verifyMeshSignature(h, body.replace('world', 'w0rld'), 's3cret', at)).toBe(false);
        expect(verifyMeshSignature(h, body, 'other', at)).toBe(false);
        expect(verifyMeshSignature(h.replace(/v1=./, 'v1=0'), body, 's3cret', at)).toBe(false);
        const t = Math.floor(at.getTime() / 1000);
        expect(verifyMeshSignature(h.replace(`t=${t}`, `t=${t + 1}`), body, 's3cret', at)).toBe(false);
        for (const bad of [undefined, '', 'v1=abc', `t=${t}`, 'garbage', `t=${t},v1=zz`])
            expect(verifyMeshSignature(bad, body, 's3cret', at)).toBe(false);
    });

    it('refuses a stale (or future) signature outside the five-minute replay window', () => {
        const h = signMeshPayload(body, 's3cret', at);
        expect(verifyMeshSignature(h, body, 's3cret', new Date(at.getTime() + 301_000))).toBe(false);
        expect(verifyMeshSignature(h, body, 's3cret', new Date(at.getTime() - 301_000))).toBe(false);
    });

    describe('the webhook notifier', () => {
        let server: Server;
        let endpoint: string;
        const seen: { headers: IncomingHttpHeaders; body: string }[] = [];
        let failures = 0;

        beforeAll(async () => {
            server = createServer((req, res) => {
                let b = '';
                req.on('data', (c: Buffer) => (b += c.toString()));
                req.on('end', () => {
                    seen.push({ headers: req.headers, body: b });
                    res.writeHead(failures-- > 0 ? 503 : 204).end();
                });
            });
            await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
            endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
        });
        afterAll(() => new Promise<void>((r) => server.close(() => r())));
        beforeEach(() => {
            seen.length = 0;
            failures = 0;
        });

        it('signs the body and retries with backoff, three attempts in all', async () => {
            failures = 2;
            const waits: number[] = [];
            const n = new WebhookNotifier(endpoint, 's3cret', {
                backoffMs: 100,
                sleep: (ms) => {
                    waits.push(ms);
                    return Promise.resolve();
                },
            });
            await n.send(message(), 'ava');
            expect(seen).toHaveLength(3);
            expect(waits).toEqual([100, 200]);
            const last = seen[2]!;
            const header = last.headers[SIGNATURE_HEADER.toLowerCase()] as string;
            expect(verifyMeshSignature(header, last.body, 's3cret', new Date())).toBe(true);
            expect(JSON.parse(last.body)).toMatchObject({ to: 'ava', runId: 'run-1', links: message().links });
        });

        it('gives up after three failed attempts', async () => {
            failures = 5;
            const n = new WebhookNotifier(endpoint, 's3cret', { backoffMs: 1 });
            await expect(n.send(message(), 'ava')).rejects.toThrow(/gave up after 3 attempts: .*HTTP 503/);
            expect(seen).toHaveLength(3);
        });
    });
});

describe('JSON directory', () => {
    const people = [
        { id: 'ava', name: 'Ava', email: 'ava@example.com', roles: ['Mesh.Approver'], teams: ['alpha'] },
        { id: 'amir', name: 'Amir', roles: ['Mesh.Approver'], teams: ['alpha'] },
        { id: 'bea', name: 'Bea', roles: ['Mesh.Approver'], teams: ['beta'] },
        { id: 'ada', name: 'Ada', roles: ['Mesh.Admin'], teams: [] },
        { id: 'dana', name: 'Dana', roles: ['Mesh.Developer'], teams: ['alpha'] },
    ];

    it('finds role holders of the team; an Admin counts for every team', async () => {
        const file = join(tmp(), 'dir.json');
        writeFileSync(file, JSON.stringify({ people }));
        const d = new JsonDirectory(file);
        const ids = async (roles: Parameters<JsonDirectory['peopleWithRoles']>[0], team: string) =>
            (await d.peopleWithRoles(roles, team)).map((p) => p.id);
        expect(await ids(['Mesh.Approver'], 'alpha')).toEqual(['ava', 'amir']);
        expect(await ids(['Mesh.Approver'], 'beta')).toEqual(['bea']);
        expect(await ids(['Mesh.Approver', 'Mesh.Admin'], 'beta')).toEqual(['bea', 'ada']);
        expect(await ids(['Mesh.Admin'], 'gamma')).toEqual(['ada']);
        expect((await d.person('dana'))?.name).toBe('Dana');
        expect(await d.person('nobody')).toBeUndefined();
        // edits are picked up
        writeFileSync(file, JSON.stringify(people.slice(1)));
        const later = new Date(Date.now() + 5_000);
        utimesSync(file, later, later);
        expect(await ids(['Mesh.Approver'], 'alpha')).toEqual(['amir']);
    });

    it('ships a sample directory matching the test users', async () => {
        const d = new JsonDirectory(join(__dirname, '../../local/directory.sample.json'));
        expect((await d.peopleWithRoles(['Mesh.Approver'], 'alpha')).map((p) => p.id)).toEqual(['ava', 'amir']);
        expect((await d.peopleWithRoles(['Mesh.Admin'], 'beta')).map((p) => p.id)).toEqual(['ada']);
        expect(await new JsonDirectory(undefined).peopleWithRoles(['Mesh.Approver'], 'alpha')).toEqual([]);
    });

    it('refuses malformed directories', () => {
        expect(() => parseDirectory({}, 'f')).toThrow(/directory is/);
        expect(() => parseDirectory([{ id: 'x', roles: ['Mesh.God'], teams: [] }], 'f')).toThrow(
            /people\[0\] has unknown roles/,
        );
        expect(() =>
            parseDirectory(
                [
                    { id: 'x', roles: [], teams: [] },
                    { id: 'x', roles: [], teams: [] },
                ],
                'f',
            ),
        ).toThrow(/repeats/);
        expect(parseDirectory([{ id: 'x', roles: [], teams: [] }], 'f')).toEqual([
            { id: 'x', name: 'x', roles: [], teams: [] },
        ]);
    });
});

describe('fan-out', () => {
    class FakeNotifier implements Notifier {
        readonly sent: { to: string; m: NotificationMessage }[] = [];
        fail = false;
        constructor(
            readonly channel: Notifier['channel'],
            readonly configured = true,
        ) {}
        addressOf(p: Person): string | undefined {
            return this.channel === 'email' ? p.email : p.id;
        }
        send(m: NotificationMessage, to: string): Promise<void> {
            if (this.fail) return Promise.reject(new Error('boom'));
            this.sent.push({ to, m });
            return Promise.resolve();
        }
    }
    const directoryPeople: Person[] = [
        { id: 'ava', name: 'Ava', email: 'ava@example.com', roles: ['Mesh.Approver'], teams: ['alpha'] },
        { id: 'amir', name: 'Amir', roles: ['Mesh.Approver'], teams: ['alpha'] },
        { id: 'bea', name: 'Bea', email: 'bea@example.com', roles: ['Mesh.Approver'], teams: ['beta'] },
        { id: 'dana', name: 'Dana', email: 'dana@example.com', roles: ['Mesh.Approver'], teams: ['alpha'] },
    ];

    function setup(run: RunDoc, localOutbox = true) {
        const dir = tmp();
        const email = new FakeNotifier('email');
        const teams = new FakeNotifier('teams', false);
        const slack = new FakeNotifier('slack');
        const webhook = new FakeNotifier('webhook');
        const ports: NotifyPorts = {
            runs: { get: (id) => Promise.resolve(id === run.id ? run : undefined) },
            directory: new JsonDirectory(undefined),
            links: { sign: (c) => Promise.resolve(`tok-${c.sub}-${c.d}`) },
            notifiers: [email, teams, slack, webhook],
            log: new OutboxFile(outboxPath(dir)),
            linkUrl: (t) => `https://mesh.example/approvals/${t}`,
            runUrl: (id) => `https://mesh.example/pipeline/status/${id}`,
            localOutbox,
            now: () => new Date('2025-06-01T13:00:00Z'),
            info: () => undefined,
            warn: () => undefined,
        };
        jest.spyOn(ports.directory, 'peopleWithRoles').mockImplementation((roles, team) =>
            Promise.resolve(
                directoryPeople.filter((p) => p.roles.some((r) => roles.includes(r)) && p.teams.includes(team)),
            ),
        );
        jest.spyOn(ports.directory, 'person').mockImplementation((id) =>
            Promise.resolve(directoryPeople.find((p) => p.id === id)),
        );
        return { ports, email, teams, slack, webhook, dir };
    }
    const opened = {
        id: 'run-1:9',
        type: 'mesh.checkpoint.opened',
        data: { orchestrationID: 'run-1', checkpointId: 'run-1.1.taste.before.0' },
    };

    it('asks every approver of the team but the submitter by e-mail with three links, and the Teams channel once; idempotent per event', async () => {
        const run = waitingRun({}, { channels: ['email', 'teams'] });
        const { ports, email, dir } = setup(run);
        // + the submitter (dana) by e-mail: her run waits (issue 11); never on the shared Teams channel
        expect(await notifyForEvent(ports, opened)).toEqual({ sent: 3, failed: 0, skipped: 1 });
        expect(email.sent.map((s) => s.to)).toEqual(['ava@example.com', 'dana@example.com']); // amir: no e-mail
        const lines = readOutbox(outboxPath(dir));
        expect(lines.map((l) => `${l.channel}:${l.personId}:${l.to}`)).toEqual([
            'email:ava:ava@example.com',
            'teams:#channel:channel',
            'email:dana:dana@example.com',
        ]);
        expect(lines[2]!.links).toEqual([{ decision: 'open', url: 'https://mesh.example/pipeline/status/run-1' }]);
        expect(lines[0]!.links.map((l) => l.decision)).toEqual(['approve', 'reject', 'request_info']);
        expect(lines[0]!.links[0]!.url).toBe('https://mesh.example/approvals/tok-ava-approve');
        // the channel's one message: who may decide, and one link to the run behind sign-in
        expect(lines[1]!.note).toMatch(/not configured/);
        expect(lines[1]!.links).toEqual([{ decision: 'open', url: 'https://mesh.example/pipeline/status/run-1' }]);
        // redelivered: nothing more
        expect(await notifyForEvent(ports, opened)).toEqual({ sent: 0, failed: 0, skipped: 4 });
        expect(readOutbox(outboxPath(dir))).toHaveLength(3);
    });

    it('no Teams or Slack message carries a personal one-click link; e-mail and the signed webhook still do', async () => {
        const run = waitingRun({}, { channels: ['email', 'teams', 'slack', 'webhook'] });
        const { ports, email, slack, webhook, dir } = setup(run);
        expect(await notifyForEvent(ports, opened)).toMatchObject({ failed: 0 });
        const lines = readOutbox(outboxPath(dir));
        const shared = lines.filter((l) => l.channel === 'teams' || l.channel === 'slack');
        expect(shared.map((l) => `${l.channel}:${l.personId}`).sort()).toEqual(['slack:#channel', 'teams:#channel']);
        for (const l of shared) {
            expect(JSON.stringify(l)).not.toContain('/approvals/');
            expect(l.links).toEqual([{ decision: 'open', url: 'https://mesh.example/pipeline/status/run-1' }]);
        }
        // what Slack was handed: names who may decide and the deadline, and no personal link
        expect(slack.sent).toHaveLength(1);
        const m = slack.sent[0]!.m;
        expect(JSON.stringify(m)).not.toContain('/approvals/');
        expect(m.lines.join('\n')).toContain('Who may decide: Amir, Ava (Mesh.Approver); approvals needed: 1.');
        expect(m.lines.join('\n')).toContain(`Decide before ${run.checkpoints[0]!.deadline}`);
        expect(JSON.stringify(slackPayload(m, slack.sent[0]!.to))).not.toMatch(/\/approvals\/|For /);
        expect(JSON.stringify(teamsPayload(m))).not.toMatch(/\/approvals\/|For /);
        // personal channels keep personal links: e-mail to ava, the signed webhook per approver
        expect(email.sent[0]!.m.links.map((l) => l.url)).toEqual([
            'https://mesh.example/approvals/tok-ava-approve',
            'https://mesh.example/approvals/tok-ava-reject',
            'https://mesh.example/approvals/tok-ava-request_info',
        ]);
        expect(webhook.sent.map((s) => [s.to, s.m.links.length])).toEqual([
            ['ava', 3],
            ['amir', 3],
            ['dana', 1], // the submitter: only the run's page
        ]);
    });

    it('records a channel that failed for good, and does not retry it on redelivery', async () => {
        const { ports, email, dir } = setup(waitingRun());
        email.fail = true;
        expect(await notifyForEvent(ports, opened)).toMatchObject({ sent: 0, failed: 2 }); // ava, and dana (submitter)
        expect(readOutbox(outboxPath(dir))[0]).toMatchObject({ status: 'failed', error: 'boom', channel: 'email' });
        email.fail = false;
        expect(await notifyForEvent(ports, opened)).toMatchObject({ sent: 0, failed: 0 });
    });

    it('off the embedded host an unconfigured channel fails', async () => {
        const { ports, dir } = setup(waitingRun({}, { channels: ['teams'] }), false);
        ports.log = new OutboxFile(outboxPath(dir));
        // one channel message (not one per approver), failed: Teams has no webhook; the submitter hears by e-mail
        // (her personal channel when the checkpoint names only shared ones)
        expect(await notifyForEvent(ports, opened)).toMatchObject({ sent: 1, failed: 1 });
        expect(readOutbox(outboxPath(dir))).toEqual([
            expect.objectContaining({ channel: 'teams', personId: '#channel', status: 'failed' }),
            expect.objectContaining({ channel: 'email', personId: 'dana', status: 'sent' }),
        ]);
    });

    it('tells the submitter about an expiry or a failure, without links, and ignores other events', async () => {
        const { ports, email, dir } = setup(waitingRun({}, { channels: ['email', 'teams'] }));
        const expired = { ...opened, id: 'run-1:12', type: 'mesh.checkpoint.expired' };
        expect(await notifyForEvent(ports, expired)).toMatchObject({ sent: 1 }); // dana: e-mail only (no Teams address)
        const failed = {
            id: 'run-1:13',
            type: 'mesh.pipeline.failed',
            data: { orchestrationID: 'run-1', reason: 'engine down' },
        };
        expect(await notifyForEvent(ports, failed)).toMatchObject({ sent: 1 });
        expect(email.sent.map((s) => [s.to, s.m.subject, s.m.links.length])).toEqual([
            ['dana@example.com', 'Approval expired for "Onboarding"', 0],
            ['dana@example.com', 'Run "Onboarding" failed', 0],
        ]);
        expect(email.sent[1]!.m.lines).toContain('Reason: engine down');
        expect(readOutbox(outboxPath(dir)).map((l) => l.checkpointId)).toEqual(['run-1.1.taste.before.0', null]);
        expect(await notifyForEvent(ports, { ...opened, type: 'mesh.stage.started' })).toEqual({
            sent: 0,
            failed: 0,
            skipped: 0,
        });
    });

    describe('the info loop (issue 11)', () => {
        const decided = (decision: string, seq = 20) => ({
            id: `run-1:${seq}`,
            type: 'mesh.checkpoint.decided',
            data: {
                orchestrationID: 'run-1',
                checkpointId: 'run-1.1.taste.before.0',
                actor: 'ava',
                reason: 'sealed:eyJzZWFsZWQiOnRydWV9',
                details: { decision },
            },
        });

        it('tells the submitter of every decision on personal channels, with only the run page link and no words quoted', async () => {
            const { ports, email, teams, dir } = setup(waitingRun({}, { channels: ['email', 'teams'] }));
            expect(await notifyForEvent(ports, decided('request_info'))).toMatchObject({ sent: 1, failed: 0 });
            expect(await notifyForEvent(ports, decided('approve', 21))).toMatchObject({ sent: 1 });
            expect(await notifyForEvent(ports, decided('reject', 22))).toMatchObject({ sent: 1 });
            expect(email.sent.map((x) => [x.to, x.m.subject])).toEqual([
                ['dana@example.com', 'Information requested for "Onboarding"'],
                ['dana@example.com', 'Approved by Ava: "Onboarding"'],
                ['dana@example.com', 'Rejected by Ava: "Onboarding"'],
            ]);
            expect(email.sent[0]!.m.lines.join('\n')).toContain('Ava asks for more information');
            expect(JSON.stringify(email.sent)).not.toContain('sealed:');
            for (const x of email.sent)
                expect(x.m.links).toEqual([{ decision: 'open', url: 'https://mesh.example/pipeline/status/run-1' }]);
            expect(teams.sent).toHaveLength(0); // never on a shared channel, whatever address she has
            expect(readOutbox(outboxPath(dir)).filter((l) => l.channel === 'teams')).toHaveLength(0);
            // one message per event per person per channel
            expect(await notifyForEvent(ports, decided('request_info'))).toMatchObject({ sent: 0 });
            expect(readOutbox(outboxPath(dir)).filter((l) => l.personId === 'dana')).toHaveLength(3);
            const text = renderEmail(email.sent[0]!.m).text;
            expect(text).toContain('Open the run (sign in):');
            expect(text).not.toContain('each works once');
        });

        it('an answer asks the approvers again with fresh personal links, and the channel once', async () => {
            const run = waitingRun({}, { channels: ['email', 'teams'] });
            const { ports, email, dir } = setup(run);
            const answered = {
                id: 'run-1:23',
                type: 'mesh.checkpoint.info_provided',
                data: { orchestrationID: 'run-1', checkpointId: 'run-1.1.taste.before.0', actor: 'dana' },
            };
            expect(await notifyForEvent(ports, opened)).toMatchObject({ sent: 3 });
            expect(await notifyForEvent(ports, answered)).toMatchObject({ sent: 2, failed: 0 });
            const again = readOutbox(outboxPath(dir)).filter((l) => l.eventId === 'run-1:23');
            expect(again.map((l) => `${l.channel}:${l.personId}`)).toEqual(['email:ava', 'teams:#channel']);
            expect(again[0]!.subject).toMatch(/^Information provided: approval needed for "Onboarding"/);
            expect(again[0]!.links.map((l) => l.decision)).toEqual(['approve', 'reject', 'request_info']);
            expect(again[1]!.links).toEqual([{ decision: 'open', url: 'https://mesh.example/pipeline/status/run-1' }]);
            expect(email.sent.at(-1)!.m.lines[0]).toMatch(/requested information was provided/);
            expect(await notifyForEvent(ports, answered)).toMatchObject({ sent: 0 });
        });

        it('an answer to a checkpoint that closed meanwhile asks no one', async () => {
            const { ports } = setup(waitingRun({}, { status: 'Approved' }));
            const answered = {
                id: 'run-1:23',
                type: 'mesh.checkpoint.info_provided',
                data: { orchestrationID: 'run-1', checkpointId: 'run-1.1.taste.before.0' },
            };
            expect(await notifyForEvent(ports, answered)).toEqual({ sent: 0, failed: 0, skipped: 0 });
        });
    });

    it('sends no approval request for a checkpoint that is no longer open', async () => {
        const { ports } = setup(waitingRun({}, { status: 'Approved' }));
        expect(await notifyForEvent(ports, opened)).toEqual({ sent: 0, failed: 0, skipped: 0 });
    });
});

describe('npm run outbox', () => {
    it('prints the outbox newest first as JSON lines, respecting MESH_DATA_DIR', async () => {
        const dir = tmp();
        const log = new OutboxFile(outboxPath(dir));
        for (const n of [1, 2, 3])
            await log.record({
                key: `e${n}|p|email`,
                at: `2025-06-01T12:00:0${n}.000Z`,
                channel: 'email',
                to: 'ava@example.com',
                subject: `s${n}`,
                runId: 'run-1',
                checkpointId: null,
                links: [],
                status: 'sent',
                eventId: `e${n}`,
                eventType: 'mesh.pipeline.failed',
                personId: 'ava',
            });
        let stdout = '';
        const out = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: () => true } };
        expect(outboxCli([], { MESH_DATA_DIR: dir }, out)).toBe(0);
        const lines = stdout
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as { subject: string; key?: string });
        expect(lines.map((l) => l.subject)).toEqual(['s3', 's2', 's1']);
        expect(lines[0]).not.toHaveProperty('key');
        stdout = '';
        expect(outboxCli(['--limit', '1'], { MESH_DATA_DIR: dir }, out)).toBe(0);
        expect(stdout.trim().split('\n')).toHaveLength(1);
        expect(outboxCli(['--bogus'], {}, out)).toBe(2);
        stdout = '';
        expect(outboxCli([], { MESH_DATA_DIR: tmp() }, out)).toBe(0);
        expect(stdout).toBe('');
    });
});

describe('notify configuration', () => {
    it('takes the links origin from PUBLIC_BASE_URL, else WEBSITE_HOSTNAME', () => {
        expect(parseNotifyConfig({ PUBLIC_BASE_URL: 'https://mesh.example/' }).publicBaseUrl).toBe(
            'https://mesh.example',
        );
        expect(parseNotifyConfig({ WEBSITE_HOSTNAME: '127.0.0.1:7071' }).publicBaseUrl).toBe('http://127.0.0.1:7071');
        expect(parseNotifyConfig({ WEBSITE_HOSTNAME: 'mesh.azurewebsites.net' }).publicBaseUrl).toBe(
            'https://mesh.azurewebsites.net',
        );
        expect(parseNotifyConfig({ SMTP_HOST: 'smtp', SMTP_PORT: '2525', SMTP_USER: 'u' }).smtp).toEqual({
            host: 'smtp',
            port: 2525,
            user: 'u',
        });
        expect(() => parseNotifyConfig({ SMTP_HOST: 'smtp', SMTP_PORT: 'x' })).toThrow(/SMTP_PORT/);
        expect(parseNotifyConfig({ MESH_STORE: 'cosmos' }).outboxDir).toBeUndefined();
    });
});
