/** Small helpers every API trigger shares: the caller, path ids, trace context and the durable client. */
import { randomBytes } from 'node:crypto';

import type { HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { ForbiddenError, NotFoundError, ValidationError } from '../../domain/errors';
import type { Principal } from '../../domain/principal';
import { enforceRateLimits } from '../../domain/rateLimit';
import { RUN_ID } from '../../domain/run';
import { scaleConfig } from '../config';
import { deps } from '../deps';

/**
 * The authenticated caller; one without any Mesh app role is FORBIDDEN everywhere. Every authenticated request counts
 * against the caller's and their teams' rate limits (RATE_LIMITED with Retry-After once one is exceeded).
 */
export async function principalOf(req: HttpRequest): Promise<Principal> {
    const d = deps();
    const p = await d.auth.principal(req);
    if (p.roles.length === 0) throw new ForbiddenError('No Mesh role is assigned to you.');
    await enforceRateLimits(d.rateCounters, p, scaleConfig().rateLimits, d.now().getTime());
    return p;
}

/** A run id from the path: anything but our id charset (a traversal, an injection) is a validation error. */
export function runIdParam(req: HttpRequest, name = 'id'): string {
    const id = req.params[name] ?? '';
    if (!RUN_ID.test(id))
        throw new ValidationError([{ path: `/${name}`, message: 'must be a run id (1–64 of A–Z a–z 0–9 _ -)' }]);
    return id;
}

/** The W3C traceparent of the request if valid, else a new trace, so every engine call joins one trace. */
export function traceparentOf(req: HttpRequest): string {
    const tp = req.headers.get('traceparent');
    if (tp && /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(tp) && !/^00-0{32}-/.test(tp)) return tp;
    return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

export function durableClient(ctx: InvocationContext): df.DurableClient {
    return df.getClient(ctx);
}

/** The orchestration of a run, or undefined when the durable backend has no such instance. */
export async function orchestrationOf(
    ctx: InvocationContext,
    runId: string,
): Promise<df.DurableOrchestrationStatus | undefined> {
    try {
        return await durableClient(ctx).getStatus(runId, { showInput: false });
    } catch (e: unknown) {
        if (e instanceof Error && /404/.test(e.message)) return undefined;
        throw e;
    }
}

export function notFound(id: string): NotFoundError {
    return new NotFoundError(`Run '${id}' was not found.`);
}

/** Absolute URL of a path on this host (for statusUrl / logsUrl / Location). */
export function urlFor(req: HttpRequest, path: string): string {
    return new URL(path, req.url).href;
}
