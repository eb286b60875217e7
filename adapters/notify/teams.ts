/** Microsoft Teams: an Adaptive Card 1.5 POSTed to an incoming (or Workflows) webhook, `TEAMS_WEBHOOK_URL`. */
import type { NotificationMessage, Notifier, Person } from '../../domain/ports';
import { postWithRetry, type RetryOptions } from './http';
import { teamsPayload } from './render';

export class TeamsNotifier implements Notifier {
    readonly channel = 'teams' as const;
    readonly configured: boolean;

    constructor(
        private readonly url: string | undefined,
        private readonly retry: RetryOptions = {},
    ) {
        this.configured = url !== undefined;
    }

    addressOf(person: Person): string {
        return person.msTeams ?? person.email ?? person.id;
    }

    async send(message: NotificationMessage): Promise<void> {
        if (!this.url) throw new Error('Teams is not configured (TEAMS_WEBHOOK_URL)');
        await postWithRetry(this.url, JSON.stringify(teamsPayload(message)), () => ({}), this.retry);
    }
}
