/** What the API shows of a run: the status view (SPEC "GET /pipeline/status") and the list summary. */
import type { AuditRecord } from './audit';
import type { RunDoc } from './run';
import type { WaitingOn } from './waiting';

/** `waitingOn`: who the run waits on now (domain/waiting.ts `waitingOnOf`); it joins an `approval` next action. */
export function statusView(run: RunDoc, history: AuditRecord[], waitingOn?: WaitingOn): Record<string, unknown> {
    return {
        orchestrationID: run.id,
        status: run.status,
        currentStage: run.currentStage,
        stages: run.stages,
        nextAction: run.nextAction && waitingOn ? { ...run.nextAction, waitingOn } : run.nextAction,
        history: history.map(historyItem),
        createdBy: run.createdBy,
        team: run.metadata.team,
        title: run.metadata.title ?? null,
        riskLevel: run.metadata.riskLevel,
        complianceTags: run.metadata.complianceTags,
        iteration: run.iteration,
        maxIterations: run.maxIterations,
        checkpoints: run.checkpoints.map((c) => ({
            checkpointId: c.checkpointId,
            stage: c.stage,
            position: c.position,
            iteration: c.iteration,
            status: c.status,
            requiredRoles: c.requiredRoles,
            approvals: c.approvals,
            deadline: c.deadline,
            ...(c.infoRequest ? { infoRequest: c.infoRequest } : {}),
            decisions: c.decisions.map((d) => ({
                actor: d.actorId,
                decision: d.decision,
                channel: d.channel,
                at: d.at,
            })),
        })),
        createdAt: run.createdAt,
        updatedAt: run.updatedAt,
        ...(run.status === 'Completed' ? { output: run.output ?? null } : {}),
        ...(run.error ? { error: run.error } : {}),
    };
}

export function summaryView(run: RunDoc): Record<string, unknown> {
    return {
        orchestrationID: run.id,
        status: run.status,
        currentStage: run.currentStage,
        team: run.metadata.team,
        title: run.metadata.title ?? null,
        riskLevel: run.metadata.riskLevel,
        createdBy: run.createdBy,
        createdAt: run.createdAt,
        updatedAt: run.updatedAt,
        nextAction: run.nextAction,
    };
}

function historyItem(r: AuditRecord): Record<string, unknown> {
    return {
        seq: r.seq,
        type: r.type,
        at: r.at,
        actor: r.actor,
        ...(r.stage ? { stage: r.stage } : {}),
        ...(r.checkpointId ? { checkpointId: r.checkpointId } : {}),
        ...(r.reason ? { reason: r.reason } : {}),
    };
}
