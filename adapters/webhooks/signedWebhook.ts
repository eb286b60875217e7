/**
 * Signed webhooks, shared by the notification channel (`NOTIFY_WEBHOOK_URL`) and the event forwarder
 * (`MESH_EVENT_WEBHOOK_URL`): a JSON body POSTed with
 * `X-Mesh-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the webhook's secret>`.
 * Receivers verify with `verifyMeshSignature` and refuse signatures older (or newer) than five minutes, so a
 * captured request cannot be replayed later. Each attempt is signed afresh.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

import { postWithRetry, type RetryOptions } from '../notify/http';

export const SIGNATURE_HEADER = 'X-Mesh-Signature';
/** The replay window receivers allow, in seconds. */
export const SIGNATURE_TOLERANCE_S = 300;

export function signMeshPayload(body: string, secret: string, now: Date = new Date()): string {
    const t = Math.floor(now.getTime() / 1000);
    return `t=${t},v1=${hmac(secret, `${t}.${body}`)}`;
}

/**
 * Whether `header` is a valid signature of `body` made with `secret` within the replay window around `now`.
 * Any `v1` entry may match (a sender rotating secrets may send two); comparison is constant-time.
 */
export function verifyMeshSignature(
    header: string | null | undefined,
    body: string,
    secret: string,
    now: Date = new Date(),
    toleranceS = SIGNATURE_TOLERANCE_S,
): boolean {
    if (typeof header !== 'string' || header.length > 1024 || !secret) return false;
    let t: number | undefined;
    const sigs: string[] = [];
    for (const part of header.split(',')) {
        const [k, v, ...rest] = part.trim().split('=');
        if (rest.length || v === undefined) return false;
        if (k === 't' && /^\d{1,12}$/.test(v)) t = Number(v);
        else if (k === 'v1' && /^[0-9a-f]{64}$/.test(v)) sigs.push(v);
    }
    if (t === undefined || !sigs.length) return false;
    if (Math.abs(Math.floor(now.getTime() / 1000) - t) > toleranceS) return false;
    const expected = Buffer.from(hmac(secret, `${t}.${body}`), 'hex');
    return sigs.some((s) => timingSafeEqual(Buffer.from(s, 'hex'), expected));
}

function hmac(secret: string, data: string): string {
    return createHmac('sha256', secret).update(data, 'utf8').digest('hex');
}

export type SignedPostOptions = RetryOptions & { now?: () => Date };

/**
 * POSTs `body` (JSON) to `url`, signed with `secret`, retrying with backoff (`postWithRetry`: 3 attempts by
 * default). Throws once every attempt failed, or at once on an answer retrying cannot change (a 4xx but 408/429).
 */
export async function postSignedJson(
    url: string,
    body: string,
    secret: string,
    opts: SignedPostOptions = {},
): Promise<void> {
    const now = opts.now ?? (() => new Date());
    await postWithRetry(url, body, () => ({ [SIGNATURE_HEADER]: signMeshPayload(body, secret, now()) }), opts);
}
