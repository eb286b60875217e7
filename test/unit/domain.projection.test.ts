import { applyProjection, type ProjectionChange } from '../../domain/projection';
import type { CheckpointState, RunDoc } from '../../domain/run';
import { makeRun } from '../support/domainFakes';

const AT = '2024-01-01T01:00:00.000Z';
const LATER = '2024-01-01T02:00:00.000Z';

const tasteCheckpoint = (over: Partial<CheckpointState> = {}): CheckpointState => ({
    checkpointId: 'run-1.1.taste.before.0',
    key: 'taste.before.0',
    iteration: 1,
    stage: 'taste',
    position: 'before',
    requiredRoles: ['Mesh.Approver'],
    approvals: 2,
    timeoutMs: 86_400_000,
    onTimeout: 'escalate',
    escalateTo: ['Mesh.Admin'],
    channels: ['email', 'teams'],
    rule: 'critical-risk review before taste',
    status: 'Pending',
    openedAt: null,
    deadline: null,
    escalated: false,
    decisions: [],
    ...over,
});

const running = (over: Partial<RunDoc> = {}) =>
    makeRun({ status: 'Running', checkpoints: [tasteCheckpoint()], ...over });
const apply = (run: RunDoc, ...changes: ProjectionChange[]) => changes.reduce((r, c) => applyProjection(r, c, AT), run);

const decided = (actorId: string, decision: 'approve' | 'reject' | 'request_info', at = AT): ProjectionChange => ({
    checkpoint: {
        checkpointId: 'run-1.1.taste.before.0',
        key: 'taste.before.0',
        iteration: 1,
        stage: 'taste',
        position: 'before',
        status: 'Open',
        decision: { actorId, decision, channel: 'api', at },
    },
});

