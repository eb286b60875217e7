import { NotFoundError } from '../../domain/errors';
import type { EngineResult } from '../../domain/ports';
import type { RunDoc } from '../../domain/run';
import {
    outputKey,
    type RecordInput,
    recordStateChange,
    runStage,
    type RunStageInput,
    type StepPorts,
} from '../../domain/steps';
import { CannedEngine, makeRun, MemoryAudit, MemoryRuns } from '../support/domainFakes';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** A clock that ticks one second per reading. */
function clock(start = '2024-01-01T00:00:00.000Z') {
    let t = new Date(start).getTime();
    return () => new Date((t += 1000));
}

async function setup(run: Partial<RunDoc> = {}, answers: (EngineResult | Error)[] = []) {
    const runs = new MemoryRuns();
    const audit = new MemoryAudit();
    const engine = new CannedEngine(answers);
    const recorded: RecordInput[] = [];
    await runs.create(
        makeRun({ status: 'Running', metadata: { team: 'alpha', riskLevel: 'high', complianceTags: ['pii'] }, ...run }),
    );
    const ports: StepPorts = {
        runs,
        audit,
        engine,
        now: clock(),
        onRecorded: (i) => {
            recorded.push(i);
            return Promise.resolve();
        },
    };
    return { runs, audit, engine, ports, recorded };
}

const stageInput = (stage: RunStageInput['stage'], iteration = 1): RunStageInput => ({
    runId: 'run-1',
    stage,
    iteration,
    correlationID: 'corr-1',
    traceparent: TRACEPARENT,
});

const ok = (output: unknown, more = false): EngineResult => ({ ok: true, output, continue: more });

