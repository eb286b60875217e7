import { TimerTriggerAdapter } from './timer';
import { TriggerAdapter } from './types';

/** Trigger types the host serves itself (HTTP and the durable ones) and those served by adapters. */
export const BUILT_IN_TRIGGERS = new Set(['httptrigger', 'orchestrationtrigger', 'activitytrigger', 'entitytrigger']);

export function triggerAdapters(): TriggerAdapter[] {
    return [new TimerTriggerAdapter()];
}
