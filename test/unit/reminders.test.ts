/**
 * Reminders (issue 4): which checkpoints are due a reminder, and that each (checkpoint, deadline, person, channel) is
 * reminded once, in the same notifications record as the approval requests, across ticks and restarts.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { InvocationContext, type Timer } from '@azure/functions';

import { DEFAULT_REMINDER_FRACTION, DEFAULT_REMINDER_SCHEDULE, parseReminderConfig } from '../../adapters/config';
import { OutboxFile, outboxPath, readOutbox } from '../../adapters/notify/outbox';
import { notifyForEvent, type NotifyPorts, remindApprovers, reminderDue } from '../../domain/notify';
import type { Directory, NotificationMessage, Notifier, Page, Person, RunFilter, RunStore } from '../../domain/ports';
import type { CheckpointState, RunDoc } from '../../domain/run';
import { remindApprovers as remindApproversFunction } from '../../functions/timer/remindApprovers';
import { CP, openCheckpoint, waitingRun } from '../support/linkFixtures';

const at = (iso: string): Date => new Date(iso);

describe('reminderDue', () => {
    // openCheckpoint(): opened 2025-06-01T12:00Z, deadline 2025-06-02T12:00Z, a 24 h timeout.
    const open = openCheckpoint();

    it('is not due while more than the fraction of the window remains', () => {
        expect(reminderDue(open, at('2025-06-01T13:00:00Z'), 0.25)).toBe(false);
        expect(reminderDue(open, at('2025-06-02T05:59:59Z'), 0.25)).toBe(false);
    });

    it('is due once at most the fraction remains, until the deadline', () => {
        expect(reminderDue(open, at('2025-06-02T06:00:00Z'), 0.25)).toBe(true);
        expect(reminderDue(open, at('2025-06-02T11:59:59Z'), 0.25)).toBe(true);
        expect(reminderDue(open, at('2025-06-02T02:00:00Z'), 0.5)).toBe(true);
    });

    it('is not due at or past the deadline', () => {
        expect(reminderDue(open, at('2025-06-02T12:00:00Z'), 0.25)).toBe(false);
        expect(reminderDue(open, at('2025-06-02T13:00:00Z'), 0.25)).toBe(false);
    });

    it('is never due for a checkpoint that is not open', () => {
        const due = at('2025-06-02T11:00:00Z');
        for (const status of ['Pending', 'Approved', 'Rejected', 'Expired', 'Cancelled'] as const)
            expect(reminderDue(openCheckpoint({ status }), due, 0.25)).toBe(false);
        expect(reminderDue(openCheckpoint({ deadline: null }), due, 0.25)).toBe(false);
        expect(reminderDue(openCheckpoint({ openedAt: null }), due, 0.25)).toBe(false);
    });

    it('measures an escalated checkpoint against the window of its new deadline', () => {
        // escalated at the first deadline: the new deadline is one timeout later, openedAt is unchanged
        const escalated = openCheckpoint({
            status: 'Escalated',
            escalated: true,
            requiredRoles: ['Mesh.Approver', 'Mesh.Admin'],
            deadline: '2025-06-03T12:00:00.000Z',
        });
        expect(reminderDue(escalated, at('2025-06-02T13:00:00Z'), 0.25)).toBe(false);
        expect(reminderDue(escalated, at('2025-06-03T05:00:00Z'), 0.25)).toBe(false);
        expect(reminderDue(escalated, at('2025-06-03T07:00:00Z'), 0.25)).toBe(true);
        expect(reminderDue(escalated, at('2025-06-03T12:00:00Z'), 0.25)).toBe(false);
        // no timeout known: the window is deadline - openedAt
        expect(reminderDue({ ...escalated, timeoutMs: 0 }, at('2025-06-03T01:00:00Z'), 0.25)).toBe(true);
    });
});

describe('remindApprovers', () => {
    class FakeNotifier implements Notifier {
        readonly sent: { to: string; m: NotificationMessage }[] = [];
        constructor(
            readonly channel: Notifier['channel'],
            readonly configured = true,
        ) {}
        addressOf(p: Person): string | undefined {
            return this.channel === 'email' ? p.email : p.id;
        }
        send(m: NotificationMessage, to: string): Promise<void> {
            this.sent.push({ to, m });
            return Promise.resolve();
        }
    }
    const people: Person[] = [
        { id: 'ava', name: 'Ava', email: 'ava@example.com', roles: ['Mesh.Approver'], teams: ['alpha'] },
        { id: 'amir', name: 'Amir', roles: ['Mesh.Approver'], teams: ['alpha'] },
        { id: 'bea', name: 'Bea', email: 'bea@example.com', roles: ['Mesh.Approver'], teams: ['beta'] },
        { id: 'ada', name: 'Ada', email: 'ada@example.com', roles: ['Mesh.Admin'], teams: [] },
        { id: 'dana', name: 'Dana', email: 'dana@example.com', roles: ['Mesh.Approver'], teams: ['alpha'] },
    ];
    const directory: Directory = {
        peopleWithRoles: (roles, team) =>
            Promise.resolve(
                people.filter(
                    (p) =>
                        (p.roles.includes('Mesh.Admin') && roles.includes('Mesh.Admin')) ||
                        (p.roles.some((r) => roles.includes(r)) && p.teams.includes(team)),
                ),
            ),
        person: (id) => Promise.resolve(people.find((p) => p.id === id)),
    };

    /** Runs listed a page of one at a time, filtered by status as the stores do. */
    class FakeRuns implements Pick<RunStore, 'get' | 'list'> {
        readonly filters: RunFilter[] = [];
        constructor(public runs: RunDoc[]) {}
        get(id: string): Promise<RunDoc | undefined> {
            return Promise.resolve(this.runs.find((r) => r.id === id));
        }
        list(filter: RunFilter, limit: number, token?: string): Promise<Page<RunDoc>> {
            this.filters.push(filter);
            const matching = this.runs.filter((r) => !filter.status || filter.status.includes(r.status));
            const from = token ? Number(token) : 0;
            const items = matching.slice(from, from + limit);
            const next = from + limit < matching.length ? String(from + limit) : undefined;
            return Promise.resolve({ items, ...(next ? { continuationToken: next } : {}) });
        }
    }

    function setup(runs: RunDoc[], now: string, dir = mkdtempSync(join(tmpdir(), 'mesh-remind-'))) {
        const email = new FakeNotifier('email');
        const teams = new FakeNotifier('teams', false);
        const store = new FakeRuns(runs);
        const clock = { now: new Date(now) };
        const ports: NotifyPorts = {
            runs: store,
            directory,
            links: { sign: (c) => Promise.resolve(`tok-${c.sub}-${c.d}`) },
            notifiers: [email, teams],
            log: new OutboxFile(outboxPath(dir)),
            linkUrl: (t) => `https://mesh.example/approvals/${t}`,
            runUrl: (id) => `https://mesh.example/pipeline/status/${id}`,
            localOutbox: true,
            now: () => clock.now,
            info: () => undefined,
            warn: () => undefined,
        };
        return { ports, store, email, dir, clock };
    }
    const channels: Partial<CheckpointState> = { channels: ['email', 'teams'] };
    const due = '2025-06-02T09:00:00Z';

    it('sends nothing while no checkpoint is due', async () => {
        const { ports, store, email, dir } = setup([waitingRun({}, { ...channels })], '2025-06-01T20:00:00Z');
        expect(await remindApprovers(ports, store, 0.25)).toEqual({ sent: 0, failed: 0, skipped: 0, due: 0 });
        expect(email.sent).toEqual([]);
        expect(readOutbox(outboxPath(dir))).toEqual([]);
        expect(store.filters).toEqual([{ status: ['AwaitingApproval'] }]);
    });

    it('reminds every approver but the submitter by e-mail with fresh links, and the Teams channel once, then never again', async () => {
        const { ports, store, email, dir, clock } = setup([waitingRun({}, { ...channels })], due);
        expect(await remindApprovers(ports, store, 0.25)).toEqual({ sent: 2, failed: 0, skipped: 1, due: 1 });
        const lines = readOutbox(outboxPath(dir));
        expect(lines.map((l) => `${l.channel}:${l.personId}`)).toEqual(['email:ava', 'teams:#channel']);
        for (const l of lines) {
            expect(l.subject).toBe('Reminder: approval needed for "Onboarding" (before taste)');
            expect(l).toMatchObject({ checkpointId: CP, eventType: 'mesh.checkpoint.reminder' });
            expect(l.key).toBe(`reminder:${CP}@2025-06-02T12:00:00.000Z|${l.personId}|${l.channel}`);
        }
        expect(lines[0]!.links.map((k) => k.decision)).toEqual(['approve', 'reject', 'request_info']);
        expect(lines[0]!.links[0]!.url).toBe('https://mesh.example/approvals/tok-ava-approve');
        // the channel: no personal link, only the run behind sign-in
        expect(lines[1]!.links).toEqual([{ decision: 'open', url: 'https://mesh.example/pipeline/status/run-1' }]);
        expect(email.sent[0]!.m.lines[0]).toMatch(/^Reminder: the run "Onboarding"/);
        // the next tick: nothing more
        clock.now = new Date('2025-06-02T11:00:00Z');
        expect(await remindApprovers(ports, store, 0.25)).toEqual({ sent: 0, failed: 0, skipped: 3, due: 1 });
        // a restarted host (a new record reader over the same outbox): nothing more either
        const restarted = setup(store.runs, '2025-06-02T11:30:00Z', dir);
        expect(await remindApprovers(restarted.ports, restarted.store, 0.25)).toMatchObject({ sent: 0, due: 1 });
        expect(restarted.email.sent).toEqual([]);
        expect(readOutbox(outboxPath(dir))).toHaveLength(2);
    });

    it('keeps reminders apart from the approval requests of the same checkpoint', async () => {
        const { ports, store, dir } = setup([waitingRun({}, { ...channels })], due);
        const opened = {
            id: 'run-1:9',
            type: 'mesh.checkpoint.opened',
            data: { orchestrationID: 'run-1', checkpointId: CP },
        };
        // the approvers' two, and the submitter's own e-mail (issue 11: told their run waits)
        expect(await notifyForEvent(ports, opened)).toMatchObject({ sent: 3 });
        expect(await remindApprovers(ports, store, 0.25)).toMatchObject({ sent: 2 });
        expect(await notifyForEvent(ports, opened)).toMatchObject({ sent: 0 });
        const subjects = readOutbox(outboxPath(dir)).map((l) => `${l.channel}:${l.subject.split(' ')[0]}`);
        expect(subjects).toEqual([
            'email:Approval',
            'teams:Approval',
            'email:Your',
            'email:Reminder:',
            'teams:Reminder:',
        ]);
    });

    it('reminds only open checkpoints of runs awaiting approval, across pages', async () => {
        const runs = [
            waitingRun({ id: 'run-1' }, { ...channels }),
            waitingRun({ id: 'run-2' }, { checkpointId: 'run-2.1.taste.before.0', status: 'Approved' }),
            waitingRun({ id: 'run-3', status: 'Running' }, { checkpointId: 'run-3.1.taste.before.0' }),
            waitingRun({ id: 'run-4' }, { checkpointId: 'run-4.1.taste.before.0', deadline: '2025-06-02T08:00:00Z' }),
            waitingRun({ id: 'run-5' }, { checkpointId: 'run-5.1.taste.before.0' }),
        ];
        const { ports, store, dir } = setup(runs, due);
        expect(await remindApprovers(ports, store, 0.25, 1)).toMatchObject({ sent: 3, due: 2 });
        expect(store.filters).toHaveLength(4); // four runs await approval, one per page
        expect(readOutbox(outboxPath(dir)).map((l) => `${l.checkpointId}:${l.channel}:${l.personId}`)).toEqual([
            'run-1.1.taste.before.0:email:ava',
            'run-1.1.taste.before.0:teams:#channel',
            'run-5.1.taste.before.0:email:ava',
        ]);
    });

    it("an escalation's new deadline gets its own reminder, to the widened roles", async () => {
        const run = waitingRun({}, { ...channels });
        const { ports, store, dir, clock } = setup([run], due);
        expect(await remindApprovers(ports, store, 0.25)).toMatchObject({ sent: 2 });
        store.runs = [
            waitingRun(
                {},
                {
                    ...channels,
                    status: 'Escalated',
                    escalated: true,
                    requiredRoles: ['Mesh.Approver', 'Mesh.Admin'],
                    deadline: '2025-06-03T12:00:00.000Z',
                },
            ),
        ];
        clock.now = new Date('2025-06-02T13:00:00Z'); // just escalated: too early for the new deadline
        expect(await remindApprovers(ports, store, 0.25)).toMatchObject({ sent: 0, due: 0 });
        clock.now = new Date('2025-06-03T09:00:00Z');
        expect(await remindApprovers(ports, store, 0.25)).toMatchObject({ sent: 3, due: 1 });
        expect(await remindApprovers(ports, store, 0.25)).toMatchObject({ sent: 0, due: 1 });
        const later = readOutbox(outboxPath(dir)).slice(2);
        expect(later.map((l) => `${l.channel}:${l.personId}`)).toEqual(['email:ava', 'email:ada', 'teams:#channel']);
        // the channel names everyone who may decide now, the widened roles' Ada included
        expect(later[2]!.subject).toMatch(/^Reminder:/);
        for (const l of later) expect(l.key).toMatch(new RegExp(`^reminder:${CP}@2025-06-03T12:00:00.000Z\\|`));
    });

    it('the timer function logs what it sent', async () => {
        const { ports, store } = setup([waitingRun({}, { ...channels })], due);
        const logs: string[] = [];
        const ctx = new InvocationContext({
            functionName: 'remindApprovers',
            logHandler: (_level, ...args) => logs.push(args.map(String).join(' ')),
        });
        const timer: Timer = {
            isPastDue: false,
            schedule: { adjustForDST: false },
            scheduleStatus: { last: '', next: '', lastUpdated: '' },
        };
        const { info: _i, warn: _w, ...notify } = ports;
        await remindApproversFunction(timer, ctx, { runs: store as unknown as RunStore, notify }, 0.25);
        expect(logs).toContain('remindApprovers: 1 checkpoints due; 2 sent, 0 failed');
    });
});

describe('reminder configuration', () => {
    it('defaults to every minute and a quarter of the window; both are settings', () => {
        expect(parseReminderConfig({})).toEqual({
            schedule: DEFAULT_REMINDER_SCHEDULE,
            fraction: DEFAULT_REMINDER_FRACTION,
        });
        expect(DEFAULT_REMINDER_SCHEDULE).toBe('0 */1 * * * *');
        expect(
            parseReminderConfig({ MESH_REMINDER_SCHEDULE: ' */1 * * * * * ', MESH_REMINDER_FRACTION: '0.5' }),
        ).toEqual({ schedule: '*/1 * * * * *', fraction: 0.5 });
        for (const bad of ['0', '1', '-0.1', 'x'])
            expect(() => parseReminderConfig({ MESH_REMINDER_FRACTION: bad })).toThrow(/MESH_REMINDER_FRACTION/);
    });
});
