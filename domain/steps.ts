/**
 * The pipeline's side-effecting steps, written against ports so the activities that run them stay thin and
 * tests can drive them with fakes. Both are idempotent: a retried or re-executed activity changes nothing twice.
 */
import type { AuditType } from './audit';
import { NotFoundError } from './errors';
import { isTerminal, type RunStatus, type Stage, STAGES } from './pipeline';
import type { AuditLog, EngineClient, RunStore } from './ports';
import { applyProjection, type ProjectionChange } from './projection';

/** One state change: an audit record plus the projection change, applied idempotently by `eventId`. */
export interface RecordInput {
    runId: string;
    eventId: string;
    type: AuditType;
    at: string;
    actor: string;
    correlationID: string;
    stage?: Stage;
    checkpointId?: string;
    reason?: string;
    details?: Record<string, unknown>;
    projection: ProjectionChange;
}

export interface RunStageInput {
    runId: string;
    stage: Stage;
    iteration: number;
    correlationID: string;
    traceparent: string;
}

export type RunStageResult =
    | { ok: true; continue: boolean; outputKey: string }
    /** An operator holds the run: park until resumed with this pauseId, then run the stage. */
    | { ok: false; code: 'PAUSED'; pauseId: string; message: string }
    /** The run ended outside the workflow (aborted): stop quietly. */
    | { ok: false; code: 'FINISHED'; status: RunStatus; message: string }
    | { ok: false; code: string; message: string };

/** Where a stage's output is stored. */
export function outputKey(iteration: number, stage: Stage): string {
    return `${iteration}.${stage}`;
}

interface StoredOutput {
    output: unknown;
    continue: boolean;
}

export interface StepPorts {
    runs: RunStore;
    audit: AuditLog;
    engine: EngineClient;
    now: () => Date;
    /** Called after a state change is durable (event publishing hooks in here). */
    onRecorded?: (input: RecordInput) => Promise<void>;
}

/**
 * Appends the audit record (once per eventId) and applies the projection change (idempotent by nature).
 * A run that already ended (aborted from outside the workflow) takes no further records.
 */
export async function recordStateChange(
    p: Pick<StepPorts, 'runs' | 'audit' | 'onRecorded'>,
    input: RecordInput,
): Promise<void> {
    const { projection, ...event } = input;
    const current = await p.runs.get(input.runId);
    if (!current || isTerminal(current.status)) return;
    const output = projection.outputKey
        ? ((await p.runs.getOutput(input.runId, projection.outputKey)) as StoredOutput | undefined)?.output
        : undefined;
    // Issued together: the embedded store commits both in one transaction; elsewhere each is idempotent.
    await Promise.all([
        p.audit.append(event),
        p.runs.update(input.runId, (run) => applyProjection(run, projection, input.at, output)),
    ]);
    await p.onRecorded?.(input);
}

/**
 * Runs one stage: records stage.started, calls the engine with the run's trace context and an idempotency
 * key, stores the output beside the run, records stage.completed. A stage whose output is already stored
 * (the activity ran before a crash) answers from the store without calling the engine again.
 */
export async function runStage(p: StepPorts, i: RunStageInput): Promise<RunStageResult> {
    const key = outputKey(i.iteration, i.stage);
    const done = (await p.runs.getOutput(i.runId, key)) as StoredOutput | undefined;
    if (done) {
        // Ran before a crash: the output is kept; make sure its completion is recorded too (idempotent by eventId).
        await recordCompleted(p, i, key, done.continue);
        return { ok: true, continue: done.continue, outputKey: key };
    }
    const run = await p.runs.get(i.runId);
    if (!run) throw new NotFoundError(`Run ${i.runId} does not exist.`);
    // An aborted run calls no more engines, even if this activity was already queued; a held one waits.
    if (isTerminal(run.status))
        return { ok: false, code: 'FINISHED', status: run.status, message: `the run is ${run.status}` };
    if (run.pause)
        return { ok: false, code: 'PAUSED', pauseId: run.pause.pauseId, message: `paused by ${run.pause.actor}` };

    const startedAt = p.now().toISOString();
    await recordStateChange(p, {
        runId: i.runId,
        eventId: `${i.runId}/${key}/started`,
        type: 'stage.started',
        at: startedAt,
        actor: 'system',
        correlationID: i.correlationID,
        stage: i.stage,
        details: { iteration: i.iteration },
        projection: {
            status: 'Running',
            stage: { name: i.stage, status: 'Running', startedAt, attempt: true },
            iteration: i.iteration,
        },
    });

    const result = await p.engine.invoke({
        runId: i.runId,
        stage: i.stage,
        iteration: i.iteration,
        input: await stageInput(p.runs, i, run.input),
        metadata: {
            team: run.metadata.team,
            riskLevel: run.metadata.riskLevel,
            complianceTags: run.metadata.complianceTags,
        },
        correlationID: i.correlationID,
        traceparent: i.traceparent,
        idempotencyKey: `${i.runId}:${i.stage}:${i.iteration}`,
    });
    if (!result.ok) return result;

    await p.runs.putOutput(i.runId, key, { output: result.output, continue: result.continue } satisfies StoredOutput);
    await recordCompleted(p, i, key, result.continue);
    return { ok: true, continue: result.continue, outputKey: key };
}

async function recordCompleted(p: StepPorts, i: RunStageInput, key: string, more: boolean): Promise<void> {
    const endedAt = p.now().toISOString();
    await recordStateChange(p, {
        runId: i.runId,
        eventId: `${i.runId}/${key}/completed`,
        type: 'stage.completed',
        at: endedAt,
        actor: 'system',
        correlationID: i.correlationID,
        stage: i.stage,
        details: { iteration: i.iteration, ...(i.stage === 'improvement' ? { continue: more } : {}) },
        projection: { stage: { name: i.stage, status: 'Completed', endedAt } },
    });
}

/** A stage's input: the previous stage's output, or the run's input for the first generation. */
async function stageInput(runs: RunStore, i: RunStageInput, runInput: unknown): Promise<unknown> {
    const index = STAGES.indexOf(i.stage);
    if (index === 0 && i.iteration === 1) return runInput;
    const previous =
        index === 0 ? outputKey(i.iteration - 1, 'improvement') : outputKey(i.iteration, STAGES[index - 1]!);
    const stored = (await runs.getOutput(i.runId, previous)) as StoredOutput | undefined;
    return stored?.output ?? runInput;
}
