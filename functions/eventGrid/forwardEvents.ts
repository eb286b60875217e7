/**
 * forwardEvents: the generic event webhook (issue 4) as an Event Grid subscriber. Every lifecycle CloudEvent is
 * POSTed, as it is, to `MESH_EVENT_WEBHOOK_URL` (`Content-Type: application/json`), signed with
 * `MESH_EVENT_WEBHOOK_SECRET` (`X-Mesh-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, verified
 * with `verifyMeshSignature` within a five-minute replay window). Each delivery tries three times with backoff
 * (200 ms, then 400 ms); if all fail the function throws, so Event Grid delivers the event again later. The local
 * stand-in holds a run's later events while an earlier one is retried, so the receiver sees each run's events in
 * order; a redelivery (a crash after the POST) repeats an event with the same id, which receivers de-duplicate by.
 * Neither setting set: the function does nothing.
 */
import { app, InvocationContext } from '@azure/functions';

import { type EventWebhookConfig, eventWebhookConfig } from '../../adapters/config';
import { atRegistration } from '../../adapters/configCheck';
import { postSignedJson, type SignedPostOptions } from '../../adapters/webhooks/signedWebhook';

/** Three attempts per delivery, 200 ms × 2^n apart. */
export const FORWARD_RETRY: SignedPostOptions = { attempts: 3, backoffMs: 200 };

export async function forwardEvents(
    event: unknown,
    ctx: InvocationContext,
    config: EventWebhookConfig | undefined,
    retry: SignedPostOptions = FORWARD_RETRY,
): Promise<void> {
    if (!config) return;
    const e = event as { id?: unknown; type?: unknown } | null;
    if (typeof e?.id !== 'string' || typeof e.type !== 'string') {
        ctx.warn('forwardEvents: an event without id or type; ignored.');
        return;
    }
    try {
        await postSignedJson(config.url, JSON.stringify(event), config.secret, retry);
    } catch (err: unknown) {
        const reason = err instanceof Error ? err.message : String(err);
        ctx.warn(`forwardEvents: ${e.type} ${e.id} not delivered (${reason}); Event Grid will redeliver it.`);
        throw err;
    }
}

// Read at load; a misconfigured forwarder is not registered and the start-up check (adapters/configCheck.ts) stops the
// host, naming the setting.
const config = atRegistration(() => eventWebhookConfig(), undefined);

// Registered only when configured: an unconfigured forwarder would still cost a delivery per event. The local
// topic and Azure deliver CloudEvents 1.0 (not the Event Grid schema the default type describes).
if (config) {
    app.eventGrid<unknown>('forwardEvents', {
        handler: (event: unknown, ctx: InvocationContext) => forwardEvents(event, ctx, config),
    });
}
