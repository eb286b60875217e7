/**
 * Waiting on whom (SPEC "Waiting on whom (v1.1)"): which checkpoint a run waits on now, who may decide it now, what
 * the stores index so `GET /pipeline?waitingFor=` and the inbox are queries rather than scans, and the inbox items.
 * Pure: the same rules as `assertDecidable` (domain/decide.ts), stated once for the readers.
 */
import { isTerminal, type Position, type RiskLevel, type Stage } from './pipeline';
import type { Person } from './ports';
import type { Principal, Role } from './principal';
import type { CheckpointState, RunDoc } from './run';

/** Who is asked about: an id with roles and teams (a Principal or a directory Person). */
export interface Decider {
    id: string;
    roles: readonly Role[];
    teams: readonly string[];
}

/** Checkpoint states that take decisions. */
const OPEN: readonly CheckpointState['status'][] = ['Open', 'Escalated'];
/** Who answers an information request besides the submitter: these roles of the run's team. */
const ANSWERING_ROLES: readonly Role[] = ['Mesh.Developer', 'Mesh.DataScientist'];

/** The checkpoint the run waits on for a decision now (open, while the run awaits approval), if any. */
export function openCheckpoint(
    run: Pick<RunDoc, 'status' | 'nextAction' | 'checkpoints'>,
): CheckpointState | undefined {
    if (run.status !== 'AwaitingApproval') return undefined;
    const id = run.nextAction?.checkpointId;
    return run.checkpoints.find((c) => OPEN.includes(c.status) && (id === undefined || c.checkpointId === id));
}

/** The people whose approval a checkpoint counts (one person counts once). */
export function approvedBy(c: Pick<CheckpointState, 'decisions'>): string[] {
    return [...new Set(c.decisions.filter((d) => d.decision === 'approve').map((d) => d.actorId))];
}

/**
 * Whether `d` may decide the run's open checkpoint now: one of its required roles (escalated ones included), a member
 * of the run's team or Mesh.Admin, never the run's submitter (four-eyes), and not one who already approved it.
 */
export function mayDecideNow(d: Decider, run: RunDoc, c: CheckpointState | undefined = openCheckpoint(run)): boolean {
    if (!c || openCheckpoint(run)?.checkpointId !== c.checkpointId) return false;
    if (run.createdBy === d.id) return false;
    if (!d.roles.some((r) => c.requiredRoles.includes(r))) return false;
    if (!d.roles.includes('Mesh.Admin') && !d.teams.includes(run.metadata.team)) return false;
    return !approvedBy(c).includes(d.id);
}

/** The open checkpoint with an open information request, if any (the run has not ended). */
export function openInfoRequest(run: Pick<RunDoc, 'status' | 'checkpoints'>): CheckpointState | undefined {
    if (isTerminal(run.status)) return undefined;
    return run.checkpoints.find((c) => OPEN.includes(c.status) && c.infoRequest !== undefined);
}

/** Whether `d` may answer an information request on the run: its submitter, or a Developer/DataScientist of its team. */
export function mayAnswer(d: Decider, run: Pick<RunDoc, 'createdBy' | 'metadata'>): boolean {
    return (
        run.createdBy === d.id ||
        (d.roles.some((r) => ANSWERING_ROLES.includes(r)) && d.teams.includes(run.metadata.team))
    );
}

/** The roles that answer information requests of their team's runs (for the stores' query). */
export function answersForTeams(d: Decider): readonly string[] {
    return d.roles.some((r) => ANSWERING_ROLES.includes(r)) ? d.teams : [];
}

/**
 * What the stores index of a run so the filters are queries: the open checkpoint's required roles and who already
 * approved it (`waiting` undefined when the run waits on no decision), and whether an information request is open.
 */
export interface WaitIndex {
    waiting?: { roles: Role[]; approved: string[] };
    infoOpen: boolean;
}

