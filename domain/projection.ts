/**
 * Applying a state change to a run's projection. Pure and idempotent: applying the same change twice gives
 * the same run (a retried activity may apply it again), and nothing changes a terminal run's status.
 */
import { isTerminal, type Position, type RunStatus, type Stage, type StageStatus } from './pipeline';
import type { CheckpointSpec } from './policy';
import type { Decision } from './quorum';
import type {
    CheckpointDecisionRecord,
    CheckpointState,
    CheckpointStatus,
    InfoAnswer,
    NextAction,
    RunDoc,
} from './run';

/** A change to the run's projection that travels with its audit record. */
export interface ProjectionChange {
    status?: RunStatus;
    currentStage?: Stage | null;
    iteration?: number;
    /** `attempt`: this change starts one more engine attempt (every application counts: each is an attempt). */
    stage?: { name: Stage; status: StageStatus; startedAt?: string; endedAt?: string; attempt?: boolean };
    checkpoint?: {
        checkpointId: string;
        key: string;
        iteration: number;
        stage: Stage;
        position: Position;
        status: CheckpointStatus;
        openedAt?: string;
        deadline?: string;
        escalated?: boolean;
        requiredRoles?: CheckpointSpec['requiredRoles'];
        decision?: {
            actorId: string;
            actorName?: string;
            decision: Decision;
            comment?: string;
            channel: 'api' | 'link';
            at: string;
        };
    };
    nextAction?: NextAction | null;
    /** The submitter (or their team) answered the checkpoint's open info request: kept, and the request closed. */
    infoAnswer?: InfoAnswer & { checkpointId: string };
    /** Copy the output stored under this key into the run's `output`. */
    outputKey?: string;
    error?: { code: string; message: string } | null;
}

export function applyProjection(run: RunDoc, change: ProjectionChange, at: string, output?: unknown): RunDoc {
    // A finished run is frozen: a step still in flight when it was aborted changes nothing.
    if (isTerminal(run.status)) return run;
    const next: RunDoc = { ...run, updatedAt: at };
    if (change.status && !(isTerminal(run.status) && change.status !== run.status)) {
        if (run.pause && !isTerminal(change.status)) {
            // Held by an operator: the workflow's own moves only change where the run resumes to.
            next.resumeStatus = change.status;
        } else {
            next.status = change.status;
            if (isTerminal(change.status)) {
                delete next.pause;
                delete next.resumeStatus;
            }
        }
    }
    if (change.currentStage !== undefined) next.currentStage = change.currentStage;
    if (change.iteration !== undefined) next.iteration = change.iteration;
    if (change.nextAction !== undefined) next.nextAction = change.nextAction;
    if (change.error !== undefined) next.error = change.error ?? undefined;
    if (change.outputKey !== undefined) next.output = output;
    if (change.stage) {
        const s = change.stage;
        next.currentStage = s.name;
        next.stages = run.stages.map((st) =>
            st.name !== s.name
                ? st
                : {
                      ...st,
                      status: s.status,
                      attempts: st.attempts + (s.attempt ? 1 : 0),
                      startedAt: s.startedAt ?? st.startedAt,
                      endedAt: s.status === 'Running' ? null : (s.endedAt ?? st.endedAt),
                  },
        );
    }
    if (change.checkpoint) next.checkpoints = upsertCheckpoint(run.checkpoints, change.checkpoint);
    if (change.infoAnswer) next.checkpoints = answerInfo(next.checkpoints, change.infoAnswer);
    return next;
}

/** The statuses in which a checkpoint takes decisions (and an info request can be open). */
const TAKES_DECISIONS: ReadonlySet<CheckpointStatus> = new Set(['Open', 'Escalated']);

/** Keeps an answer (once: the same answerer and time is the same answer) and closes the open info request. */
function answerInfo(list: CheckpointState[], a: NonNullable<ProjectionChange['infoAnswer']>): CheckpointState[] {
    const { checkpointId, ...answer } = a;
    return list.map((c) => {
        if (c.checkpointId !== checkpointId) return c;
        if (c.infoAnswers?.some((x) => x.by === answer.by && x.at === answer.at)) return c;
        const { infoRequest: _answered, ...rest } = c;
        return { ...rest, infoAnswers: [...(c.infoAnswers ?? []), answer] };
    });
}

function upsertCheckpoint(list: CheckpointState[], c: NonNullable<ProjectionChange['checkpoint']>): CheckpointState[] {
    const existing = list.find((x) => x.checkpointId === c.checkpointId);
    // A later iteration's checkpoint takes its spec (quorum, timeout rule, channels) from the first one.
    const template = existing ?? list.find((x) => x.key === c.key);
    const base: CheckpointState = existing ?? {
        checkpointId: c.checkpointId,
        key: c.key,
        iteration: c.iteration,
        stage: c.stage,
        position: c.position,
        requiredRoles: template?.requiredRoles ?? [],
        approvals: template?.approvals ?? 1,
        timeoutMs: template?.timeoutMs ?? 0,
        rule: template?.rule ?? '',
        onTimeout: template?.onTimeout ?? 'reject',
        escalateTo: template?.escalateTo ?? [],
        channels: template?.channels ?? [],
        status: 'Pending',
        openedAt: null,
        deadline: null,
        escalated: false,
        decisions: [],
    };
    const d = c.decision;
    const fresh =
        d && !base.decisions.some((x) => x.actorId === d.actorId && x.at === d.at && x.decision === d.decision)
            ? d
            : undefined;
    const decisions: CheckpointDecisionRecord[] = fresh ? [...base.decisions, fresh] : base.decisions;
    // A request_info decision opens an info request (a newer one replaces it); a closed checkpoint has none open.
    const { infoRequest: open, ...rest } = base;
    const infoRequest = !TAKES_DECISIONS.has(c.status)
        ? undefined
        : fresh?.decision === 'request_info'
          ? { by: fresh.actorId, at: fresh.at, ...(fresh.comment !== undefined ? { comment: fresh.comment } : {}) }
          : open;
    const updated: CheckpointState = {
        ...rest,
        ...(infoRequest ? { infoRequest } : {}),
        status: c.status,
        openedAt: c.openedAt ?? base.openedAt,
        deadline: c.deadline ?? base.deadline,
        escalated: c.escalated ?? base.escalated,
        requiredRoles: c.requiredRoles ?? base.requiredRoles,
        decisions,
    };
    return existing ? list.map((x) => (x.checkpointId === c.checkpointId ? updated : x)) : [...list, updated];
}
