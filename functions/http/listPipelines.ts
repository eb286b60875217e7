import { app, HttpRequest, InvocationContext } from '@azure/functions';

import { deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { enveloped, type Result } from '../../adapters/http/envelope';
import { principalOf } from '../../adapters/http/request';
import { ValidationError } from '../../domain/errors';
import { RISK_LEVELS, type RiskLevel, RUN_STATUSES, type RunStatus, type Stage, STAGES } from '../../domain/pipeline';
import type { Directory, RunFilter } from '../../domain/ports';
import type { Principal } from '../../domain/principal';
import { visibleTeams } from '../../domain/rbac';
import { summaryView } from '../../domain/views';
import type { Decider } from '../../domain/waiting';

/**
 * GET /pipeline: the runs the caller may see, filtered by status, team, stage, submitter, time, text, risk level and
 * whom they wait on (`waitingFor`), with `total`, the count of every run the filters match (all pages).
 */
export async function listPipelines(req: HttpRequest, _ctx: InvocationContext): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const q = req.query;
    const errors: { path: string; message: string }[] = [];
    const statuses = (q.get('status') ?? '').split(',').filter(Boolean);
    for (const s of statuses)
        if (!(RUN_STATUSES as readonly string[]).includes(s))
            errors.push({ path: '/query/status', message: `'${s}' is not a status` });
    const stage = q.get('stage');
    if (stage !== null && !(STAGES as readonly string[]).includes(stage))
        errors.push({ path: '/query/stage', message: `'${stage}' is not a stage` });
    const since = q.get('since');
    if (since !== null && !isRealDateTime(since))
        errors.push({
            path: '/query/since',
            message: 'must be an ISO 8601 date-time (2026-02-01T00:00:00Z) or date (2026-02-01) that exists',
        });
    const limit = Number(q.get('limit') ?? 50);
    if (!Number.isInteger(limit) || limit < 1 || limit > 200)
        errors.push({ path: '/query/limit', message: 'must be an integer from 1 to 200' });
    const text = q.get('q');
    if (text !== null && text.length > 200)
        errors.push({ path: '/query/q', message: 'must be at most 200 characters' });
    const risks = (q.get('riskLevel') ?? '').split(',').filter(Boolean);
    for (const r of risks)
        if (!(RISK_LEVELS as readonly string[]).includes(r))
            errors.push({
                path: '/query/riskLevel',
                message: `'${r}' is not a risk level (${RISK_LEVELS.join(', ')})`,
            });
    const waitingFor = q.get('waitingFor');
    if (waitingFor !== null && (waitingFor.trim() === '' || waitingFor.length > 256))
        errors.push({ path: '/query/waitingFor', message: 'must be a user id of 1 to 256 characters' });
    if (errors.length) throw new ValidationError(errors);
    const d = deps();

    const filter: RunFilter = {
        ...(statuses.length ? { status: statuses as RunStatus[] } : {}),
        ...(visibleTeams(principal) ? { teams: visibleTeams(principal) } : {}),
        ...(q.get('team') ? { team: q.get('team')! } : {}),
        ...(stage ? { stage: stage as Stage } : {}),
        ...(q.get('createdBy') ? { createdBy: q.get('createdBy')! } : {}),
        ...(since ? { since: new Date(since).toISOString() } : {}),
        ...(text ? { q: text } : {}),
        ...(risks.length ? { riskLevel: risks as RiskLevel[] } : {}),
        ...(waitingFor !== null ? { waitingFor: await deciderOf(principal, waitingFor, d.directory) } : {}),
    };
    const [page, total] = await Promise.all([
        d.runs.list(filter, limit, q.get('continuationToken') ?? undefined),
        d.runs.count(filter),
    ]);
    return {
        data: {
            total,
            items: page.items.map(summaryView),
            ...(page.continuationToken ? { continuationToken: page.continuationToken } : {}),
        },
    };
}

/**
 * The person `waitingFor` names, as the stores ask about them: the caller as signed in (their token's roles and teams),
 * anyone else as the directory knows them; an unknown id decides nothing (no roles), so nothing matches.
 */
async function deciderOf(principal: Principal, id: string, directory: Directory): Promise<Decider> {
    if (id === principal.id) return { id, roles: principal.roles, teams: principal.teams };
    const person = await directory.person(id);
    return person ? { id, roles: person.roles, teams: person.teams } : { id, roles: [], teams: [] };
}

/**
 * Whether `s` is an RFC 3339 date-time (offset required) or a full date, naming a real instant: `Date.parse` alone
 * accepts words and rolls 2026-02-30 over to March.
 */
function isRealDateTime(s: string): boolean {
    const m =
        /^(\d{4})-(\d{2})-(\d{2})(?:[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2})))?$/.exec(s);
    if (!m) return false;
    const [y, mo, d, h, mi, sec, oh, om] = m.slice(1).map((v) => Number(v ?? 0));
    const day = new Date(Date.UTC(y!, mo! - 1, d));
    const dateOk = day.getUTCFullYear() === y && day.getUTCMonth() === mo! - 1 && day.getUTCDate() === d;
    return dateOk && h! <= 23 && mi! <= 59 && sec! <= 59 && oh! <= 23 && om! <= 59 && !Number.isNaN(Date.parse(s));
}

app.http('listPipelines', { route: 'pipeline', ...corsRoute(['GET'], enveloped(listPipelines)) });