describe('applyProjection', () => {
    it('stamps updatedAt and leaves what the change does not mention', () => {
        const run = running();
        const next = applyProjection(run, {}, AT);
        expect(next).toEqual({ ...run, updatedAt: AT });
        expect(run.updatedAt).toBe('2024-01-01T00:00:00.000Z'); // the input is not changed
    });

    it('stage start: the stage Running with its start time, current stage, run Running, iteration', () => {
        const next = applyProjection(
            makeRun({ status: 'Queued' }),
            { status: 'Running', stage: { name: 'filtering', status: 'Running', startedAt: AT }, iteration: 2 },
            AT,
        );
        expect(next).toMatchObject({ status: 'Running', currentStage: 'filtering', iteration: 2 });
        expect(next.stages.find((s) => s.name === 'filtering')).toEqual({
            name: 'filtering',
            status: 'Running',
            startedAt: AT,
            endedAt: null,
            attempts: 0,
        });
        expect(next.stages.filter((s) => s.name !== 'filtering').every((s) => s.status === 'Pending')).toBe(true);
    });

    it('stage complete: Completed with its end time, start time kept; a restart clears the end time', () => {
        const started = apply(running(), { stage: { name: 'generation', status: 'Running', startedAt: AT } });
        const done = applyProjection(
            started,
            { stage: { name: 'generation', status: 'Completed', endedAt: LATER } },
            LATER,
        );
        expect(done.stages[0]).toEqual({
            name: 'generation',
            status: 'Completed',
            startedAt: AT,
            endedAt: LATER,
            attempts: 0,
        });
        expect(done.currentStage).toBe('generation');
        const again = applyProjection(
            done,
            { stage: { name: 'generation', status: 'Running', startedAt: LATER } },
            LATER,
        );
        expect(again.stages[0]).toMatchObject({ status: 'Running', startedAt: LATER, endedAt: null });
    });

    it('is idempotent: applying a change twice gives the same run', () => {
        const change: ProjectionChange = {
            status: 'AwaitingApproval',
            currentStage: 'taste',
            nextAction: {
                type: 'approval',
                checkpointId: 'run-1.1.taste.before.0',
                stage: 'taste',
                position: 'before',
                requiredRoles: ['Mesh.Approver'],
                deadline: LATER,
            },
            checkpoint: { ...decided('alice', 'approve').checkpoint!, status: 'Open', openedAt: AT, deadline: LATER },
        };
        const once = apply(running(), change);
        expect(apply(once, change)).toEqual(once);
    });

    it('checkpoint upsert: opens the submitted checkpoint in place, keeping its spec', () => {
        const next = apply(running(), {
            checkpoint: {
                ...decided('x', 'approve').checkpoint!,
                decision: undefined,
                status: 'Open',
                openedAt: AT,
                deadline: LATER,
                requiredRoles: ['Mesh.Approver'],
            },
        });
        expect(next.checkpoints).toEqual([tasteCheckpoint({ status: 'Open', openedAt: AT, deadline: LATER })]);
    });

    it('checkpoint upsert: decisions are appended once each (a re-applied decision is not duplicated)', () => {
        const next = apply(
            running(),
            decided('alice', 'approve'),
            decided('alice', 'approve'),
            decided('bob', 'request_info'),
            decided('alice', 'approve', LATER),
        );
        expect(next.checkpoints[0]!.decisions.map((d) => `${d.actorId}:${d.decision}@${d.at}`)).toEqual([
            `alice:approve@${AT}`,
            `bob:request_info@${AT}`,
            `alice:approve@${LATER}`,
        ]);
    });

    it('checkpoint upsert: escalation widens the roles and moves the deadline; later changes keep them', () => {
        const escalated = apply(running(), {
            checkpoint: {
                ...decided('x', 'approve').checkpoint!,
                decision: undefined,
                status: 'Escalated',
                escalated: true,
                deadline: LATER,
                requiredRoles: ['Mesh.Approver', 'Mesh.Admin'],
            },
        });
        const approved = apply(escalated, {
            checkpoint: { ...decided('root', 'approve').checkpoint!, status: 'Approved' },
        });
        expect(approved.checkpoints[0]).toMatchObject({
            status: 'Approved',
            escalated: true,
            deadline: LATER,
            requiredRoles: ['Mesh.Approver', 'Mesh.Admin'],
        });
    });

    it('a later iteration’s checkpoint is added beside the first and inherits its spec', () => {
        const next = apply(running(), {
            checkpoint: {
                checkpointId: 'run-1.2.taste.before.0',
                key: 'taste.before.0',
                iteration: 2,
                stage: 'taste',
                position: 'before',
                status: 'Open',
                openedAt: LATER,
                deadline: LATER,
                requiredRoles: ['Mesh.Approver'],
            },
        });
        expect(next.checkpoints).toHaveLength(2);
        expect(next.checkpoints[0]).toEqual(tasteCheckpoint());
        expect(next.checkpoints[1]).toEqual(
            tasteCheckpoint({
                checkpointId: 'run-1.2.taste.before.0',
                iteration: 2,
                status: 'Open',
                openedAt: LATER,
                deadline: LATER,
            }),
        );
    });

    it('a checkpoint with no template gets neutral defaults', () => {
        const next = apply(running({ checkpoints: [] }), {
            checkpoint: { ...decided('x', 'approve').checkpoint!, decision: undefined },
        });
        expect(next.checkpoints[0]).toMatchObject({
            requiredRoles: [],
            approvals: 1,
            timeoutMs: 0,
            rule: '',
            onTimeout: 'reject',
            escalateTo: [],
            channels: [],
        });
    });

    it.each(['Completed', 'Failed', 'Aborted', 'Rejected', 'TimedOut'] as const)(
        'never changes the status of a %s run',
        (status) => {
            const run = running({ status });
            for (const to of [
                'Running',
                'AwaitingApproval',
                'Paused',
                'Completed',
                'Failed',
                'Aborted',
                'Rejected',
                'TimedOut',
            ] as const) {
                expect(applyProjection(run, { status: to }, AT).status).toBe(status);
            }
            // e.g. a stage the engine finished after an abort: the stage is recorded, the run stays terminal.
            const late = applyProjection(
                run,
                { status: 'Running', stage: { name: 'taste', status: 'Completed', endedAt: AT } },
                AT,
            );
            expect(late.status).toBe(status);
        },
    );

    it('moves between non-terminal statuses', () => {
        expect(apply(running(), { status: 'Paused' }).status).toBe('Paused');
        expect(apply(running({ status: 'Paused' }), { status: 'AwaitingApproval' }).status).toBe('AwaitingApproval');
    });

    it('nextAction, error and output', () => {
        const na = {
            type: 'approval' as const,
            checkpointId: 'c',
            stage: 'taste' as const,
            position: 'before' as const,
            requiredRoles: [],
            deadline: LATER,
        };
        expect(apply(running(), { nextAction: na }).nextAction).toEqual(na);
        expect(apply(running({ nextAction: na }), { nextAction: null }).nextAction).toBeNull();
        expect(apply(running({ nextAction: na }), {}).nextAction).toEqual(na);
        const failed = apply(running(), { status: 'Failed', error: { code: 'ENGINE_FAILED', message: 'down' } });
        expect(failed.error).toEqual({ code: 'ENGINE_FAILED', message: 'down' });
        expect(apply(failed, { error: null }).error).toEqual(failed.error); // a finished run is frozen
        expect(apply(running({ error: { code: 'X', message: 'y' } }), { error: null }).error).toBeUndefined();
        expect(
            applyProjection(running(), { status: 'Completed', outputKey: '1.improvement' }, AT, { idea: 'final' })
                .output,
        ).toEqual({ idea: 'final' });
        expect(applyProjection(running(), { status: 'Completed' }, AT, { idea: 'ignored' })).not.toHaveProperty(
            'output',
        );
    });
});

