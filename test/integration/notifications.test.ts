/**
 * Notification fan-out on the embedded host (issue 4): a high-risk run's checkpoint opens, every eligible approver
 * gets one e-mail (local mail catcher) with their three signed links, and the Teams channel (a local receiver standing
 * in for TEAMS_WEBHOOK_URL) gets one card naming who may decide, with no personal link, only the run's page behind
 * sign-in (issue 10: anyone in a channel could click another person's link). All kept in
 * `<MESH_DATA_DIR>/outbox.jsonl`; a link from the outbox decides the checkpoint.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { outboxPath, readOutbox } from '../../adapters/notify/outbox';
import type { NotificationRecord } from '../../domain/ports';
import { Api, runAwaitingApproval, USERS } from '../support/api';
import { HostProcess, ROOT, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(90_000);

let host: HostProcess;
let api: Api;
let receiver: Server;
const cards: { card: any }[] = [];

beforeAll(async () => {
    receiver = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
            const msg = JSON.parse(body) as { attachments: { content: unknown }[] };
            cards.push({ card: msg.attachments[0]!.content });
            res.writeHead(200, { 'content-type': 'text/plain' }).end('1');
        });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const dirFile = join(tempDataDir('mesh-directory-'), 'directory.json');
    writeFileSync(
        dirFile,
        JSON.stringify({
            people: [
                { id: 'ava', name: 'Ava', email: 'ava@example.com', roles: ['Mesh.Approver'], teams: ['alpha'] },
                { id: 'amir', name: 'Amir', email: 'amir@example.com', roles: ['Mesh.Approver'], teams: ['alpha'] },
                { id: 'bea', name: 'Bea', email: 'bea@example.com', roles: ['Mesh.Approver'], teams: ['beta'] },
                { id: 'ada', name: 'Ada', email: 'ada@example.com', roles: ['Mesh.Admin'], teams: [] },
                // the submitter holds the role in the directory too: still never asked (four-eyes)
                {
                    id: 'dana',
                    name: 'Dana',
                    email: 'dana@example.com',
                    roles: ['Mesh.Developer', 'Mesh.Approver'],
                    teams: ['alpha'],
                },
            ],
        }),
    );
    host = await startHostProcess({
        env: {
            MESH_ENGINE_LATENCY_MS: '0',
            MESH_DIRECTORY: dirFile,
            TEAMS_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/teams`,
        },
    });
    api = new Api(host);
});

afterAll(async () => {
    await host?.stop();
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
});

async function status(id: string): Promise<any> {
    const r = await api.call('GET', `/pipeline/status/${id}`, { user: USERS.dana });
    expect(r.status).toBe(200);
    return r.body.data;
}

/** The approval requests of a checkpoint (the submitter's own notices, issue 11, are left out). */
function outboxFor(checkpointId: string): NotificationRecord[] {
    return readOutbox(outboxPath(host.dataDir)).filter((r) => r.checkpointId === checkpointId && r.personId !== 'dana');
}

