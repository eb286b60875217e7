/**
 * Delivering one event to a webhook as Event Grid does for CloudEvents 1.0 subscriptions: the abuse-protection
 * handshake first (CloudEvents "HTTP 1.1 Web Hooks" §4: OPTIONS with `WebHook-Request-Origin`, answered with
 * `WebHook-Allowed-Origin`), then the event in structured mode (`application/cloudevents+json`), one per request.
 * Plus Event Grid's retry schedule and which answers it does not retry.
 */

/** The origin Event Grid names in the handshake and on every delivery. */
export const REQUEST_ORIGIN = 'eventgrid.azure.net';
/** Event Grid waits 30 seconds for an answer before it counts the attempt as failed. */
export const DELIVERY_TIMEOUT_MS = 30_000;

export type Outcome =
    | { ok: true }
    | {
          ok: false;
          /** Event Grid's lastDeliveryOutcome: Probation, Unauthorized, NotFound, TimedOut, GenericError … */
          outcome: string;
          error: string;
          status?: number;
          /** False for answers Event Grid does not retry for webhooks (400, 401, 403, 413): dead-lettered at once. */
          retryable: boolean;
      };

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
/** Event Grid's schedule (delivery-and-retry): 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h, then every 12 h. */
const SCHEDULE = [10 * SECOND, 30 * SECOND, MINUTE, 5 * MINUTE, 10 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR];

/**
 * The wait before attempt `failed + 1`, after `failed` failed attempts, times `scale`, with the small randomization
 * Event Grid adds to every step (up to +10 %).
 */
export function retryDelayMs(failed: number, scale: number, random: () => number = Math.random): number {
    const base = SCHEDULE[Math.max(0, failed - 1)] ?? 12 * HOUR;
    return Math.max(1, Math.round(base * scale * (1 + 0.1 * random())));
}

/** HTTP answers Event Grid does not retry for a webhook. */
const NOT_RETRIED = new Set([400, 401, 403, 413]);

function failedAnswer(status: number): Outcome {
    const outcome =
        status === 401 || status === 403
            ? 'Unauthorized'
            : status === 404
              ? 'NotFound'
              : status === 400
                ? 'BadRequest'
                : 'GenericError';
    return { ok: false, outcome, status, error: `HTTP ${status}`, retryable: !NOT_RETRIED.has(status) };
}

function failedRequest(e: unknown): Outcome {
    const timedOut = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
    const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : '';
    return {
        ok: false,
        outcome: timedOut ? 'TimedOut' : 'Probation',
        error: `${e instanceof Error ? e.message : String(e)}${cause}`,
        retryable: true,
    };
}

/**
 * The handshake: the endpoint must answer 200 with `WebHook-Allowed-Origin` naming Event Grid's origin (or `*`).
 * Returns undefined when it did, else why not.
 */
export async function handshake(endpoint: string, signal: AbortSignal): Promise<string | undefined> {
    try {
        const res = await fetch(endpoint, {
            method: 'OPTIONS',
            headers: { 'WebHook-Request-Origin': REQUEST_ORIGIN, 'WebHook-Request-Rate': '120' },
            redirect: 'manual',
            signal: AbortSignal.any([signal, AbortSignal.timeout(DELIVERY_TIMEOUT_MS)]),
        });
        await res.arrayBuffer();
        const allowed = res.headers.get('webhook-allowed-origin');
        if (res.status !== 200) return `the handshake (OPTIONS) was answered ${res.status}`;
        if (allowed !== REQUEST_ORIGIN && allowed !== '*')
            return `the handshake (OPTIONS) answer allows origin '${allowed ?? ''}', not '${REQUEST_ORIGIN}'`;
        return undefined;
    } catch (e: unknown) {
        return `the handshake (OPTIONS) failed: ${e instanceof Error ? e.message : String(e)}`;
    }
}

/** One structured-mode delivery. `previousAttempts` is sent as Event Grid's `aeg-delivery-count`. */
export async function deliverToWebhook(
    endpoint: string,
    subscription: string,
    body: string,
    previousAttempts: number,
    signal: AbortSignal,
): Promise<Outcome> {
    try {
        const res = await fetch(endpoint, {
            method: 'POST',
            headers: {
                'content-type': 'application/cloudevents+json; charset=utf-8',
                'aeg-subscription-name': subscription.toUpperCase(),
                'aeg-delivery-count': String(previousAttempts),
                'aeg-event-type': 'Notification',
                'WebHook-Request-Origin': REQUEST_ORIGIN,
            },
            body,
            redirect: 'manual',
            signal: AbortSignal.any([signal, AbortSignal.timeout(DELIVERY_TIMEOUT_MS)]),
        });
        await res.arrayBuffer();
        // Event Grid counts 200 OK, 201 Created, 202 Accepted, 203 and 204 No Content as delivered.
        return res.status >= 200 && res.status <= 204 ? { ok: true } : failedAnswer(res.status);
    } catch (e: unknown) {
        return failedRequest(e);
    }
}
