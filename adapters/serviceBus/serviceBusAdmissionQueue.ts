/**
 * The admission queue on Azure: a Service Bus queue (`@azure/service-bus`). The Functions host's Service Bus trigger
 * delivers it to `admitRun`, and KEDA scales the workers on its length. The connection follows the Functions
 * convention for the trigger's `connection: 'ServiceBusConnection'`: a connection string in `ServiceBusConnection`,
 * or `ServiceBusConnection__fullyQualifiedNamespace` for Entra ID (`DefaultAzureCredential`, the workload identity on
 * AKS). The SDK is loaded and the sender built on the first enqueue.
 *
 * Each message's id is the run id, so with duplicate detection on (infra/ turns it on) a retried submission is
 * enqueued once; without it, the admitter tolerates duplicates anyway.
 */
import type { ServiceBusMessage } from '@azure/service-bus';

import type { AdmissionMessage, AdmissionQueue } from '../../domain/ports';

type Env = Readonly<Record<string, string | undefined>>;

/** The Service Bus connection the trigger and the sender share; undefined when none is configured (local operation). */
export interface ServiceBusConnection {
    connectionString?: string;
    fullyQualifiedNamespace?: string;
}

export function serviceBusConnectionOf(env: Env, name = 'ServiceBusConnection'): ServiceBusConnection | undefined {
    const connectionString = env[name]?.trim() || undefined;
    const fullyQualifiedNamespace = env[`${name}__fullyQualifiedNamespace`]?.trim() || undefined;
    if (connectionString) return { connectionString };
    if (fullyQualifiedNamespace) return { fullyQualifiedNamespace };
    return undefined;
}

/** What the queue needs of `ServiceBusSender`; tests pass a fake. */
export interface SenderLike {
    sendMessages(message: ServiceBusMessage): Promise<void>;
}

export class ServiceBusAdmissionQueue implements AdmissionQueue {
    private sender: Promise<SenderLike> | undefined;

    constructor(
        private readonly connection: ServiceBusConnection,
        private readonly queueName: string,
        private readonly openSender: () => Promise<SenderLike> = () => this.open(),
    ) {}

    async enqueue(message: AdmissionMessage): Promise<void> {
        const sender = await (this.sender ??= this.openSender().catch((e: unknown) => {
            this.sender = undefined;
            throw e;
        }));
        await sender.sendMessages({
            messageId: message.runId,
            correlationId: message.correlationID,
            contentType: 'application/json',
            body: message,
        });
    }

    private async open(): Promise<SenderLike> {
        const { ServiceBusClient } = await import('@azure/service-bus');
        if (this.connection.connectionString)
            return new ServiceBusClient(this.connection.connectionString).createSender(this.queueName);
        const { DefaultAzureCredential } = await import('@azure/identity');
        const client = new ServiceBusClient(this.connection.fullyQualifiedNamespace!, new DefaultAzureCredential());
        return client.createSender(this.queueName);
    }
}
