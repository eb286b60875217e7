/**
 * Waiting on whom (domain/waiting.ts): which checkpoint a run waits on, who may decide it now (the rules of
 * assertDecidable, stated for readers), what the stores index, `waitingOn` and the inbox's items and order.
 */
import type { Person } from '../../domain/ports';
import type { Principal, Role } from '../../domain/principal';
import type { CheckpointState, RunDoc } from '../../domain/run';
import { inboxItems, mayAnswer, mayDecideNow, openCheckpoint, waitIndexOf, waitingOnOf } from '../../domain/waiting';
import { makeRun } from '../support/domainFakes';

const person = (id: string, roles: Role[], teams: string[] = ['alpha']): Person => ({
    id,
    name: `${id} N`,
    roles,
    teams,
});

function checkpoint(runId: string, over: Partial<CheckpointState> = {}): CheckpointState {
    return {
        checkpointId: `${runId}.0.taste.before.0`,
        key: 'taste.before.0',
        iteration: 0,
        stage: 'taste',
        position: 'before',
        requiredRoles: ['Mesh.Approver'],
        approvals: 2,
        timeoutMs: 3_600_000,
        onTimeout: 'escalate',
        escalateTo: ['Mesh.Admin'],
        channels: [],
        rule: 'critical-risk review',
        status: 'Open',
        openedAt: '2026-01-01T10:00:00.000Z',
        deadline: '2026-01-01T11:00:00.000Z',
        escalated: false,
        decisions: [],
        ...over,
    };
}

/** A run of team alpha submitted by `dana`, waiting on its taste checkpoint. */
function waitingRun(id = 'run-1', cp: Partial<CheckpointState> = {}, over: Partial<RunDoc> = {}): RunDoc {
    const c = checkpoint(id, cp);
    return makeRun({
        id,
        status: 'AwaitingApproval',
        createdBy: 'dana',
        metadata: { team: 'alpha', riskLevel: 'critical', complianceTags: [], title: `title ${id}` },
        checkpoints: [c],
        nextAction: {
            type: 'approval',
            checkpointId: c.checkpointId,
            stage: c.stage,
            position: c.position,
            requiredRoles: c.requiredRoles,
            deadline: c.deadline!,
        },
        ...over,
    });
}

const ava = person('ava', ['Mesh.Approver']);
const amir = person('amir', ['Mesh.Approver']);
const bea = person('bea', ['Mesh.Approver'], ['beta']);
const ada = person('ada', ['Mesh.Admin'], []);
const dana = person('dana', ['Mesh.Developer', 'Mesh.Approver']);
const approve = (actorId: string) => ({
    actorId,
    decision: 'approve' as const,
    channel: 'api' as const,
    at: '2026-01-01T10:30:00.000Z',
});

describe('openCheckpoint', () => {
    it('is the open checkpoint nextAction names while the run awaits approval', () => {
        expect(openCheckpoint(waitingRun())?.checkpointId).toBe('run-1.0.taste.before.0');
        expect(openCheckpoint(waitingRun('r', { status: 'Escalated' }))?.status).toBe('Escalated');
    });

    it('is none while paused, after the decision, or without a checkpoint', () => {
        expect(openCheckpoint(waitingRun('r', {}, { status: 'Paused' }))).toBeUndefined();
        expect(openCheckpoint(waitingRun('r', { status: 'Approved' }))).toBeUndefined();
        expect(openCheckpoint(makeRun({ status: 'Running' }))).toBeUndefined();
    });
});

describe('mayDecideNow (who may decide now)', () => {
    const run = waitingRun();
    it.each<[string, Person, boolean]>([
        ['a team approver', ava, true],
        ['an approver of another team', bea, false],
        ['an Admin without the required role', ada, false],
        ['the submitter, even holding the role (four-eyes)', dana, false],
        ['a developer of the team', person('sam', ['Mesh.Developer']), false],
        ['an Admin holding the role, of no team', person('root', ['Mesh.Admin', 'Mesh.Approver'], []), true],
    ])('%s', (_, who, expected) => {
        expect(mayDecideNow(who, run)).toBe(expected);
    });

    it('not one who already approved; a request_info does not count as approval', () => {
        const r = waitingRun('r', {
            decisions: [approve('ava'), { ...approve('amir'), decision: 'request_info' }],
        });
        expect(mayDecideNow(ava, r)).toBe(false);
        expect(mayDecideNow(amir, r)).toBe(true);
    });

    it('the escalated roles decide once the checkpoint escalated', () => {
        const r = waitingRun('r', {
            status: 'Escalated',
            escalated: true,
            requiredRoles: ['Mesh.Approver', 'Mesh.Admin'],
        });
        expect(mayDecideNow(ada, r)).toBe(true);
        expect(mayDecideNow(ava, r)).toBe(true);
    });

    it('nobody while the run is paused', () => {
        expect(mayDecideNow(ava, waitingRun('r', {}, { status: 'Paused' }))).toBe(false);
    });
});

