/**
 * Operators' interventions (domain/control.ts) against the in-memory fakes: pause and resume are state in the run
 * (the workflow reads it at its safe points), abort ends the run at once. Also what the workflow's own records do
 * to a paused run (applyProjection).
 */
import { abortRun, type ControlPorts, type ControlRequest, pauseRun, resumeRun } from '../../domain/control';
import { ConflictError } from '../../domain/errors';
import type { RunStatus } from '../../domain/pipeline';
import type { Principal } from '../../domain/principal';
import { applyProjection } from '../../domain/projection';
import type { NextAction, RunDoc } from '../../domain/run';
import { makeRun, MemoryAudit, MemoryRuns } from '../support/domainFakes';

const NOW = '2024-01-01T03:00:00.000Z';
const OPERATOR: Principal = { id: 'operator-1', name: 'Olga Operator', roles: ['Mesh.Operator'], teams: [] };
const OWNER: Principal = { id: 'dev-1', roles: ['Mesh.Developer'], teams: ['alpha'] };
const TERMINAL = ['Completed', 'Failed', 'Aborted', 'Rejected', 'TimedOut'] as const;
const NEXT_ACTION: NextAction = {
    type: 'approval',
    checkpointId: 'run-1.1.taste.before.0',
    stage: 'taste',
    position: 'before',
    requiredRoles: ['Mesh.Approver'],
    deadline: '2024-01-02T00:00:00.000Z',
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function setup(run: Partial<RunDoc> = {}) {
    const runs = new MemoryRuns();
    const audit = new MemoryAudit();
    let t = new Date(NOW).getTime();
    // Each reading one minute later: every call has its own time.
    const ports: ControlPorts = { runs, audit, now: () => new Date((t += 60_000) - 60_000) };
    await runs.create(makeRun({ status: 'Running', currentStage: 'filtering', ...run }));
    return { runs, audit, ports };
}

const request = (over: Partial<ControlRequest> = {}): ControlRequest => ({
    principal: OPERATOR,
    runId: 'run-1',
    reason: 'look first',
    correlationID: 'corr-op',
    ...over,
});

const at = (minutes: number) => new Date(new Date(NOW).getTime() + minutes * 60_000).toISOString();

describe('pauseRun', () => {
    it.each([
        ['Running', 'before the next stage starts'],
        ['AwaitingApproval', 'now: the run waits at a checkpoint'],
        ['Queued', 'before the next stage starts'],
    ] as const)('a %s run becomes Paused, remembering %s as where it resumes to', async (status, takesEffect) => {
        const { ports, runs, audit } = await setup({
            status,
            nextAction: status === 'AwaitingApproval' ? NEXT_ACTION : null,
        });
        const before = (await runs.get('run-1'))!;
        const paused = await pauseRun(ports, request());
        expect(paused.pause?.pauseId).toMatch(UUID);
        const pauseId = paused.pause!.pauseId;
        expect(paused).toEqual({
            ...before,
            status: 'Paused',
            resumeStatus: status,
            pause: { pauseId, actor: 'operator-1', reason: 'look first', at: NOW, correlationID: 'corr-op' },
            updatedAt: NOW,
        });
        expect(await runs.get('run-1')).toEqual(paused);
        expect(audit.records).toHaveLength(1);
        expect(audit.records[0]).toMatchObject({
            eventId: `run-1/pause/${pauseId}`,
            runId: 'run-1',
            type: 'pipeline.paused',
            at: NOW,
            actor: 'operator-1',
            correlationID: 'corr-op',
            reason: 'look first',
            stage: 'filtering',
            details: { takesEffect },
        });
    });

    it('keeps the checkpoint the run waits at (its nextAction) while paused', async () => {
        const { ports } = await setup({ status: 'AwaitingApproval', currentStage: 'taste', nextAction: NEXT_ACTION });
        const paused = await pauseRun(ports, request());
        expect(paused).toMatchObject({ status: 'Paused', resumeStatus: 'AwaitingApproval', nextAction: NEXT_ACTION });
    });

    it('a run that has not started a stage yet records no stage', async () => {
        const { ports, audit } = await setup({ status: 'Queued', currentStage: null });
        await pauseRun(ports, request());
        expect(audit.records[0]).not.toHaveProperty('stage');
    });

    it('each pause has its own pauseId and audit record', async () => {
        const { ports, audit } = await setup();
        const first = (await pauseRun(ports, request())).pause!.pauseId;
        await resumeRun(ports, request());
        const second = (await pauseRun(ports, request({ principal: OWNER, correlationID: 'corr-2' }))).pause!.pauseId;
        expect(second).not.toBe(first);
        expect(audit.records.map((r) => [r.type, r.eventId, r.actor])).toEqual([
            ['pipeline.paused', `run-1/pause/${first}`, 'operator-1'],
            ['pipeline.resumed', `run-1/resume/${first}`, 'operator-1'],
            ['pipeline.paused', `run-1/pause/${second}`, 'dev-1'],
        ]);
    });

    it('a second pause is a ConflictError and changes nothing', async () => {
        const { ports, runs, audit } = await setup();
        await pauseRun(ports, request());
        const paused = await runs.get('run-1');
        await expect(pauseRun(ports, request({ principal: OWNER, reason: 'me too' }))).rejects.toThrow(
            new ConflictError('The run is already paused.'),
        );
        expect(await runs.get('run-1')).toEqual(paused);
        expect(audit.records.map((r) => r.type)).toEqual(['pipeline.paused']);
    });

    it.each(TERMINAL)('a %s run cannot be paused: ConflictError, nothing changes', async (status) => {
        const { ports, runs, audit } = await setup({ status });
        const before = await runs.get('run-1');
        const error = await pauseRun(ports, request()).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ConflictError);
        expect(error).toMatchObject({ code: 'CONFLICT', status: 409 });
        expect((error as Error).message).toContain(status);
        expect(await runs.get('run-1')).toEqual(before);
        expect(audit.appended).toEqual([]);
    });

    it('an unknown run is rejected by the store, with nothing audited', async () => {
        const { ports, audit } = await setup();
        await expect(pauseRun(ports, request({ runId: 'nope' }))).rejects.toMatchObject({ code: 'NOT_FOUND' });
        expect(audit.appended).toEqual([]);
    });
});