it('asks ava and amir by e-mail with signed links and the Teams channel once without; a link from the outbox decides', async () => {
    const { id, checkpointId: cpId } = await runAwaitingApproval(api, USERS.dana, 'Notify me');

    const lines = await waitUntil(() => {
        const l = outboxFor(cpId);
        return Promise.resolve(l.length >= 3 && l);
    }, 'three notifications in the outbox');
    await new Promise((r) => setTimeout(r, 300)); // nothing more arrives for this checkpoint
    expect(outboxFor(cpId)).toHaveLength(3);
    expect(lines.map((l) => `${l.channel}:${l.personId}:${l.status}`).sort()).toEqual([
        'email:amir:sent',
        'email:ava:sent',
        'teams:#channel:sent',
    ]);
    for (const l of lines) {
        expect(l).toMatchObject({ runId: id, checkpointId: cpId, eventType: 'mesh.checkpoint.opened' });
        expect(l.subject).toContain('Notify me');
    }
    // e-mail: each approver's own three one-click links
    for (const l of lines.filter((k) => k.channel === 'email')) {
        expect(l.links.map((k) => k.decision)).toEqual(['approve', 'reject', 'request_info']);
        for (const k of l.links)
            expect(k.url).toMatch(new RegExp(`^${host.origin}/approvals/[\\w-]+\\.[\\w-]+\\.[\\w-]+$`));
    }
    // the Teams channel: no personal link, one link to the run where the clicker must sign in
    const channel = lines.find((l) => l.channel === 'teams')!;
    expect(channel.to).toBe('channel');
    expect(channel.links).toEqual([{ decision: 'open', url: `${host.origin}/dashboard?view=run:${id}` }]);
    // The run's page in the dashboard: a page that asks the clicker to sign in; the API it calls checks the rest.
    const page = await fetch(channel.links[0]!.url);
    expect([page.status, page.headers.get('content-type')]).toEqual([200, expect.stringMatching(/^text\/html/)]);
    expect(await page.text()).toContain('<mesh-dashboard');
    expect(
        lines
            .filter((l) => l.channel === 'email')
            .map((l) => l.to)
            .sort(),
    ).toEqual(['amir@example.com', 'ava@example.com']);
    // the mail catcher kept both e-mails, and the submitter's notice that her run waits (issue 11)
    await waitUntil(
        () => Promise.resolve(readOutbox(outboxPath(host.dataDir)).some((r) => r.personId === 'dana')),
        "the submitter's notice",
    );
    const submitter = readOutbox(outboxPath(host.dataDir)).filter((r) => r.personId === 'dana');
    expect(submitter.map((r) => `${r.channel}:${r.to}:${r.eventType}`)).toEqual([
        'email:dana@example.com:mesh.checkpoint.opened',
    ]);
    expect(submitter[0]!.links).toEqual([{ decision: 'open', url: `${host.origin}/dashboard?view=run:${id}` }]);
    expect(readdirSync(join(host.dataDir, 'mail')).filter((f) => f.endsWith('.eml'))).toHaveLength(3);
    await waitUntil(() => Promise.resolve(cards.length >= 1), 'the Teams card');
    await new Promise((r) => setTimeout(r, 300)); // one card per channel, not one per approver
    expect(cards).toHaveLength(1);
    const { card } = cards[0]!;
    expect(card.version).toBe('1.5');
    expect(card.actions).toEqual([
        {
            type: 'Action.OpenUrl',
            title: 'Open in Mesh Orchestrator (sign in)',
            url: `${host.origin}/dashboard?view=run:${id}`,
        },
    ]);
    expect(JSON.stringify(card)).not.toContain('/approvals/');
    expect(JSON.stringify(card)).toMatch(/Who may decide: Amir, Ava \(Mesh\.Approver\)/);

    // `npm run outbox` lists the same lines, newest first
    expect(existsSync(join(ROOT, 'dist/local/cli/outbox.js'))).toBe(true);
    const printed = execFileSync(process.execPath, [join(ROOT, 'dist/local/cli/outbox.js')], {
        env: { ...process.env, MESH_DATA_DIR: host.dataDir },
        encoding: 'utf8',
    })
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as NotificationRecord);
    expect(printed.length).toBeGreaterThanOrEqual(3);
    const ats = printed.map((p) => p.at);
    expect([...ats].sort().reverse()).toEqual(ats);
    expect(printed[0]).toEqual(
        expect.objectContaining({ channel: expect.any(String), to: expect.any(String), subject: expect.any(String) }),
    );

    // ava clicks Approve in her e-mail: the confirm page changes nothing, the POST decides
    const approve = lines.find((l) => l.channel === 'email' && l.personId === 'ava')!.links[0]!.url;
    expect((await fetch(approve)).status).toBe(200);
    expect((await status(id)).nextAction?.checkpointId).toBe(cpId);
    const decided = await fetch(approve, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ comment: 'ok from the e-mail' }).toString(),
    });
    expect(decided.status).toBe(200);
    const moved = await waitUntil(async () => {
        const s = await status(id);
        return s.stages.find((st: any) => st.name === 'taste').status !== 'Pending' && s;
    }, 'the run to move past the checkpoint into taste');
    expect(moved.nextAction?.checkpointId).not.toBe(cpId);
    const logs = await api.call('GET', `/pipeline/logs/${id}?limit=1000`, { user: USERS.carl });
    expect(logs.body.data.events).toEqual(
        expect.arrayContaining([
            expect.objectContaining({ type: 'checkpoint.decided', checkpointId: cpId, actor: 'ava' }),
        ]),
    );
    // the same link works once
    const again = await fetch(approve, { method: 'POST' });
    expect(again.status).toBe(410);
});
