import { app, HttpRequest, InvocationContext } from '@azure/functions';

import { deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { enveloped, type Result } from '../../adapters/http/envelope';
import { principalOf } from '../../adapters/http/request';
import type { Page, RunFilter, RunStore } from '../../domain/ports';
import { visibleTeams } from '../../domain/rbac';
import type { RunDoc } from '../../domain/run';
import { inboxItems } from '../../domain/waiting';

/** At most this many runs are read per kind of item (pages of 200): an inbox beyond it is a queue to triage, not read. */
export const INBOX_MAX_RUNS = 2000;

/**
 * GET /pipeline/inbox: what waits on the caller, oldest first. `decide`: every open checkpoint the caller may decide now
 * (a required role, the run's team or Mesh.Admin, not the submitter, not already approved); `answer`: every open
 * information request on a run the caller submitted, or of their team when they are a Developer or DataScientist. Both
 * are store queries (`waitingFor`, `answerableBy`) within the teams the caller may see, so another team's runs never
 * appear.
 */
export async function pipelineInbox(req: HttpRequest, _ctx: InvocationContext): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const runs = deps().runs;
    const teams = visibleTeams(principal);
    const visible: RunFilter = teams ? { teams } : {};
    const me = { id: principal.id, roles: principal.roles, teams: principal.teams };
    const [decide, answer] = await Promise.all([
        allRuns(runs, { ...visible, waitingFor: me }),
        allRuns(runs, { ...visible, answerableBy: me }),
    ]);
    return { data: { items: inboxItems(principal, [...decide, ...answer]) } };
}

async function allRuns(runs: RunStore, filter: RunFilter): Promise<RunDoc[]> {
    const found: RunDoc[] = [];
    let token: string | undefined;
    do {
        const page: Page<RunDoc> = await runs.list(filter, 200, token);
        found.push(...page.items);
        token = page.continuationToken;
    } while (token !== undefined && found.length < INBOX_MAX_RUNS);
    return found;
}

// A literal route: more specific than `pipeline/status/{id}` and the other parameter routes, here and on Azure.
app.http('pipelineInbox', { route: 'pipeline/inbox', ...corsRoute(['GET'], enveloped(pipelineInbox)) });
