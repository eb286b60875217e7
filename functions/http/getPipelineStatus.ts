import { app, HttpRequest, InvocationContext } from '@azure/functions';

import { deps } from '../../adapters/deps';
import { enveloped, type Result } from '../../adapters/http/envelope';
import { principalOf, runIdParam } from '../../adapters/http/request';
import { readsOwnWords } from '../../domain/privacy';
import { visibleRun } from '../../domain/rbac';
import { statusView } from '../../domain/views';

const HISTORY = 20;

/** GET /pipeline/status/{id}: the run's projection and its latest audit events (no orchestration replay). */
export async function getPipelineStatus(req: HttpRequest, _ctx: InvocationContext): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const id = runIdParam(req);
    const d = deps();
    const run = visibleRun(principal, await d.runs.get(id), id);
    // The run's own team reads its words as typed; other readers (Compliance, other teams' operators) as the policy says.
    const view = readsOwnWords(principal, run) ? { personalData: 'show' as const } : {};
    const history = await Promise.all((await d.audit.latest(id, HISTORY)).map((r) => d.forDisplay(r, view)));
    return { data: statusView(run, history) };
}

app.http('getPipelineStatus', {
    route: 'pipeline/status/{id}',
    methods: ['GET'],
    handler: enveloped(getPipelineStatus),
});
