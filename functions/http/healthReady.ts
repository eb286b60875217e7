import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { type Deps, deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { enveloped, Result } from '../../adapters/http/envelope';
import { UnavailableError } from '../../domain/errors';

/** An entity that is never written: reading it proves the durable backend's storage answers. */
const PROBE = new df.EntityId('healthProbe', 'ready');

/** What readiness checks, in the order a failure names them. */
export type ReadinessCheck = 'durableBackend' | 'store';
export type ReadinessChecks = Record<ReadinessCheck, 'ok' | 'failed'>;

/** The two things a ready pod needs, as the handler reaches them (injectable for tests). */
export interface ReadinessProbes {
    /** Reads a never-written entity through the durable client: the task hub's storage answers. */
    durableBackend(): Promise<unknown>;
    /** A cheap read of the run store (`RunStore.ping`): the stores every API call reads answer. */
    store(): Promise<unknown>;
}

/** The probes of this instance: the durable client bound to the request, the run store of `deps()`. */
export function readinessProbes(ctx: InvocationContext, d: Pick<Deps, 'runs'>): ReadinessProbes {
    return {
        durableBackend: () => df.getClient(ctx).readEntityState(PROBE),
        store: () => d.runs.ping(),
    };
}

/**
 * Readiness: ready only when both the durable backend (its task hub storage) and the run store answer, so
 * Kubernetes sends no traffic to a pod that cannot start or advance a run, or read one. Both checks run at once;
 * a failure is a 503 `UNAVAILABLE` whose message names the failing check(s), and each failure is logged.
 */
export async function healthReady(
    _req: HttpRequest,
    ctx: InvocationContext,
    probes: ReadinessProbes,
): Promise<Result<{ status: 'ready'; checks: ReadinessChecks }>> {
    const names: ReadinessCheck[] = ['durableBackend', 'store'];
    const outcomes = await Promise.allSettled(names.map((name) => probes[name]()));
    const checks = {} as ReadinessChecks;
    const failed: ReadinessCheck[] = [];
    outcomes.forEach((outcome, i) => {
        const name = names[i]!;
        checks[name] = outcome.status === 'fulfilled' ? 'ok' : 'failed';
        if (outcome.status === 'rejected') {
            failed.push(name);
            const e: unknown = outcome.reason;
            ctx.warn(`readiness: ${name} did not answer: ${e instanceof Error ? e.message : String(e)}`);
        }
    });
    if (failed.length) throw new UnavailableError(`Not ready: ${failed.join(', ')} did not answer.`, { checks });
    return { data: { status: 'ready', checks } };
}

app.http('healthReady', {
    route: 'health/ready',
    authLevel: 'anonymous',
    extraInputs: [df.input.durableClient()],
    ...corsRoute(
        ['GET'],
        enveloped((req, ctx) => healthReady(req, ctx, readinessProbes(ctx, deps()))),
    ),
});
