/**
 * notifyOnEvent: the notification fan-out (issue 4) as an Event Grid subscriber. On Azure it is a subscription of
 * the mesh topic; on the embedded host every eventGridTrigger function receives every event of the local topic. It
 * handles checkpoint.opened/escalated (approval requests with signed links) and checkpoint.expired/pipeline.failed
 * (the submitter is told); other events are ignored. A throw makes Event Grid deliver the event again; what was
 * already sent for it is recorded, so only what is missing goes out then.
 */
import { app, InvocationContext } from '@azure/functions';
import { SpanKind } from '@opentelemetry/api';

import { type Deps, deps } from '../../adapters/deps';
import { contextOf, inSpan, tracingEnabled } from '../../adapters/telemetry/tracing';
import { type NotifiableEvent, notifyForEvent } from '../../domain/notify';

export async function notifyOnEvent(event: unknown, ctx: InvocationContext, d: Pick<Deps, 'notify'>): Promise<void> {
    const e = event as Partial<NotifiableEvent> | null;
    if (typeof e?.id !== 'string' || typeof e.type !== 'string') {
        ctx.warn('notifyOnEvent: an event without id or type; ignored.');
        return;
    }
    // In the run's trace when spans are exported (one store read for its trace context).
    const runId = e.data?.orchestrationID;
    const traceparent = tracingEnabled() && runId ? (await d.notify.runs.get(runId))?.traceparent : undefined;
    const summary = await inSpan(
        `notify ${e.type}`,
        {
            kind: SpanKind.CONSUMER,
            parent: contextOf(traceparent),
            attributes: { 'mesh.event_type': e.type, ...(runId ? { 'mesh.run_id': runId } : {}) },
        },
        () =>
            notifyForEvent(
                { ...d.notify, info: (m) => ctx.info(m), warn: (m) => ctx.warn(m) },
                { id: e.id!, type: e.type!, data: e.data ?? null },
            ),
    );
    if (summary.sent || summary.failed)
        ctx.info(`notifyOnEvent: ${e.type} ${e.id}: ${summary.sent} sent, ${summary.failed} failed`);
}

// The local topic and Azure deliver CloudEvents 1.0 (not the Event Grid schema the default type describes).
app.eventGrid<unknown>('notifyOnEvent', {
    handler: (event: unknown, ctx: InvocationContext) => notifyOnEvent(event, ctx, deps()),
});
