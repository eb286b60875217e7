import type { LocalEventGrid } from '../eventGrid/localEventGrid';
import { EventGridTriggerAdapter } from './eventGrid';
import { TimerTriggerAdapter } from './timer';
import { TriggerAdapter } from './types';

/** Trigger types the host serves itself (HTTP and the durable ones) and those served by adapters. */
export const BUILT_IN_TRIGGERS = new Set(['httptrigger', 'orchestrationtrigger', 'activitytrigger', 'entitytrigger']);

/** In start order: Event Grid subscribers are known before a timer (publishEvents runs on startup) can publish. */
export function triggerAdapters(services: { eventGrid?: LocalEventGrid } = {}): TriggerAdapter[] {
    return [new EventGridTriggerAdapter(services.eventGrid), new TimerTriggerAdapter()];
}
