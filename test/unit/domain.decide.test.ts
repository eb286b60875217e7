import { assertDecidable, decideCheckpoint } from '../../domain/decide';
import { ConflictError, ForbiddenError, NotFoundError } from '../../domain/errors';
import type { Principal } from '../../domain/principal';
import type { RunDoc } from '../../domain/run';
import { decisionEvent } from '../../orchestrators/meshPipeline/contract';
import { MemoryRuns } from '../support/domainFakes';
import { CP, waitingRun } from '../support/linkFixtures';

const ava: Principal = { id: 'ava', name: 'Ava', roles: ['Mesh.Approver'], teams: ['alpha'] };

async function runsWith(run: RunDoc): Promise<MemoryRuns> {
    const runs = new MemoryRuns();
    await runs.create(run);
    return runs;
}

describe('decideCheckpoint', () => {
    it('builds the decision event for an allowed approver and names the checkpoint’s event', async () => {
        const runs = await runsWith(waitingRun());
        const out = await decideCheckpoint({ runs }, ava, CP, { decision: 'approve', comment: 'ok' }, 'api', 'corr-9');
        expect(out.run.id).toBe('run-1');
        expect(out.checkpoint.checkpointId).toBe(CP);
        expect(out.eventName).toBe(decisionEvent(CP, false));
        expect(out.event).toEqual({
            decisionId: expect.stringMatching(/^[0-9a-f-]{36}$/),
            checkpointId: CP,
            decision: 'approve',
            actorId: 'ava',
            actorName: 'Ava',
            comment: 'ok',
            channel: 'api',
            correlationID: 'corr-9',
        });
        const again = await decideCheckpoint({ runs }, ava, CP, { decision: 'approve' }, 'link', 'c');
        expect(again.event.decisionId).not.toBe(out.event.decisionId);
        expect(again.event).not.toHaveProperty('comment');
        expect(again.event.channel).toBe('link');
    });

    it('raises on the escalated name once the checkpoint escalated', async () => {
        const runs = await runsWith(waitingRun({}, { status: 'Escalated', escalated: true }));
        const out = await decideCheckpoint({ runs }, ava, CP, { decision: 'reject' }, 'api', 'c');
        expect(out.eventName).toBe(decisionEvent(CP, true));
    });

    it('answers NOT_FOUND for a run the caller may not see, a missing run and a missing checkpoint', async () => {
        const runs = await runsWith(waitingRun());
        const bea: Principal = { id: 'bea', roles: ['Mesh.Approver'], teams: ['beta'] };
        await expect(decideCheckpoint({ runs }, bea, CP, { decision: 'approve' }, 'api', 'c')).rejects.toThrow(
            NotFoundError,
        );
        await expect(
            decideCheckpoint({ runs }, ava, 'nope.1.taste.before.0', { decision: 'approve' }, 'api', 'c'),
        ).rejects.toThrow("Run 'nope' was not found.");
        await expect(
            decideCheckpoint({ runs }, ava, 'run-1.2.taste.before.0', { decision: 'approve' }, 'api', 'c'),
        ).rejects.toThrow("Checkpoint 'run-1.2.taste.before.0' was not found.");
        await expect(decideCheckpoint({ runs }, ava, 'garbage', { decision: 'approve' }, 'api', 'c')).rejects.toThrow(
            NotFoundError,
        );
    });

    it('forbids the submitter (four-eyes), a caller without the role, and an approver of another team', () => {
        const run = waitingRun();
        const self: Principal = { id: 'dana', roles: ['Mesh.Developer', 'Mesh.Approver'], teams: ['alpha'] };
        expect(() => assertDecidable(self, run, CP, 'approve')).toThrow(/four-eyes/);
        const dev: Principal = { id: 'sam', roles: ['Mesh.Developer'], teams: ['alpha'] };
        expect(() => assertDecidable(dev, run, CP, 'approve')).toThrow(ForbiddenError);
        const opApprover: Principal = { id: 'olga', roles: ['Mesh.Operator', 'Mesh.Approver'], teams: [] };
        expect(() => assertDecidable(opApprover, run, CP, 'approve')).toThrow("Approvers must belong to team 'alpha'.");
        const admin: Principal = { id: 'ada', roles: ['Mesh.Admin'], teams: [] };
        expect(() =>
            assertDecidable(admin, waitingRun({}, { requiredRoles: ['Mesh.Admin'] }), CP, 'approve'),
        ).not.toThrow();
    });

    it('answers CONFLICT for a checkpoint that is not open, a run not awaiting approval and a repeated approval', () => {
        expect(() => assertDecidable(ava, waitingRun(), 'run-1.1.improvement.after.1', 'approve')).toThrow(
            'The checkpoint is Pending, not open for decisions.',
        );
        expect(() => assertDecidable(ava, waitingRun({}, { status: 'Approved' }), CP, 'approve')).toThrow(
            ConflictError,
        );
        expect(() => assertDecidable(ava, waitingRun({ status: 'Paused' }), CP, 'approve')).toThrow(
            'The run is Paused; decisions are taken while it awaits approval.',
        );
        const voted = waitingRun(
            {},
            { approvals: 2, decisions: [{ actorId: 'ava', decision: 'approve', channel: 'api', at: 'x' }] },
        );
        expect(() => assertDecidable(ava, voted, CP, 'approve')).toThrow(/one person counts once/);
        expect(() => assertDecidable(ava, voted, CP, 'request_info')).not.toThrow();
        expect(() => assertDecidable({ ...ava, id: 'amir' }, voted, CP, 'approve')).not.toThrow();
    });

    it('refuses a run that is not the checkpoint’s', () => {
        expect(() => assertDecidable(ava, waitingRun({ id: 'run-2' }), CP, 'approve')).toThrow(NotFoundError);
    });
});
