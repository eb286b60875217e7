import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { deps } from '../../adapters/deps';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { reconciledOnRead } from '../../adapters/http/instances';
import { principalOf, runIdParam } from '../../adapters/http/request';
import { readsOwnWords } from '../../domain/privacy';
import { visibleRun } from '../../domain/rbac';
import { statusView } from '../../domain/views';

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
    const history = await Promise.all((await d.audit.latest(id, HISTORY)).map((r) => d.forDisplay(r, view)));
    return { data: statusView(run, history, { maskWords: !own }) };
}

app.http('getPipelineStatus', {
    route: 'pipeline/status/{id}',
    methods: ['GET'],
    extraInputs: [df.input.durableClient()],
    handler: enveloped(getPipelineStatus),
});