describe('applyProjection: the info loop (issue 11)', () => {
    const CP = 'run-1.1.taste.before.0';
    const opened = (status: 'Open' | 'Escalated' | 'Approved' | 'Rejected' | 'Expired' = 'Open'): ProjectionChange => ({
        checkpoint: {
            checkpointId: CP,
            key: 'taste.before.0',
            iteration: 1,
            stage: 'taste',
            position: 'before',
            status,
        },
    });
    const asked = (actorId: string, at: string, comment?: string): ProjectionChange => {
        const change = decided(actorId, 'request_info', at);
        change.checkpoint!.decision!.comment = comment;
        return change;
    };
    const answer = (by: string, at: string, comment = 'the Q3 export'): ProjectionChange => ({
        infoAnswer: { checkpointId: CP, by, at, comment },
    });
    const cp = (run: RunDoc) => run.checkpoints[0]!;

    it('a request_info decision opens an info request with the approver and their comment', () => {
        const run = apply(running(), opened(), asked('ava', AT, 'which dataset?'));
        expect(cp(run).infoRequest).toEqual({ by: 'ava', at: AT, comment: 'which dataset?' });
        expect(cp(run).decisions).toHaveLength(1);
        expect(cp(apply(running(), opened(), asked('ava', AT))).infoRequest).toEqual({ by: 'ava', at: AT });
    });

    it('an approval that leaves the checkpoint open keeps the request open; closing it clears the request', () => {
        const open = apply(running(), opened(), asked('ava', AT, 'q'), decided('bob', 'approve', LATER));
        expect(cp(open).infoRequest).toEqual({ by: 'ava', at: AT, comment: 'q' });
        for (const status of ['Approved', 'Rejected', 'Expired'] as const) {
            const closed = apply(open, opened(status));
            expect(cp(closed).infoRequest).toBeUndefined();
            expect('infoRequest' in cp(closed)).toBe(false);
        }
        // escalation keeps it open
        expect(cp(apply(open, opened('Escalated'))).infoRequest).toEqual({ by: 'ava', at: AT, comment: 'q' });
    });

    it('an answer is kept and closes the request; applied twice it is one answer; a new request opens again', () => {
        const requested = apply(running(), opened(), asked('ava', AT, 'q'));
        const answered = apply(requested, answer('dana', LATER), answer('dana', LATER));
        expect(cp(answered).infoRequest).toBeUndefined();
        expect(cp(answered).infoAnswers).toEqual([{ by: 'dana', at: LATER, comment: 'the Q3 export' }]);
        // a retried request_info record (same decision) does not reopen what was answered
        expect(cp(apply(answered, asked('ava', AT, 'q'))).infoRequest).toBeUndefined();
        const again = apply(answered, asked('bob', '2024-01-01T03:00:00.000Z', 'and the owner?'));
        expect(cp(again).infoRequest).toEqual({ by: 'bob', at: '2024-01-01T03:00:00.000Z', comment: 'and the owner?' });
        expect(cp(again).infoAnswers).toHaveLength(1);
    });

    it('an answer for an unknown checkpoint changes nothing; a finished run is frozen', () => {
        const requested = apply(running(), opened(), asked('ava', AT, 'q'));
        const other = applyProjection(
            requested,
            { infoAnswer: { checkpointId: 'x.1.taste.before.0', by: 'dana', at: LATER, comment: 'c' } },
            LATER,
        );
        expect(other.checkpoints).toEqual(requested.checkpoints);
        const done = { ...requested, status: 'Completed' as const };
        expect(applyProjection(done, answer('dana', LATER), LATER)).toBe(done);
    });

    it('runs without info requests look as before (no new keys)', () => {
        const run = apply(running(), opened(), decided('ava', 'approve'));
        expect(Object.keys(cp(run))).not.toContain('infoRequest');
        expect(Object.keys(cp(run))).not.toContain('infoAnswers');
    });
});
