/**
 * Reminders on the embedded host (issue 4): a checkpoint with an 8-second deadline and the reminder timer ticking
 * every second. Once a quarter of the window is left, every approver gets exactly one reminder per channel (with
 * fresh signed links) in `<MESH_DATA_DIR>/outbox.jsonl`, beside the approval requests, and later ticks add none.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { outboxPath, readOutbox } from '../../adapters/notify/outbox';
import type { NotificationRecord } from '../../domain/ports';
import { Api, runAwaitingApproval, USERS } from '../support/api';
import { HostProcess, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(90_000);

const compliance = { sub: 'cora', roles: ['Mesh.Compliance'], teams: [] };

let host: HostProcess;
let api: Api;

beforeAll(async () => {
    const dirFile = join(tempDataDir('mesh-directory-'), 'directory.json');
    writeFileSync(
        dirFile,
        JSON.stringify({
            people: [
                { id: 'ava', name: 'Ava', email: 'ava@example.com', roles: ['Mesh.Approver'], teams: ['alpha'] },
                { id: 'amir', name: 'Amir', email: 'amir@example.com', roles: ['Mesh.Approver'], teams: ['alpha'] },
                { id: 'bea', name: 'Bea', email: 'bea@example.com', roles: ['Mesh.Approver'], teams: ['beta'] },
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
        env: { MESH_ENGINE_LATENCY_MS: '0', MESH_DIRECTORY: dirFile, MESH_REMINDER_SCHEDULE: '*/1 * * * * *' },
    });
    api = new Api(host);
    const current = await api.call('GET', '/checkpoint-policies', { user: compliance });
    const put = await api.call('PUT', '/checkpoint-policies', {
        user: compliance,
        body: {
            expectedVersion: current.body.data.version,
            rules: [
                {
                    name: 'remind',
                    match: { teams: ['alpha'], riskLevels: ['high'], stages: ['taste'] },
                    position: 'before',
                    requiredRoles: ['Mesh.Approver'],
                    approvals: 1,
                    timeout: 'PT8S',
                    onTimeout: 'reject',
                    channels: ['email', 'teams'],
                },
            ],
        },
    });
    expect(put.status).toBe(200);
});

afterAll(async () => {
    await host?.stop();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function reminders(checkpointId: string): NotificationRecord[] {
    return readOutbox(outboxPath(host.dataDir)).filter(
        (r) => r.checkpointId === checkpointId && r.eventType === 'mesh.checkpoint.reminder',
    );
}

it('reminds each approver once by e-mail and the Teams channel once before the deadline, and never twice', async () => {
    const { checkpointId: cpId, waiting } = await runAwaitingApproval(api, USERS.dana, 'Remind me');
    const deadline = waiting.nextAction.deadline as string;

    // nothing while more than a quarter of the 8-second window remains
    await sleep(Math.max(0, Date.parse(deadline) - 8_000 + 4_000 - Date.now()));
    expect(reminders(cpId)).toEqual([]);

    const sent = await waitUntil(
        () => {
            const r = reminders(cpId);
            return Promise.resolve(r.length >= 3 && r);
        },
        'three reminders in the outbox',
        15_000,
    );
    expect(sent.map((r) => `${r.channel}:${r.personId}:${r.status}`).sort()).toEqual([
        'email:amir:sent',
        'email:ava:sent',
        'teams:#channel:sent',
    ]);
    for (const r of sent) {
        expect(r.subject).toBe('Reminder: approval needed for "Remind me" (before taste)');
        expect(r.key).toBe(`reminder:${cpId}@${deadline}|${r.personId}|${r.channel}`);
        expect(Date.parse(r.at)).toBeLessThan(Date.parse(deadline));
        // fresh personal links by e-mail; the shared channel only the run's page behind sign-in
        if (r.channel === 'email')
            expect(r.links.map((k) => k.decision)).toEqual(['approve', 'reject', 'request_info']);
        else expect(r.links).toEqual([{ decision: 'open', url: expect.stringMatching(/\/dashboard\?view=run:run-/) }]);
    }
    // the approval requests are there too, apart from the reminders
    const requests = readOutbox(outboxPath(host.dataDir)).filter(
        (r) => r.checkpointId === cpId && r.eventType === 'mesh.checkpoint.opened' && r.personId !== 'dana',
    );
    expect(requests).toHaveLength(3);
    expect(requests.every((r) => !r.subject.startsWith('Reminder:'))).toBe(true);

    // more ticks, up to the deadline and past it: still one reminder per approver per channel
    await sleep(Math.max(0, Date.parse(deadline) + 3_000 - Date.now()));
    expect(reminders(cpId)).toHaveLength(3);
});
