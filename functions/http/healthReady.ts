import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { corsRoute } from '../../adapters/http/cors';
import { enveloped, Result } from '../../adapters/http/envelope';
import { UnavailableError } from '../../domain/errors';

/** An entity that is never written: reading it proves the durable backend's storage answers. */
const PROBE = new df.EntityId('healthProbe', 'ready');

/**
 * Readiness: ready only when the durable backend answers (its task hub storage), so Kubernetes sends no
 * traffic to a pod that cannot start or advance a run.
 */
export async function healthReady(
    _req: HttpRequest,
    ctx: InvocationContext,
): Promise<Result<{ status: 'ready'; checks: Record<string, 'ok'> }>> {
    try {
        await df.getClient(ctx).readEntityState(PROBE);
    } catch (e: unknown) {
        ctx.warn(`readiness: durable backend did not answer: ${e instanceof Error ? e.message : String(e)}`);
        throw new UnavailableError('The durable backend does not answer.');
    }
    return { data: { status: 'ready', checks: { durableBackend: 'ok' } } };
}

app.http('healthReady', {
    route: 'health/ready',
    authLevel: 'anonymous',
    extraInputs: [df.input.durableClient()],
    ...corsRoute(['GET'], enveloped(healthReady)),
});
