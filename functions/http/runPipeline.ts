import { randomUUID } from 'node:crypto';

import { app, HttpRequest, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { type Deps, deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { orchestrationOf, principalOf, traceparentOf, urlFor } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { activeTraceparent } from '../../adapters/telemetry/tracing';
import { UnavailableError, ValidationError } from '../../domain/errors';
import { recordStateChange } from '../../domain/steps';
import { type SubmitRequest, submitRun } from '../../domain/submit';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/**
 * POST /pipeline/run: submits a workflow. The run is stored `Queued` and put on the admission queue, so a burst is
 * answered at once and nothing is dropped. An Idempotency-Key makes retries return the same run.
 */
export async function runPipeline(req: HttpRequest, ctx: InvocationContext, call: CallInfo): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const body = await parseBody<SubmitRequest>(req, 'run-request');
    const key = req.headers.get('idempotency-key') ?? undefined;
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
        throw new ValidationError([
            { path: '/headers/Idempotency-Key', message: 'must be 1–128 visible ASCII characters' },
        ]);
    const d = deps();
    const { run, created } = await submitRun(d, principal, body, {
        runId: `run-${randomUUID()}`,
        correlationID: call.correlationID,
        // Traced: the run's trace continues from this request's span (its trace id is the incoming one).
        traceparent: activeTraceparent() ?? traceparentOf(req),
        idempotencyKey: key,
        at: d.now().toISOString(),
    });
    // The admitter starts the workflow once a slot is free (functions/serviceBus/admitRun.ts). A retry after a crash
    // between creating the run and enqueueing it enqueues it now (the admitter ignores a second message).
    if (created || (run.status === 'Queued' && !(await orchestrationOf(ctx, run.id))))
        await enqueueOrFail(run.id, run.correlationID, d);
    const statusUrl = urlFor(req, `/pipeline/status/${run.id}`);
    return {
        status: 202,
        headers: { location: statusUrl },
        data: {
            orchestrationID: run.id,
            status: run.status,
            statusUrl,
            logsUrl: urlFor(req, `/pipeline/logs/${run.id}`),
        },
        message: created ? 'accepted' : 'accepted (idempotent replay)',
    };
}

/**
 * Puts the run on the admission queue. If the queue cannot take it, the run is recorded `Failed` (never left `Queued`
 * with no message to admit it) and the caller gets 503 UNAVAILABLE: a retry with a new Idempotency-Key submits again.
 */
async function enqueueOrFail(runId: string, correlationID: string, d: Deps): Promise<void> {
    try {
        await d.admission.enqueue({ runId, correlationID });
    } catch (e: unknown) {
        const at = d.now().toISOString();
        const message = 'The admission queue did not accept the run.';
        await recordStateChange(d.steps, {
            runId,
            eventId: `${runId}/not-queued`,
            type: 'pipeline.failed',
            at,
            actor: 'system',
            correlationID,
            reason: message,
            details: { code: 'UNAVAILABLE' },
            projection: { status: 'Failed', error: { code: 'UNAVAILABLE', message } },
        });
        throw new UnavailableError(message, { runId, cause: e instanceof Error ? e.name : 'unknown' });
    }
}

app.http('runPipeline', {
    route: 'pipeline/run',
    extraInputs: [df.input.durableClient()],
    ...corsRoute(['POST'], enveloped(runPipeline)),
});