describe('runStage', () => {
    it('records stage.started, calls the engine, stores the output, records stage.completed', async () => {
        const { ports, runs, audit, engine, recorded } = await setup({}, [ok({ ideas: ['a', 'b'] })]);
        await expect(runStage(ports, stageInput('generation'))).resolves.toEqual({
            ok: true,
            continue: false,
            outputKey: '1.generation',
        });
        expect(engine.requests).toEqual([
            {
                runId: 'run-1',
                stage: 'generation',
                iteration: 1,
                input: { prompt: 'an idea' }, // the run's input, for the first generation
                metadata: { team: 'alpha', riskLevel: 'high', complianceTags: ['pii'] },
                correlationID: 'corr-1',
                traceparent: TRACEPARENT,
                idempotencyKey: 'run-1:generation:1',
            },
        ]);
        expect(await runs.getOutput('run-1', '1.generation')).toEqual({
            output: { ideas: ['a', 'b'] },
            continue: false,
        });
        expect(audit.records.map((r) => [r.eventId, r.type, r.stage, r.actor, r.correlationID])).toEqual([
            ['run-1/1.generation/started', 'stage.started', 'generation', 'system', 'corr-1'],
            ['run-1/1.generation/completed', 'stage.completed', 'generation', 'system', 'corr-1'],
        ]);
        expect(audit.records.map((r) => r.details)).toEqual([{ iteration: 1 }, { iteration: 1 }]);
        expect(recorded.map((r) => r.type)).toEqual(['stage.started', 'stage.completed']);
        const run = (await runs.get('run-1'))!;
        expect(run).toMatchObject({ status: 'Running', currentStage: 'generation', iteration: 1 });
        expect(run.stages[0]).toEqual({
            name: 'generation',
            status: 'Completed',
            startedAt: '2024-01-01T00:00:01.000Z',
            endedAt: '2024-01-01T00:00:02.000Z',
            attempts: 1,
        });
    });

    it('passes the previous stage’s output as input; improvement reports continue', async () => {
        const { ports, runs, engine, audit } = await setup({}, [ok('filtered'), ok('improved', true)]);
        await runs.putOutput('run-1', '1.generation', { output: 'generated', continue: false });
        await runs.putOutput('run-1', '1.taste', { output: 'tasted', continue: false });
        await runStage(ports, stageInput('filtering'));
        await expect(runStage(ports, stageInput('improvement'))).resolves.toEqual({
            ok: true,
            continue: true,
            outputKey: '1.improvement',
        });
        expect(engine.requests.map((r) => [r.stage, r.input, r.idempotencyKey])).toEqual([
            ['filtering', 'generated', 'run-1:filtering:1'],
            ['improvement', 'tasted', 'run-1:improvement:1'],
        ]);
        expect(audit.records.find((r) => r.eventId === 'run-1/1.improvement/completed')?.details).toEqual({
            iteration: 1,
            continue: true,
        });
    });

    it('a second iteration’s generation takes the first iteration’s improvement output', async () => {
        const { ports, runs, engine } = await setup({}, [ok('generated again')]);
        await runs.putOutput('run-1', '1.improvement', { output: 'improved', continue: true });
        await expect(runStage(ports, stageInput('generation', 2))).resolves.toEqual({
            ok: true,
            continue: false,
            outputKey: '2.generation',
        });
        expect(engine.requests[0]).toMatchObject({
            input: 'improved',
            iteration: 2,
            idempotencyKey: 'run-1:generation:2',
        });
        expect((await runs.get('run-1'))!.iteration).toBe(2);
    });

    it('records stage.started and stage.completed once per eventId when the activity is retried', async () => {
        const { ports, audit, engine, runs } = await setup({}, [new Error('engine timed out'), ok('generated')]);
        await expect(runStage(ports, stageInput('generation'))).rejects.toThrow('engine timed out');
        await expect(runStage(ports, stageInput('generation'))).resolves.toMatchObject({ ok: true });
        // A third execution (e.g. the orchestrator's retry after a lost completion) answers from the store.
        await expect(runStage(ports, stageInput('generation'))).resolves.toEqual({
            ok: true,
            continue: false,
            outputKey: '1.generation',
        });
        expect(engine.requests.map((r) => r.idempotencyKey)).toEqual(['run-1:generation:1', 'run-1:generation:1']);
        expect(audit.records.map((r) => r.type)).toEqual(['stage.started', 'stage.completed']);
        expect(audit.appended.map((e) => e.eventId)).toEqual([
            'run-1/1.generation/started',
            'run-1/1.generation/started',
            'run-1/1.generation/completed',
        ]);
        expect((await runs.get('run-1'))!.stages[0]).toMatchObject({ status: 'Completed', attempts: 2 });
    });

    it('an already stored output skips the engine and records nothing', async () => {
        const { ports, runs, audit, engine } = await setup();
        await runs.putOutput('run-1', '1.creativity', { output: 'creative', continue: false });
        await expect(runStage(ports, stageInput('creativity'))).resolves.toEqual({
            ok: true,
            continue: false,
            outputKey: '1.creativity',
        });
        expect(engine.requests).toEqual([]);
        expect(audit.appended).toEqual([]);
    });

    it.each(['Completed', 'Failed', 'Aborted', 'Rejected', 'TimedOut'] as const)(
        'a %s run answers CONFLICT without calling the engine or recording anything',
        async (status) => {
            const { ports, audit, engine, runs } = await setup({ status });
            await expect(runStage(ports, stageInput('taste'))).resolves.toEqual({
                ok: false,
                code: 'CONFLICT',
                message: `the run is ${status}`,
            });
            expect(engine.requests).toEqual([]);
            expect(audit.appended).toEqual([]);
            expect(runs.calls.putOutput).toBe(0);
        },
    );

    it('an engine refusal is returned as is: no output stored, no stage.completed', async () => {
        const { ports, runs, audit } = await setup({}, [{ ok: false, code: 'VALIDATION_FAILED', message: 'too long' }]);
        await expect(runStage(ports, stageInput('generation'))).resolves.toEqual({
            ok: false,
            code: 'VALIDATION_FAILED',
            message: 'too long',
        });
        expect(runs.calls.putOutput).toBe(0);
        expect(audit.records.map((r) => r.type)).toEqual(['stage.started']);
    });

    it('an unknown run is NOT_FOUND', async () => {
        const { ports, engine } = await setup();
        await expect(runStage(ports, { ...stageInput('generation'), runId: 'nope' })).rejects.toBeInstanceOf(
            NotFoundError,
        );
        expect(engine.requests).toEqual([]);
    });

    it('stores outputs under <iteration>.<stage>', () => {
        expect(outputKey(2, 'taste')).toBe('2.taste');
    });
});

describe('recordStateChange', () => {
    const input = (over: Partial<RecordInput> = {}): RecordInput => ({
        runId: 'run-1',
        eventId: 'run-1/7',
        type: 'pipeline.completed',
        at: '2024-01-01T05:00:00.000Z',
        actor: 'system',
        correlationID: 'corr-1',
        projection: { status: 'Completed', currentStage: null, nextAction: null, outputKey: '1.improvement' },
        ...over,
    });

    it('appends once per eventId, applies the projection and copies the stored output into the run', async () => {
        const { ports, runs, audit, recorded } = await setup();
        await runs.putOutput('run-1', '1.improvement', { output: { final: true }, continue: false });
        await recordStateChange(ports, input());
        await recordStateChange(ports, input());
        expect(audit.records).toHaveLength(1);
        expect(audit.records[0]).not.toHaveProperty('projection');
        expect(await runs.get('run-1')).toMatchObject({
            status: 'Completed',
            output: { final: true },
            updatedAt: '2024-01-01T05:00:00.000Z',
        });
        expect(recorded).toHaveLength(2);
    });
});
