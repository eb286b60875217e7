/**
 * Who may do what (SPEC's endpoint table). A caller who may not see a run gets NOT_FOUND, never FORBIDDEN,
 * so a run's existence does not leak across teams.
 */
import { SYSTEM_CHAINS } from './audit';
import { ForbiddenError, NotFoundError } from './errors';
import { type Principal, type Role, seesAllTeams } from './principal';
import { type CheckpointState, type RunDoc, runIdOfCheckpoint } from './run';

const SUBMITTERS: readonly Role[] = ['Mesh.Developer', 'Mesh.DataScientist', 'Mesh.Operator', 'Mesh.Admin'];
const OPERATORS: readonly Role[] = ['Mesh.Operator', 'Mesh.Admin'];
const POLICY_READERS: readonly Role[] = ['Mesh.Compliance', 'Mesh.Admin', 'Mesh.Operator'];
const POLICY_WRITERS: readonly Role[] = ['Mesh.Compliance', 'Mesh.Admin'];

function has(p: Principal, roles: readonly Role[]): boolean {
    return p.roles.some((r) => roles.includes(r));
}

/** Submit a run for `team`: a submitting role, and membership of that team unless Operator or Admin. */
export function assertCanSubmit(p: Principal, team: string): void {
    if (!has(p, SUBMITTERS))
        throw new ForbiddenError(
            'Submitting runs needs Mesh.Developer, Mesh.DataScientist, Mesh.Operator or Mesh.Admin.',
        );
    if (!has(p, OPERATORS) && !p.teams.includes(team))
        throw new ForbiddenError(`You are not a member of team '${team}'.`);
}

export function canSee(p: Principal, run: Pick<RunDoc, 'metadata'>): boolean {
    return seesAllTeams(p) || p.teams.includes(run.metadata.team);
}

/** The run, if the caller may see it; NOT_FOUND otherwise (same answer as a run that does not exist). */
export function visibleRun<T extends Pick<RunDoc, 'metadata' | 'id'>>(p: Principal, run: T | undefined, id: string): T {
    if (!run || !canSee(p, run)) throw new NotFoundError(`Run '${id}' was not found.`);
    return run;
}

/**
 * The run a checkpoint belongs to and the checkpoint, as `p` may see them: NOT_FOUND for an id that names no
 * checkpoint, a run the caller cannot see (as for one that does not exist) or a checkpoint the run does not have.
 * `run` is what the store holds under the checkpoint's run id.
 */
export function visibleCheckpoint(
    p: Principal,
    run: RunDoc | undefined,
    checkpointId: string,
): { run: RunDoc; checkpoint: CheckpointState } {
    const runId = runIdOfCheckpoint(checkpointId);
    if (runId === undefined || (run !== undefined && run.id !== runId))
        throw new NotFoundError(`Checkpoint '${checkpointId}' was not found.`);
    const visible = visibleRun(p, run, runId);
    const checkpoint = visible.checkpoints.find((c) => c.checkpointId === checkpointId);
    if (!checkpoint) throw new NotFoundError(`Checkpoint '${checkpointId}' was not found.`);
    return { run: visible, checkpoint };
}

/**
 * The audit trail behind `id`: a run's (as `visibleRun`), or a system chain (policy changes, retention purges), which
 * Compliance and Admin read; anyone else gets NOT_FOUND, as for a run that does not exist.
 */
export async function assertCanReadTrail(
    p: Principal,
    id: string,
    runOf: (id: string) => Promise<Pick<RunDoc, 'metadata' | 'id'> | undefined>,
): Promise<void> {
    if (SYSTEM_CHAINS.includes(id)) {
        if (!has(p, POLICY_WRITERS)) throw new NotFoundError(`Run '${id}' was not found.`);
        return;
    }
    visibleRun(p, await runOf(id), id);
}

/** Pause and abort: Operator or Admin; the submitter may abort (not pause) their own run. */
export function assertCanStop(p: Principal, run: RunDoc, action: 'pause' | 'abort'): void {
    if (has(p, OPERATORS)) return;
    if (action === 'abort' && run.createdBy === p.id) return;
    throw new ForbiddenError(
        action === 'abort'
            ? "Aborting needs Mesh.Operator or Mesh.Admin, or being the run's submitter."
            : 'Pausing needs Mesh.Operator or Mesh.Admin.',
    );
}

export function assertCanResume(p: Principal): void {
    if (!has(p, OPERATORS)) throw new ForbiddenError('Resuming needs Mesh.Operator or Mesh.Admin.');
}

/**
 * Deciding a checkpoint: one of its required roles, a member of the run's team (or Admin), and never the
 * run's submitter (four-eyes).
 */
export function assertCanDecide(p: Principal, run: RunDoc, checkpoint: Pick<CheckpointState, 'requiredRoles'>): void {
    if (run.createdBy === p.id)
        throw new ForbiddenError('The submitter of a run cannot decide its checkpoints (four-eyes).');
    if (!has(p, checkpoint.requiredRoles))
        throw new ForbiddenError(`Deciding this checkpoint needs one of: ${checkpoint.requiredRoles.join(', ')}.`);
    if (!p.roles.includes('Mesh.Admin') && !p.teams.includes(run.metadata.team))
        throw new ForbiddenError(`Approvers must belong to team '${run.metadata.team}'.`);
}

/** Who answers info requests on a team's runs besides the submitter: the team's members who submit work. */
const ANSWERERS: readonly Role[] = ['Mesh.Developer', 'Mesh.DataScientist'];

/**
 * Answering an approver's request for information: the run's submitter, or a member of its team who submits work
 * (Mesh.Developer, Mesh.DataScientist). Those who see the run otherwise (Compliance, Operator, Admin, approvers
 * of the team) are FORBIDDEN: the answer speaks for the run's authors.
 */
export function assertCanAnswer(p: Principal, run: Pick<RunDoc, 'createdBy' | 'metadata'>): void {
    if (run.createdBy === p.id) return;
    if (p.teams.includes(run.metadata.team) && has(p, ANSWERERS)) return;
    throw new ForbiddenError(
        `Only the run's submitter or a Mesh.Developer or Mesh.DataScientist of team '${run.metadata.team}' can answer.`,
    );
}

export function assertCanReadPolicy(p: Principal): void {
    if (!has(p, POLICY_READERS))
        throw new ForbiddenError('Reading the checkpoint policy needs Mesh.Compliance, Mesh.Admin or Mesh.Operator.');
}

export function assertCanWritePolicy(p: Principal): void {
    if (!has(p, POLICY_WRITERS))
        throw new ForbiddenError('Changing the checkpoint policy needs Mesh.Compliance or Mesh.Admin.');
}

/** Listing: what the caller may see, as a filter. */
export function visibleTeams(p: Principal): string[] | undefined {
    return seesAllTeams(p) ? undefined : p.teams;
}
