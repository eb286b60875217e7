import type { ServiceBusMessage } from '@azure/service-bus';

import {
    type SenderLike,
    ServiceBusAdmissionQueue,
    serviceBusConnectionOf,
} from '../../adapters/serviceBus/serviceBusAdmissionQueue';

describe('serviceBusConnectionOf', () => {
    it('takes the Functions convention: a connection string, else a namespace for Entra ID, else none', () => {
        expect(
            serviceBusConnectionOf({
                ServiceBusConnection: 'Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=v',
            }),
        ).toEqual({
            connectionString: 'Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=v',
        });
        expect(
            serviceBusConnectionOf({ ServiceBusConnection__fullyQualifiedNamespace: 'ns.servicebus.windows.net' }),
        ).toEqual({
            fullyQualifiedNamespace: 'ns.servicebus.windows.net',
        });
        expect(serviceBusConnectionOf({ ServiceBusConnection: '  ' })).toBeUndefined();
    });
});

describe('ServiceBusAdmissionQueue', () => {
    it('sends one JSON message per run, its id the run id (duplicate detection) and its correlation id', async () => {
        const sent: ServiceBusMessage[] = [];
        const sender: SenderLike = { sendMessages: (m) => (sent.push(m), Promise.resolve()) };
        const opens = jest.fn(() => Promise.resolve(sender));
        const queue = new ServiceBusAdmissionQueue({ fullyQualifiedNamespace: 'ns' }, 'mesh-admission', opens);
        await queue.enqueue({ runId: 'run-1', correlationID: 'corr-1' });
        await queue.enqueue({ runId: 'run-2', correlationID: 'corr-2' });
        expect(opens).toHaveBeenCalledTimes(1);
        expect(sent).toEqual([
            {
                messageId: 'run-1',
                correlationId: 'corr-1',
                contentType: 'application/json',
                body: { runId: 'run-1', correlationID: 'corr-1' },
            },
            {
                messageId: 'run-2',
                correlationId: 'corr-2',
                contentType: 'application/json',
                body: { runId: 'run-2', correlationID: 'corr-2' },
            },
        ]);
    });

    it('opens the sender again after a failed open, and lets a failed send fail the enqueue', async () => {
        const opens = jest
            .fn<Promise<SenderLike>, []>()
            .mockRejectedValueOnce(new Error('namespace unreachable'))
            .mockResolvedValue({ sendMessages: () => Promise.reject(new Error('throttled')) });
        const queue = new ServiceBusAdmissionQueue({ fullyQualifiedNamespace: 'ns' }, 'q', opens);
        await expect(queue.enqueue({ runId: 'r', correlationID: 'c' })).rejects.toThrow('namespace unreachable');
        await expect(queue.enqueue({ runId: 'r', correlationID: 'c' })).rejects.toThrow('throttled');
        expect(opens).toHaveBeenCalledTimes(2);
    });
});
