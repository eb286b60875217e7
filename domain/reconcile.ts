/**
 * Reconciling a run with its durable instance. A run's workflow can end behind the API's back: terminated or purged
 * through the durable management API, or failed with an unhandled error. The run would then show a live status
 * forever while decisions, stops and resumes are still accepted. Whoever finds the instance ended (a decision, a
 * stop or resume, a status read, the sweep) records the end here, through the one recording path every state change
 * takes (audit record, projection, outbox event, admission slot), once: the record's eventId is fixed per run, so
 * callers racing each other record it once.
 *
 * Our own abort is never reconciled: it records `pipeline.aborted` (the run is terminal) before it terminates.
 */
import { ConflictError } from './errors';
import { isTerminal, type RunStatus } from './pipeline';
import type { RunDoc } from './run';
import { recordStateChange, type StepPorts } from './steps';

/** What the durable backend says of a run's instance: its runtime status, or that it has none (never started, purged). */
export type InstanceState = { exists: true; runtimeStatus: string } | { exists: false };

/** How the instance ended outside the workflow, and the status the run takes for it. */
export interface InstanceEnd {
    status: Extract<RunStatus, 'Aborted' | 'Failed'>;
    how: 'terminated' | 'failed' | 'purged';
}

export type ReconcilePorts = Pick<StepPorts, 'runs' | 'audit' | 'onRecorded' | 'now'>;

/**
 * Whether `instance` ended outside the workflow while `run` still shows it live. Undefined: nothing to reconcile
 * (the run already ended, the instance is live or completed normally, or a queued run has no instance yet).
 */
export function instanceEnd(run: RunDoc, instance: InstanceState): InstanceEnd | undefined {
    if (isTerminal(run.status)) return undefined;
    // Queued (also paused while queued): admission owns it; an instance may legitimately not exist yet.
    const queued = run.status === 'Queued' || (run.status === 'Paused' && run.resumeStatus === 'Queued');
    if (!instance.exists) return queued ? undefined : { status: 'Failed', how: 'purged' };
    if (instance.runtimeStatus === 'Terminated') return { status: 'Aborted', how: 'terminated' };
    if (instance.runtimeStatus === 'Failed') return { status: 'Failed', how: 'failed' };
    // Running, Pending, Suspended, ContinuedAsNew: live. Completed: the workflow recorded its own end.
    return undefined;
}

/** The deterministic id of a run's reconciling record: at most one per run, however many callers find the end. */
export function reconciledEventId(runId: string): string {
    return `${runId}/reconciled`;
}

/**
 * Records the end of a run whose instance ended outside the workflow (`instanceEnd`), as `pipeline.aborted` or
 * `pipeline.failed` by `system`. Read the instance before the run: our own abort records before it terminates, so an
 * instance found terminated by it belongs to a run already terminal (`recordStateChange` leaves those alone).
 * Answers the run as it is afterwards with how its instance ended, or undefined when there was nothing to reconcile.
 */
export async function reconcileRun(
    p: ReconcilePorts,
    run: RunDoc,
    instance: InstanceState,
    correlationID: string,
): Promise<{ run: RunDoc; end: InstanceEnd } | undefined> {
    const end = instanceEnd(run, instance);
    if (!end) return undefined;
    const reason = `The run's durable instance was ${end.how} outside the API.`;
    await recordStateChange(p, {
        runId: run.id,
        eventId: reconciledEventId(run.id),
        type: end.status === 'Aborted' ? 'pipeline.aborted' : 'pipeline.failed',
        at: p.now().toISOString(),
        actor: 'system',
        correlationID,
        reason,
        ...(run.currentStage ? { stage: run.currentStage } : {}),
        details: { instance: end.how },
        projection: {
            status: end.status,
            nextAction: null,
            ...(end.status === 'Failed'
                ? { error: { code: end.how === 'purged' ? 'WORKFLOW_PURGED' : 'WORKFLOW_FAILED', message: reason } }
                : {}),
        },
    });
    return { run: (await p.runs.get(run.id)) ?? run, end };
}

/** The CONFLICT answered to someone acting on a run whose instance ended outside the API. */
export function endedOutsideConflict(runId: string, end: InstanceEnd, run: RunDoc, action: string): ConflictError {
    return new ConflictError(
        `Cannot ${action}: the run's workflow was ${end.how} outside the API, so the run is ${run.status} now.`,
        { orchestrationID: runId, status: run.status },
    );
}
