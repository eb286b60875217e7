import { randomUUID } from 'node:crypto';

import { app, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';

import { deps } from '../../adapters/deps';
import { corsRoute } from '../../adapters/http/cors';
import { toHttpResponse } from '../../adapters/http/envelope';
import { notFound, principalOf } from '../../adapters/http/request';
import { correlationIdFrom } from '../../domain/correlation';
import { ValidationError } from '../../domain/errors';
import { canSee } from '../../domain/rbac';
import { RUN_ID } from '../../domain/run';
import { summaryView } from '../../domain/views';

const POLL_MS = 250;
const HEARTBEAT_MS = 15_000;

app.setup({ enableHttpStream: true });

/**
 * GET /pipeline/events: Server-Sent Events of the status changes the caller may see (optionally one run's).
 * Reads the store's change cursor, so it works the same on every instance behind a load balancer; the
 * event id is that cursor, so a client reconnecting with Last-Event-ID misses nothing.
 */
export async function pipelineEvents(req: HttpRequest, ctx: InvocationContext): Promise<HttpResponseInit> {
    const correlationID = correlationIdFrom(req.headers, randomUUID);
    try {
        const principal = await principalOf(req);
        const only = req.query.get('orchestrationID');
        if (only !== null && !RUN_ID.test(only))
            throw new ValidationError([{ path: '/query/orchestrationID', message: 'must be a run id' }]);
        const { runs } = deps();
        // One run's stream: an unknown run, or one the caller may not see (not told apart), is 404 before streaming.
        if (only !== null) {
            const run = await runs.get(only);
            if (!run || !canSee(principal, run)) throw notFound(only);
        }
        const resumeFrom = req.headers.get('last-event-id') ?? undefined;
        // A new subscriber starts at the current head: walk the cursor to it without sending the past.
        let cursor = resumeFrom;
        if (cursor === undefined) {
            for (;;) {
                const page = await runs.changesSince(cursor, 500);
                if (!page.runs.length) break;
                cursor = page.cursor;
            }
        }
        const encoder = new TextEncoder();
        let closed = false;
        let lastWrite = Date.now();
        const body = new ReadableStream<Uint8Array>({
            start(controller) {
                controller.enqueue(encoder.encode(`retry: 2000\n: connected ${correlationID}\n\n`));
            },
            async pull(controller) {
                while (!closed) {
                    const page = await runs.changesSince(cursor, 200);
                    if (page.cursor) cursor = page.cursor;
                    const visible = page.runs.filter((r) => canSee(principal, r) && (only === null || r.id === only));
                    if (visible.length) {
                        // The page's cursor goes on its last event only: a client's Last-Event-ID keeps the last id it
                        // saw, and one resuming mid-page gets the page again (status snapshots: harmless to repeat).
                        const text = visible
                            .map((r, i) => {
                                const id = i === visible.length - 1 ? `id: ${cursor}\n` : '';
                                return `${id}event: status\ndata: ${JSON.stringify(summaryView(r))}\n\n`;
                            })
                            .join('');
                        controller.enqueue(encoder.encode(text));
                        lastWrite = Date.now();
                        return;
                    }
                    if (page.runs.length) continue; // others' changes: keep reading
                    if (Date.now() - lastWrite > HEARTBEAT_MS) {
                        controller.enqueue(encoder.encode(': keep-alive\n\n'));
                        lastWrite = Date.now();
                        return;
                    }
                    await new Promise((r) => setTimeout(r, POLL_MS));
                }
            },
            cancel() {
                closed = true;
            },
        });
        return {
            status: 200,
            headers: {
                'content-type': 'text/event-stream',
                'cache-control': 'no-cache',
                'x-correlation-id': correlationID,
                'x-accel-buffering': 'no',
            },
            body,
        };
    } catch (e: unknown) {
        return toHttpResponse(e, ctx, correlationID);
    }
}

app.http('pipelineEvents', { route: 'pipeline/events', ...corsRoute(['GET'], pipelineEvents) });