export function waitIndexOf(run: RunDoc): WaitIndex {
    const c = openCheckpoint(run);
    return {
        ...(c ? { waiting: { roles: [...new Set(c.requiredRoles)], approved: approvedBy(c) } } : {}),
        infoOpen: openInfoRequest(run) !== undefined,
    };
}

/** `nextAction.waitingOn` of the status view. */
export interface WaitingOn {
    approvers: { id: string; name?: string }[];
    since: string;
    deadline: string;
    approvals: { have: number; need: number };
    escalated: boolean;
}

/**
 * Who the run waits on: `candidates` are the directory's people holding one of the checkpoint's required roles in the
 * run's team (or Mesh.Admin); those who may decide now are kept, in the directory's order.
 */
export function waitingOnOf(run: RunDoc, candidates: readonly Person[]): WaitingOn | undefined {
    const c = openCheckpoint(run);
    if (!c) return undefined;
    const seen = new Set<string>();
    const approvers = candidates
        .filter((p) => !seen.has(p.id) && seen.add(p.id) && mayDecideNow(p, run, c))
        .map((p) => ({ id: p.id, ...(p.name ? { name: p.name } : {}) }));
    return {
        approvers,
        since: c.openedAt ?? run.updatedAt,
        deadline: c.deadline ?? run.nextAction?.deadline ?? '',
        approvals: { have: approvedBy(c).length, need: c.approvals },
        escalated: c.escalated,
    };
}

/** One item of `GET /pipeline/inbox`. */
export interface InboxItem {
    action: 'decide' | 'answer';
    checkpointId: string;
    orchestrationID: string;
    title?: string;
    team: string;
    riskLevel: RiskLevel;
    stage: Stage;
    position: Position;
    since: string;
    deadline: string | null;
    approvals: { have: number; need: number };
    escalated: boolean;
    requiredRoles: Role[];
    infoRequest?: { by: string; at: string; comment?: string };
}

/**
 * The caller's inbox from the runs the stores found: a `decide` item for every open checkpoint the caller may decide
 * now (since it opened), an `answer` item for every open information request they may answer (since it was asked);
 * oldest first, ties by checkpoint id. Runs that qualify for neither are ignored (the filters are re-checked here).
 */
export function inboxItems(p: Principal, runs: readonly RunDoc[]): InboxItem[] {
    const items: InboxItem[] = [];
    const seen = new Set<string>();
    for (const run of runs) {
        const decide = openCheckpoint(run);
        if (decide && mayDecideNow(p, run, decide) && !seen.has(`decide ${decide.checkpointId}`)) {
            seen.add(`decide ${decide.checkpointId}`);
            items.push(itemOf('decide', run, decide, decide.openedAt ?? run.updatedAt));
        }
        const info = openInfoRequest(run);
        if (info?.infoRequest && mayAnswer(p, run) && !seen.has(`answer ${info.checkpointId}`)) {
            seen.add(`answer ${info.checkpointId}`);
            items.push(itemOf('answer', run, info, info.infoRequest.at));
        }
    }
    return items.sort((a, b) =>
        a.since !== b.since
            ? Date.parse(a.since) - Date.parse(b.since) || (a.since < b.since ? -1 : 1)
            : a.checkpointId < b.checkpointId
              ? -1
              : a.checkpointId > b.checkpointId
                ? 1
                : a.action < b.action
                  ? -1
                  : 1,
    );
}

function itemOf(action: InboxItem['action'], run: RunDoc, c: CheckpointState, since: string): InboxItem {
    return {
        action,
        checkpointId: c.checkpointId,
        orchestrationID: run.id,
        ...(run.metadata.title ? { title: run.metadata.title } : {}),
        team: run.metadata.team,
        riskLevel: run.metadata.riskLevel,
        stage: c.stage,
        position: c.position,
        since,
        deadline: c.deadline,
        approvals: { have: approvedBy(c).length, need: c.approvals },
        escalated: c.escalated,
        requiredRoles: c.requiredRoles,
        ...(c.infoRequest ? { infoRequest: c.infoRequest } : {}),
    };
}
