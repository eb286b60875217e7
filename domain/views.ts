/** What the API shows of a run: the status view (SPEC "GET /pipeline/status") and the list summary. */
import { type AuditRecord, maskPiiText } from './audit';
import type { InfoAnswer, InfoRequest, RunDoc } from './run';
import type { WaitingOn } from './waiting';

/**
 * `maskWords`: the reader is not of the run's team (domain/privacy.ts `readsOwnWords`), so the words of info requests
 * and answers are shown with personal data masked. `waitingOn`: who the run waits on now (domain/waiting.ts
 * `waitingOnOf`); it joins an `approval` next action.
 */
export function statusView(
    run: RunDoc,
    history: AuditRecord[],
    opts: { maskWords?: boolean; waitingOn?: WaitingOn } = {},
): Record<string, unknown> {
    const words = <T extends InfoRequest | InfoAnswer>(x: T): T =>
        opts.maskWords && x.comment !== undefined ? { ...x, comment: maskPiiText(x.comment) } : x;
    return {
        orchestrationID: run.id,
        status: run.status,
        currentStage: run.currentStage,
        stages: run.stages,
        nextAction:
            run.nextAction && opts.waitingOn ? { ...run.nextAction, waitingOn: opts.waitingOn } : run.nextAction,
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
            decisions: c.decisions.map((d) => ({
                actor: d.actorId,
                decision: d.decision,
                channel: d.channel,
                at: d.at,
            })),
            ...(c.infoRequest ? { infoRequest: words(c.infoRequest) } : {}),
            ...(c.infoAnswers?.length ? { infoAnswers: c.infoAnswers.map(words) } : {}),
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
