import { randomUUID } from 'node:crypto';

import { app, HttpRequest, type HttpResponseInit, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { type Deps, deps } from '../../adapters/deps';
import { confirmPage, decidedPage, errorPage, readLinkComment } from '../../adapters/http/approvalPages';
import { observed } from '../../adapters/http/envelope';
import { assertInstanceLive } from '../../adapters/http/instances';
import { durableClient } from '../../adapters/http/request';
import { decisionSpan } from '../../adapters/telemetry/tracing';
import { correlationIdFrom } from '../../domain/correlation';
import { attestedEvent } from '../../domain/decide';
import { decideByLink, reviewLink } from '../../domain/links';

export type ApprovalLinkDeps = Pick<Deps, 'links' | 'linkUses' | 'runs' | 'now' | 'decisionSeals' | 'steps'>;

/**
 * GET|HEAD /approvals/{token}: the confirm page of a signed approval link; changes nothing (mail scanners pre-fetch
 * links). POST: records the decision the link was issued for, as its approver, once. Answers are HTML pages, errors
 * included (SPEC: not enveloped).
 */
export async function approvalLink(
    req: HttpRequest,
    ctx: InvocationContext,
    d: ApprovalLinkDeps,
): Promise<HttpResponseInit> {
    const correlationID = correlationIdFrom(req.headers, randomUUID);
    try {
        const claims = await d.links.verify(req.params.token ?? '');
        if (req.method !== 'POST') return confirmPage(await reviewLink(d, claims), correlationID);
        const comment = await readLinkComment(req);
        // Before the link is used up: a workflow that ended outside the API is reconciled and the link answers CONFLICT.
        const target = await d.runs.get(claims.run);
        if (target) await assertInstanceLive(ctx, d.steps, target, correlationID, 'decide');
        const outcome = await decideByLink(d, claims, comment, correlationID);
        try {
            await decisionSpan(outcome.run, outcome.event.decision, 'link', async () => {
                const event = await attestedEvent(d.decisionSeals, outcome, d.now());
                await durableClient(ctx).raiseEvent(outcome.run.id, outcome.eventName, event);
            });
        } catch (e: unknown) {
            ctx.error(`[${correlationID}] link ${claims.jti} was used but its decision was not delivered`);
            throw e;
        }
        return decidedPage(outcome, claims, correlationID);
    } catch (e: unknown) {
        return errorPage(e, ctx, correlationID);
    }
}

app.http('approvalLink', {
    route: 'approvals/{token}',
    methods: ['GET', 'HEAD', 'POST'],
    authLevel: 'anonymous',
    extraInputs: [df.input.durableClient()],
    handler: observed((req, ctx) => approvalLink(req, ctx, deps())),
});