describe('resumeRun', () => {
    it.each(['Running', 'AwaitingApproval'] as const)(
        'restores %s, clears the pause, records pipeline.resumed and returns the pauseId',
        async (status) => {
            const { ports, runs, audit } = await setup({ status });
            const pauseId = (await pauseRun(ports, request())).pause!.pauseId;
            const { run, pauseId: resumed } = await resumeRun(
                ports,
                request({ principal: OWNER, reason: 'looked', correlationID: 'corr-resume' }),
            );
            expect(resumed).toBe(pauseId);
            expect(run).toMatchObject({ status, updatedAt: at(1) });
            expect(run).not.toHaveProperty('pause');
            expect(run).not.toHaveProperty('resumeStatus');
            expect(await runs.get('run-1')).toEqual(run);
            expect(audit.records[1]).toMatchObject({
                eventId: `run-1/resume/${pauseId}`,
                type: 'pipeline.resumed',
                at: at(1),
                actor: 'dev-1',
                correlationID: 'corr-resume',
                reason: 'looked',
                stage: 'filtering',
                details: { status },
            });
        },
    );

    it('resumes to where the workflow moved while paused (resumeStatus kept current by its records)', async () => {
        const { ports, runs } = await setup({ status: 'Running' });
        await pauseRun(ports, request());
        // The workflow opened a checkpoint meanwhile.
        await runs.update('run-1', (r) =>
            applyProjection(r, { status: 'AwaitingApproval', currentStage: 'taste', nextAction: NEXT_ACTION }, at(5)),
        );
        expect(await runs.get('run-1')).toMatchObject({ status: 'Paused', resumeStatus: 'AwaitingApproval' });
        const { run } = await resumeRun(ports, request());
        expect(run).toMatchObject({ status: 'AwaitingApproval', nextAction: NEXT_ACTION, currentStage: 'taste' });
    });

    it('a paused run without a resumeStatus resumes Running', async () => {
        const { ports } = await setup({
            status: 'Paused',
            pause: { pauseId: 'pause-1', actor: 'operator-1', reason: 'r', at: NOW, correlationID: 'c' },
        });
        const { run, pauseId } = await resumeRun(ports, request());
        expect(pauseId).toBe('pause-1');
        expect(run.status).toBe('Running');
    });

    it.each(['Running', 'AwaitingApproval', 'Queued', ...TERMINAL] as const)(
        'a %s run (not paused) cannot be resumed: ConflictError, nothing changes',
        async (status) => {
            const { ports, runs, audit } = await setup({ status });
            const before = await runs.get('run-1');
            await expect(resumeRun(ports, request())).rejects.toThrow(
                new ConflictError(`Only a paused run can be resumed; this one is ${status}.`),
            );
            expect(await runs.get('run-1')).toEqual(before);
            expect(audit.appended).toEqual([]);
        },
    );

    it('a second resume is a ConflictError', async () => {
        const { ports, audit } = await setup();
        await pauseRun(ports, request());
        await resumeRun(ports, request());
        await expect(resumeRun(ports, request())).rejects.toBeInstanceOf(ConflictError);
        expect(audit.records.map((r) => r.type)).toEqual(['pipeline.paused', 'pipeline.resumed']);
    });
});

