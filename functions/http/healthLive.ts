import { app, HttpRequest, InvocationContext } from '@azure/functions';

import { corsRoute } from '../../adapters/http/cors';
import { enveloped, Result } from '../../adapters/http/envelope';

/** Liveness: the process answers HTTP. Kubernetes restarts the pod when this stops answering. */
export async function healthLive(_req: HttpRequest, _ctx: InvocationContext): Promise<Result<{ status: 'live' }>> {
    return Promise.resolve({ data: { status: 'live' } });
}

app.http('healthLive', {
    route: 'health/live',
    authLevel: 'anonymous',
    ...corsRoute(['GET'], enveloped(healthLive)),
});
