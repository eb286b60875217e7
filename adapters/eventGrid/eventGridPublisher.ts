/**
 * Publishes lifecycle events to an Event Grid topic in the CloudEvents 1.0 schema with `@azure/eventgrid`. Auth is the
 * topic key (`aeg-sas-key`) when one is configured, else Entra ID through `DefaultAzureCredential` (workload identity
 * on AKS; the identity needs the EventGrid Data Sender role on the topic).
 */
import type { TokenCredential } from '@azure/core-auth';
import { AzureKeyCredential, EventGridPublisherClient, type SendCloudEventInput } from '@azure/eventgrid';

import type { MeshCloudEvent, MeshEventData } from '../../domain/events';
import type { EventPublisher } from '../../domain/ports';
import type { EventGridConfig } from './config';

export class EventGridPublisher implements EventPublisher {
    private readonly client: EventGridPublisherClient<'CloudEvent'>;

    constructor(
        config: EventGridConfig,
        private readonly timeoutMs = 30_000,
    ) {
        const url = new URL(config.endpoint);
        this.client = new EventGridPublisherClient(config.endpoint, 'CloudEvent', credentialFor(config), {
            // Plain http only to a loopback address: the embedded host's local stand-in. Azure's topics are https.
            allowInsecureConnection: url.protocol === 'http:' && isLoopback(url.hostname),
            // One retry policy: the dispatcher's (back-off per run, order kept), not a second one beneath it.
            retryOptions: { maxRetries: 0 },
        });
    }

    async publish(events: readonly MeshCloudEvent[]): Promise<void> {
        if (!events.length) return;
        await this.client.send(events.map(toSendInput), { abortSignal: AbortSignal.timeout(this.timeoutMs) });
    }
}

/** The SDK's input shape for one event; the SDK writes it back as the same CloudEvents JSON. */
export function toSendInput(e: MeshCloudEvent): SendCloudEventInput<MeshEventData> {
    return {
        id: e.id,
        type: e.type,
        source: e.source,
        subject: e.subject,
        time: new Date(e.time),
        datacontenttype: e.datacontenttype,
        data: e.data,
        extensionAttributes: { correlationid: e.correlationid },
    };
}

function isLoopback(hostname: string): boolean {
    return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function credentialFor(config: EventGridConfig): AzureKeyCredential | TokenCredential {
    if (config.key) return new AzureKeyCredential(config.key);
    // Loaded only when used: the local stand-in always has a key, and the SDK costs start-up time.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { DefaultAzureCredential } = require('@azure/identity') as typeof import('@azure/identity');
    return new DefaultAzureCredential();
}
