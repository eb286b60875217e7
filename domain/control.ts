/**
 * Operators' interventions. Pause and resume are state in the run (the workflow reads it at its safe points),
 * abort ends the workflow at once. None of them races an event against running work in the orchestrator:
 * an abandoned external-event waiter would steal a later event of the same name on the Durable extension.
 */
import { randomUUID } from 'node:crypto';

import { ConflictError } from './errors';
import { isTerminal, type RunStatus } from './pipeline';
import type { AuditLog, RunStore } from './ports';
import type { Principal } from './principal';
import type { RunDoc } from './run';

export interface ControlPorts {
    runs: RunStore;
    audit: AuditLog;
    now: () => Date;
}

export interface ControlRequest {
    principal: Principal;
    runId: string;
    reason: string;
    correlationID: string;
}

/** Holds the run: at once if it waits at a checkpoint, after its current stage otherwise. */
export async function pauseRun(p: ControlPorts, r: ControlRequest): Promise<RunDoc> {
    const at = p.now().toISOString();
    const pauseId = randomUUID();
    let before = 'Running' as RunStatus;
    const run = await p.runs.update(r.runId, (run) => {
        if (isTerminal(run.status))
            throw new ConflictError(`The run is ${run.status}; nothing changes a finished run.`);
        if (run.pause) throw new ConflictError('The run is already paused.');
        before = run.status;
        return {
            ...run,
            status: 'Paused',
            resumeStatus: run.status,
            pause: { pauseId, actor: r.principal.id, reason: r.reason, at, correlationID: r.correlationID },
            updatedAt: at,
        };
    });
    await p.audit.append({
        eventId: `${r.runId}/pause/${pauseId}`,
        runId: r.runId,
        type: 'pipeline.paused',
        at,
        actor: r.principal.id,
        correlationID: r.correlationID,
        reason: r.reason,
        ...(run.currentStage ? { stage: run.currentStage } : {}),
        details: {
            takesEffect:
                before === 'AwaitingApproval' ? 'now: the run waits at a checkpoint' : 'before the next stage starts',
        },
    });
    return run;
}

/** Releases a paused run; the caller wakes the workflow with `pauseId` if it parked. */
export async function resumeRun(p: ControlPorts, r: ControlRequest): Promise<{ run: RunDoc; pauseId: string }> {
    const at = p.now().toISOString();
    let pauseId = '';
    const run = await p.runs.update(r.runId, (run) => {
        if (!run.pause || run.status !== 'Paused')
            throw new ConflictError(`Only a paused run can be resumed; this one is ${run.status}.`);
        pauseId = run.pause.pauseId;
        const { pause: _pause, resumeStatus, ...rest } = run;
        return { ...rest, status: resumeStatus ?? 'Running', updatedAt: at };
    });
    await p.audit.append({
        eventId: `${r.runId}/resume/${pauseId}`,
        runId: r.runId,
        type: 'pipeline.resumed',
        at,
        actor: r.principal.id,
        correlationID: r.correlationID,
        reason: r.reason,
        ...(run.currentStage ? { stage: run.currentStage } : {}),
        details: { status: run.status },
    });
    return { run, pauseId };
}

/** The audit record of a run's abort. */
export function abortEventId(runId: string): string {
    return `${runId}/abort`;
}

/**
 * What an abort tells the workflow engine (`terminate?reason=`, kept in durable history as is): a fixed text naming
 * the audit record, which holds the actor and their (sealed) reason. Never the words a person typed.
 */
export function abortTerminateReason(runId: string): string {
    return `aborted: see audit record ${abortEventId(runId)}`;
}

/** Ends the run at once (recorded first; the caller then terminates the workflow). */
export async function abortRun(p: ControlPorts, r: ControlRequest): Promise<RunDoc> {
    const at = p.now().toISOString();
    const run = await p.runs.update(r.runId, (run) => {
        if (isTerminal(run.status))
            throw new ConflictError(`The run is ${run.status}; nothing changes a finished run.`);
        const { pause: _pause, resumeStatus: _resume, ...rest } = run;
        return { ...rest, status: 'Aborted', nextAction: null, updatedAt: at };
    });
    await p.audit.append({
        eventId: abortEventId(r.runId),
        runId: r.runId,
        type: 'pipeline.aborted',
        at,
        actor: r.principal.id,
        correlationID: r.correlationID,
        reason: r.reason,
        ...(run.currentStage ? { stage: run.currentStage } : {}),
    });
    return run;
}
