import { abortRun } from '../../domain/control';
import { ConflictError } from '../../domain/errors';
import type { RunStatus } from '../../domain/pipeline';
import {
    endedOutsideConflict,
    instanceEnd,
    type InstanceState,
    reconciledEventId,
    type ReconcilePorts,
    reconcileRun,
} from '../../domain/reconcile';
import type { RunDoc } from '../../domain/run';
import type { RecordInput } from '../../domain/steps';
import { makeRun, MemoryAudit, MemoryRuns } from '../support/domainFakes';

const TERMINATED: InstanceState = { exists: true, runtimeStatus: 'Terminated' };
const FAILED: InstanceState = { exists: true, runtimeStatus: 'Failed' };
const PURGED: InstanceState = { exists: false };
const live = (runtimeStatus: string): InstanceState => ({ exists: true, runtimeStatus });

async function setup(run: Partial<RunDoc> = {}) {
    const runs = new MemoryRuns();
    const audit = new MemoryAudit();
    const recorded: RecordInput[] = [];
    const { run: stored } = await runs.create(makeRun({ status: 'AwaitingApproval', currentStage: 'taste', ...run }));
    const ports: ReconcilePorts = {
        runs,
        audit,
        now: () => new Date('2024-01-01T01:00:00.000Z'),
        onRecorded: (i) => {
            recorded.push(i);
            return Promise.resolve();
        },
    };
    return { runs, audit, ports, recorded, run: stored };
}

describe('instanceEnd', () => {
    const run = (status: RunStatus, over: Partial<RunDoc> = {}) => makeRun({ status, ...over });

    it('maps a terminated instance to Aborted, a failed or missing one to Failed', () => {
        for (const status of ['Running', 'AwaitingApproval', 'Paused'] as const) {
            expect(instanceEnd(run(status), TERMINATED)).toEqual({ status: 'Aborted', how: 'terminated' });
            expect(instanceEnd(run(status), FAILED)).toEqual({ status: 'Failed', how: 'failed' });
            expect(instanceEnd(run(status), PURGED)).toEqual({ status: 'Failed', how: 'purged' });
        }
    });

    it('leaves live instances, normally completed ones and finished runs alone', () => {
        for (const s of ['Running', 'Pending', 'Suspended', 'ContinuedAsNew', 'Completed'])
            expect(instanceEnd(run('AwaitingApproval'), live(s))).toBeUndefined();
        for (const status of ['Completed', 'Failed', 'Aborted', 'Rejected', 'TimedOut'] as const)
            for (const instance of [TERMINATED, FAILED, PURGED])
                expect(instanceEnd(run(status), instance)).toBeUndefined();
    });

    it('leaves a queued run without an instance to admission (also when paused while queued)', () => {
        expect(instanceEnd(run('Queued'), PURGED)).toBeUndefined();
        expect(instanceEnd(run('Paused', { resumeStatus: 'Queued' }), PURGED)).toBeUndefined();
        // An instance that exists and was terminated is an end, queued or not: admission never starts it again.
        expect(instanceEnd(run('Queued'), TERMINATED)).toEqual({ status: 'Aborted', how: 'terminated' });
    });
});

describe('reconcileRun', () => {
    it('records a terminated instance as pipeline.aborted by system, once, through the recording path', async () => {
        const { ports, runs, audit, recorded, run } = await setup();
        const done = await reconcileRun(ports, run, TERMINATED, 'corr-1');
        expect(done?.end).toEqual({ status: 'Aborted', how: 'terminated' });
        expect(done?.run).toMatchObject({ status: 'Aborted', nextAction: null });
        expect((await runs.get(run.id))?.status).toBe('Aborted');
        expect(audit.records).toHaveLength(1);
        expect(audit.records[0]).toMatchObject({
            eventId: reconciledEventId(run.id),
            type: 'pipeline.aborted',
            actor: 'system',
            correlationID: 'corr-1',
            stage: 'taste',
            reason: "The run's durable instance was terminated outside the API.",
            details: { instance: 'terminated' },
        });
        // The outbox/event hook of every state change saw it.
        expect(recorded.map((r) => r.type)).toEqual(['pipeline.aborted']);
    });

    it('records a purged or failed instance as pipeline.failed with an error', async () => {
        for (const [instance, how, code] of [
            [PURGED, 'purged', 'WORKFLOW_PURGED'],
            [FAILED, 'failed', 'WORKFLOW_FAILED'],
        ] as const) {
            const { ports, audit, run } = await setup({ status: 'Paused', resumeStatus: 'AwaitingApproval' });
            const done = await reconcileRun(ports, run, instance, 'corr-2');
            expect(done?.run).toMatchObject({
                status: 'Failed',
                error: { code, message: `The run's durable instance was ${how} outside the API.` },
            });
            expect(done?.run.pause).toBeUndefined();
            expect(audit.records.map((r) => [r.type, r.actor])).toEqual([['pipeline.failed', 'system']]);
        }
    });

    it('is idempotent: callers racing (or repeating) record one reconciling record', async () => {
        const { ports, audit, run } = await setup();
        const all = await Promise.all([
            reconcileRun(ports, run, TERMINATED, 'a'),
            reconcileRun(ports, run, TERMINATED, 'b'),
            reconcileRun(ports, run, TERMINATED, 'c'),
        ]);
        expect(all.map((x) => x?.run.status)).toEqual(['Aborted', 'Aborted', 'Aborted']);
        // A later caller holding the stale (live) run changes nothing either.
        await reconcileRun(ports, run, TERMINATED, 'd');
        expect(audit.records.map((r) => r.type)).toEqual(['pipeline.aborted']);
    });

    it('does nothing after our own abort (recorded before the instance is terminated)', async () => {
        const { ports, runs, audit, run } = await setup();
        await abortRun(ports, {
            principal: { id: 'olga', roles: ['Mesh.Operator'], teams: [] },
            runId: run.id,
            reason: 'stop it',
            correlationID: 'corr-abort',
        });
        // The caller read the run before the abort; the instance is then found terminated by the abort itself.
        await reconcileRun(ports, run, TERMINATED, 'corr-3');
        expect(audit.records.map((r) => [r.type, r.actor])).toEqual([['pipeline.aborted', 'olga']]);
        expect((await runs.get(run.id))?.status).toBe('Aborted');
    });

    it('does nothing for a live or normally completed instance, or a queued run not yet started', async () => {
        const { ports, audit, run } = await setup();
        for (const s of ['Running', 'Pending', 'Completed'])
            expect(await reconcileRun(ports, run, live(s), 'x')).toBeUndefined();
        const queued = await setup({ status: 'Queued' });
        expect(await reconcileRun(queued.ports, queued.run, PURGED, 'x')).toBeUndefined();
        expect([...audit.records, ...queued.audit.records]).toEqual([]);
    });

    it('answers CONFLICT naming what happened and the status now', () => {
        const e = endedOutsideConflict(
            'run-1',
            { status: 'Aborted', how: 'terminated' },
            makeRun({ status: 'Aborted' }),
            'decide',
        );
        expect(e).toBeInstanceOf(ConflictError);
        expect(e.message).toBe(
            "Cannot decide: the run's workflow was terminated outside the API, so the run is Aborted now.",
        );
    });
});