describe('waitingOnOf', () => {
    it('lists the directory people who may decide now, with since, deadline, approvals and escalation', () => {
        const r = waitingRun('r', { decisions: [approve('ava')] });
        expect(waitingOnOf(r, [ava, amir, dana, bea, amir])).toEqual({
            approvers: [{ id: 'amir', name: 'amir N' }],
            since: '2026-01-01T10:00:00.000Z',
            deadline: '2026-01-01T11:00:00.000Z',
            approvals: { have: 1, need: 2 },
            escalated: false,
        });
    });

    it('is undefined when the run waits on no decision', () => {
        expect(waitingOnOf(makeRun({ status: 'Running' }), [ava])).toBeUndefined();
    });
});

describe('waitIndexOf (what the stores index)', () => {
    it('the open checkpoint roles and approvers, and whether an info request is open', () => {
        const r = waitingRun('r', {
            decisions: [approve('ava'), approve('ava')],
            infoRequest: { by: 'amir', at: '2026-01-01T10:40:00.000Z' },
        });
        expect(waitIndexOf(r)).toEqual({ waiting: { roles: ['Mesh.Approver'], approved: ['ava'] }, infoOpen: true });
        expect(waitIndexOf(makeRun({ status: 'Running' }))).toEqual({ infoOpen: false });
    });
});

describe('mayAnswer', () => {
    const run = waitingRun();
    it.each<[string, Person, boolean]>([
        ['the submitter', person('dana', []), true],
        ['a developer of the team', person('sam', ['Mesh.DataScientist']), true],
        ['an approver of the team', ava, false],
        ['a developer of another team', person('bob', ['Mesh.Developer'], ['beta']), false],
    ])('%s', (_, who, expected) => {
        expect(mayAnswer(who, run)).toBe(expected);
    });
});

describe('inboxItems', () => {
    const as = (p: Person): Principal => ({ id: p.id, roles: p.roles, teams: p.teams });
    const older = waitingRun('old', { openedAt: '2026-01-01T08:00:00.000Z' });
    const newer = waitingRun('new', { openedAt: '2026-01-01T09:00:00+00:00' });
    const asking = waitingRun('ask', {
        openedAt: '2026-01-01T07:00:00.000Z',
        infoRequest: { by: 'ava', at: '2026-01-01T08:30:00.000Z', comment: 'which data?' },
    });

    it('an approver gets decide items, oldest first, with what the widget shows', () => {
        const items = inboxItems(as(amir), [newer, older, asking]);
        expect(items.map((i) => [i.action, i.orchestrationID])).toEqual([
            ['decide', 'ask'],
            ['decide', 'old'],
            ['decide', 'new'],
        ]);
        expect(items[1]).toEqual({
            action: 'decide',
            checkpointId: 'old.0.taste.before.0',
            orchestrationID: 'old',
            title: 'title old',
            team: 'alpha',
            riskLevel: 'critical',
            stage: 'taste',
            position: 'before',
            since: '2026-01-01T08:00:00.000Z',
            deadline: '2026-01-01T11:00:00.000Z',
            approvals: { have: 0, need: 2 },
            escalated: false,
            requiredRoles: ['Mesh.Approver'],
        });
    });

    it('the submitter gets the answer item (since the question), never a decide item', () => {
        const items = inboxItems(as(person('dana', ['Mesh.Developer', 'Mesh.Approver'])), [newer, older, asking]);
        expect(items).toEqual([
            expect.objectContaining({
                action: 'answer',
                orchestrationID: 'ask',
                since: '2026-01-01T08:30:00.000Z',
                infoRequest: { by: 'ava', at: '2026-01-01T08:30:00.000Z', comment: 'which data?' },
            }),
        ]);
    });

    it('another team gets nothing, and a run found twice is listed once', () => {
        expect(inboxItems(as(bea), [older, asking])).toEqual([]);
        expect(inboxItems(as(amir), [older, older])).toHaveLength(1);
    });
});