describe('abortRun', () => {
    it.each(['Queued', 'Running', 'AwaitingApproval'] as const)(
        'a %s run becomes Aborted at once with no nextAction; pipeline.aborted is recorded',
        async (status) => {
            const { ports, runs, audit } = await setup({ status, nextAction: NEXT_ACTION });
            const before = (await runs.get('run-1'))!;
            const aborted = await abortRun(ports, request({ principal: OWNER, reason: 'runaway' }));
            expect(aborted).toEqual({ ...before, status: 'Aborted', nextAction: null, updatedAt: NOW });
            expect(await runs.get('run-1')).toEqual(aborted);
            expect(audit.records).toHaveLength(1);
            expect(audit.records[0]).toMatchObject({
                eventId: 'run-1/abort',
                runId: 'run-1',
                type: 'pipeline.aborted',
                at: NOW,
                actor: 'dev-1',
                correlationID: 'corr-op',
                reason: 'runaway',
                stage: 'filtering',
            });
        },
    );

    it.each(['Running', 'AwaitingApproval'] as const)(
        'a paused run (was %s) becomes Aborted, the pause and resumeStatus cleared',
        async (status) => {
            const { ports, runs, audit } = await setup({ status, nextAction: NEXT_ACTION });
            await pauseRun(ports, request());
            const aborted = await abortRun(ports, request({ reason: 'enough' }));
            expect(aborted).toMatchObject({ status: 'Aborted', nextAction: null, updatedAt: at(1) });
            expect(aborted).not.toHaveProperty('pause');
            expect(aborted).not.toHaveProperty('resumeStatus');
            expect(await runs.get('run-1')).toEqual(aborted);
            expect(audit.records.map((r) => r.type)).toEqual(['pipeline.paused', 'pipeline.aborted']);
            // Nothing to resume any more.
            await expect(resumeRun(ports, request())).rejects.toBeInstanceOf(ConflictError);
        },
    );

    it.each(TERMINAL)('a %s run cannot be aborted: ConflictError, nothing changes', async (status) => {
        const { ports, runs, audit } = await setup({ status });
        const before = await runs.get('run-1');
        await expect(abortRun(ports, request())).rejects.toThrow(
            new ConflictError(`The run is ${status}; nothing changes a finished run.`),
        );
        expect(await runs.get('run-1')).toEqual(before);
        expect(audit.appended).toEqual([]);
    });

    it('a second abort is a ConflictError and records nothing more', async () => {
        const { ports, audit } = await setup();
        await abortRun(ports, request());
        await expect(abortRun(ports, request())).rejects.toBeInstanceOf(ConflictError);
        expect(audit.records.map((r) => r.type)).toEqual(['pipeline.aborted']);
    });
});

describe('applyProjection on a paused run', () => {
    const pausedRun = (resumeStatus: RunStatus = 'Running', over: Partial<RunDoc> = {}): RunDoc =>
        makeRun({
            status: 'Paused',
            resumeStatus,
            pause: { pauseId: 'pause-1', actor: 'operator-1', reason: 'r', at: NOW, correlationID: 'c' },
            ...over,
        });

    it.each(['Running', 'AwaitingApproval', 'Queued'] as const)(
        'a non-terminal status (%s) goes to resumeStatus; the run stays Paused and the rest applies',
        (status) => {
            const run = pausedRun();
            const next = applyProjection(
                run,
                { status, currentStage: 'taste', nextAction: NEXT_ACTION, iteration: 2 },
                at(5),
            );
            expect(next).toEqual({
                ...run,
                status: 'Paused',
                resumeStatus: status,
                currentStage: 'taste',
                nextAction: NEXT_ACTION,
                iteration: 2,
                updatedAt: at(5),
            });
        },
    );

    it('a change without a status leaves status and resumeStatus alone', () => {
        const run = pausedRun('AwaitingApproval');
        const next = applyProjection(run, { nextAction: null }, at(5));
        expect(next).toMatchObject({ status: 'Paused', resumeStatus: 'AwaitingApproval', pause: run.pause });
    });

    it.each(TERMINAL)('a terminal status (%s) applies and clears the pause', (status) => {
        const next = applyProjection(pausedRun('AwaitingApproval'), { status, nextAction: null }, at(5));
        expect(next).toMatchObject({ status, nextAction: null, updatedAt: at(5) });
        expect(next).not.toHaveProperty('pause');
        expect(next).not.toHaveProperty('resumeStatus');
    });

    it('is idempotent while paused', () => {
        const change = { status: 'AwaitingApproval' as const, nextAction: NEXT_ACTION };
        const once = applyProjection(pausedRun(), change, at(5));
        expect(applyProjection(once, change, at(5))).toEqual(once);
    });

    it('does not change the run it is given', () => {
        const run = pausedRun();
        const copy = structuredClone(run);
        applyProjection(run, { status: 'Completed' }, at(5));
        expect(run).toEqual(copy);
    });
});
