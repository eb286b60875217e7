import { randomUUID } from 'node:crypto';

import { app, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';

import { deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { enveloped, type Result, toHttpResponse } from '../../adapters/http/envelope';
import { principalOf, runIdParam } from '../../adapters/http/request';
import type { AuditRecord } from '../../domain/audit';
import { correlationIdFrom } from '../../domain/correlation';
import { ValidationError } from '../../domain/errors';
import { assertCanReadTrail } from '../../domain/rbac';

const MAX_PAGE = 1000;

/**
 * GET /pipeline/logs/{id}: the audit timeline, re-verified on every read against the chain keys and the run's anchored
 * head (`data.chain` says whether the chain holds and where it breaks). `_policies` and `_retention` are the system
 * chains (Compliance, Admin). Paged with continuationToken; `?format=ndjson` streams every record, then one line
 * `{"chain": {...}}` with the verdict. `format` is `json` (the default) or `ndjson`.
 */
export async function getPipelineLogs(req: HttpRequest, _ctx: InvocationContext): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    const format = req.query.get('format');
    if (format !== null && format !== 'json')
        throw new ValidationError([{ path: '/query/format', message: "must be 'json' or 'ndjson'" }]);
    const id = runIdParam(req);
    const d = deps();
    await assertCanReadTrail(principal, id, (runId) => d.runs.get(runId));
    const limit = pageSize(req.query.get('limit'));
    const all: AuditRecord[] = [];
    for await (const r of d.audit.all(id)) all.push(r);
    const chain = await d.verifyTrail(id, all);
    const page = await d.audit.list(id, limit, req.query.get('continuationToken') ?? undefined);
    return {
        data: {
            events: await Promise.all(page.items.map((r) => d.forDisplay(r))),
            chain,
            ...(page.continuationToken ? { continuationToken: page.continuationToken } : {}),
        },
    };
}

/** The NDJSON variant: errors found before the stream starts are still answered in the envelope. */
async function logsHandler(req: HttpRequest, ctx: InvocationContext): Promise<HttpResponseInit> {
    const format = req.query.get('format');
    if (format !== 'ndjson') return enveloped(getPipelineLogs)(req, ctx);
    const correlationID = correlationIdFrom(req.headers, randomUUID);
    try {
        const principal = await principalOf(req);
        const id = runIdParam(req);
        const d = deps();
        await assertCanReadTrail(principal, id, (runId) => d.runs.get(runId));
        const records = d.audit.all(id)[Symbol.asyncIterator]();
        // Verified as streamed: the stored form is kept (not what forDisplay opens) and checked after the last record.
        const seen: AuditRecord[] = [];
        const encoder = new TextEncoder();
        const body = new ReadableStream<Uint8Array>({
            async pull(controller) {
                const next = await records.next();
                if (next.done) {
                    const chain = await d.verifyTrail(id, seen);
                    controller.enqueue(encoder.encode(JSON.stringify({ chain }) + '\n'));
                    controller.close();
                    return;
                }
                seen.push(next.value);
                controller.enqueue(encoder.encode(JSON.stringify(await d.forDisplay(next.value)) + '\n'));
            },
        });
        return {
            status: 200,
            headers: { 'content-type': 'application/x-ndjson', 'x-correlation-id': correlationID },
            body,
        };
    } catch (e: unknown) {
        return toHttpResponse(e, ctx, correlationID);
    }
}

function pageSize(raw: string | null): number {
    if (raw === null) return 100;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE)
        throw new ValidationError([{ path: '/query/limit', message: `must be an integer from 1 to ${MAX_PAGE}` }]);
    return n;
}

app.http('getPipelineLogs', { route: 'pipeline/logs/{id}', ...corsRoute(['GET'], logsHandler) });
