import type { LocalEventGrid } from '../eventGrid/localEventGrid';
import { EventGridTriggerAdapter } from './eventGrid';
import { ServiceBusTriggerAdapter, type ServiceBusTriggerOptions } from './serviceBus';
import { TimerTriggerAdapter } from './timer';
import { TriggerAdapter } from './types';

/** Trigger types the host serves itself (HTTP and the durable ones) and those served by adapters. */
export const BUILT_IN_TRIGGERS = new Set(['httptrigger', 'orchestrationtrigger', 'activitytrigger', 'entitytrigger']);

/** In start order: Event Grid subscribers are known before a timer (publishEvents runs on startup) can publish. */
export function triggerAdapters(
    services: { eventGrid?: LocalEventGrid; serviceBus?: ServiceBusTriggerOptions } = {},
): TriggerAdapter[] {
    return [
        new EventGridTriggerAdapter(services.eventGrid),
        new ServiceBusTriggerAdapter(
            services.serviceBus ?? { maxConcurrentCalls: 1, maxDeliveryCount: 2000, lockMs: 60_000 },
        ),
        new TimerTriggerAdapter(),
    ];
}
