import { app, HttpRequest, InvocationContext } from '@azure/functions';

import { deps } from '../../adapters/deps';
import { enveloped, type Result } from '../../adapters/http/envelope';
import { principalOf } from '../../adapters/http/request';
import { ValidationError } from '../../domain/errors';
import { RUN_STATUSES, type RunStatus, type Stage, STAGES } from '../../domain/pipeline';
import type { RunFilter } from '../../domain/ports';
import { visibleTeams } from '../../domain/rbac';
import { summaryView } from '../../domain/views';

/** GET /pipeline: the runs the caller may see, filtered by status, team, stage, submitter, time and text. */
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
    if (errors.length) throw new ValidationError(errors);

    const filter: RunFilter = {
        ...(statuses.length ? { status: statuses as RunStatus[] } : {}),
        ...(visibleTeams(principal) ? { teams: visibleTeams(principal) } : {}),
        ...(q.get('team') ? { team: q.get('team')! } : {}),
        ...(stage ? { stage: stage as Stage } : {}),
        ...(q.get('createdBy') ? { createdBy: q.get('createdBy')! } : {}),
        ...(since ? { since: new Date(since).toISOString() } : {}),
        ...(text ? { q: text } : {}),
    };
    const page = await deps().runs.list(filter, limit, q.get('continuationToken') ?? undefined);
    return {
        data: {
            items: page.items.map(summaryView),
            ...(page.continuationToken ? { continuationToken: page.continuationToken } : {}),
        },
    };
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

app.http('listPipelines', { route: 'pipeline', methods: ['GET'], handler: enveloped(listPipelines) });
