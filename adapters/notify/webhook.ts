/**
 * The webhook notification channel: the message as JSON, POSTed to `NOTIFY_WEBHOOK_URL` and signed with
 * `NOTIFY_WEBHOOK_SECRET` (`X-Mesh-Signature`, see adapters/webhooks/signedWebhook.ts), with retries and backoff.
 */
import type { NotificationMessage, Notifier, Person } from '../../domain/ports';
import { postSignedJson, type SignedPostOptions } from '../webhooks/signedWebhook';
import { webhookPayload } from './render';

export {
    SIGNATURE_HEADER,
    SIGNATURE_TOLERANCE_S,
    signMeshPayload,
    verifyMeshSignature,
} from '../webhooks/signedWebhook';

export class WebhookNotifier implements Notifier {
    readonly channel = 'webhook' as const;
    readonly configured: boolean;

    constructor(
        private readonly url: string | undefined,
        private readonly secret: string | undefined,
        private readonly retry: SignedPostOptions = {},
    ) {
        this.configured = url !== undefined && secret !== undefined;
    }

    addressOf(person: Person): string {
        return person.id;
    }

    async send(message: NotificationMessage, to: string): Promise<void> {
        const { url, secret } = this;
        if (!url || !secret)
            throw new Error('the webhook is not configured (NOTIFY_WEBHOOK_URL, NOTIFY_WEBHOOK_SECRET)');
        await postSignedJson(url, JSON.stringify(webhookPayload(message, to)), secret, this.retry);
    }
}
