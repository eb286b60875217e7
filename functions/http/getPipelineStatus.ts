import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { reconciledOnRead } from '../../adapters/http/instances';
import { principalOf, runIdParam } from '../../adapters/http/request';
import type { Directory, Person } from '../../domain/ports';
import { readsOwnWords } from '../../domain/privacy';
import { visibleRun } from '../../domain/rbac';
import type { RunDoc } from '../../domain/run';
import { statusView } from '../../domain/views';
import { openCheckpoint, type WaitingOn, waitingOnOf } from '../../domain/waiting';

const HISTORY = 20;

/**
 * GET /pipeline/status/{id}: the run's projection and its latest audit events (no orchestration replay). A live run
 * whose workflow ended outside the API is reconciled first (its instance checked at most every 5 s).
 */
export async function getPipelineStatus(
    req: HttpRequest,
    ctx: InvocationContext,
    call: CallInfo,
): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const id = runIdParam(req);
    const d = deps();
    const run = await reconciledOnRead(
        ctx,
        d.steps,
        visibleRun(principal, await d.runs.get(id), id),
        call.correlationID,
    );
    // The run's own team reads its words as typed; other readers (Compliance, other teams' operators) as the policy says.
    const own = readsOwnWords(principal, run);
    const view = own ? { personalData: 'show' as const } : {};
    const [history, waitingOn] = await Promise.all([
        Promise.all((await d.audit.latest(id, HISTORY)).map((r) => d.forDisplay(r, view))),
        waitingOnNow(ctx, d.directory, run, call.correlationID),
    ]);
    return { data: statusView(run, history, { maskWords: !own, ...(waitingOn ? { waitingOn } : {}) }) };
}

/**
 * `nextAction.waitingOn`, when the run waits on a decision: the directory's people who may decide now. Both directories
 * cache (the JSON file until it changes, Entra group members for a TTL), so a status read costs no lookup in the common
 * case. A directory that fails leaves the approvers empty (logged) rather than failing the status read.
 */
async function waitingOnNow(
    ctx: InvocationContext,
    directory: Directory,
    run: RunDoc,
    correlationID: string,
): Promise<WaitingOn | undefined> {
    const c = openCheckpoint(run);
    if (!c) return undefined;
    let candidates: Person[] = [];
    try {
        candidates = await directory.peopleWithRoles(c.requiredRoles, run.metadata.team);
    } catch (e: unknown) {
        ctx.warn(`[${correlationID}] the directory failed; waitingOn lists no approvers: ${(e as Error).message}`);
    }
    return waitingOnOf(run, candidates);
}

app.http('getPipelineStatus', {
    route: 'pipeline/status/{id}',
    extraInputs: [df.input.durableClient()],
    ...corsRoute(['GET'], enveloped(getPipelineStatus)),
});
