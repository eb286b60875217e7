/** Slack: a Block Kit message with three url buttons, POSTed to an incoming webhook, `SLACK_WEBHOOK_URL`. */
import type { NotificationMessage, Notifier, Person } from '../../domain/ports';
import { postWithRetry, type RetryOptions } from './http';
import { slackPayload } from './render';

export class SlackNotifier implements Notifier {
    readonly channel = 'slack' as const;
    readonly configured: boolean;

    constructor(
        private readonly url: string | undefined,
        private readonly retry: RetryOptions = {},
    ) {
        this.configured = url !== undefined;
    }

    addressOf(person: Person): string {
        return person.slack ?? person.email ?? person.id;
    }

    async send(message: NotificationMessage, to: string): Promise<void> {
        if (!this.url) throw new Error('Slack is not configured (SLACK_WEBHOOK_URL)');
        await postWithRetry(this.url, JSON.stringify(slackPayload(message, to)), () => ({}), this.retry);
    }
}
