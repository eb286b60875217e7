/**
 * eventGridTrigger: each such function of the app is a subscription of the local Event Grid topic (every event, as
 * a CloudEvents 1.0 object), delivered in process with the topic's retries and dead-lettering: a function that throws
 * gets the event again, as Event Grid retries a Functions webhook that answers 500.
 */
import type { LocalEventGrid } from '../eventGrid/localEventGrid';
import { FunctionRegistration } from '../functionsCore';
import { invocationContext } from '../invoke';
import { TriggerAdapter, TriggerHost } from './types';

export class EventGridTriggerAdapter implements TriggerAdapter {
    readonly type = 'eventGridTrigger';
    private readonly subscribed: string[] = [];

    constructor(private readonly grid: LocalEventGrid | undefined) {}

    start(functions: FunctionRegistration[], host: TriggerHost): void {
        if (!functions.length) return;
        if (!this.grid) {
            host.log('warning', `host: no local Event Grid; eventGridTrigger functions get no events.`);
            return;
        }
        for (const f of functions) {
            this.grid.subscribeFunction(f.name, async (event) => {
                const ctx = invocationContext(host.registry, f, host.clientData(), host.log);
                await f.handler(event, ctx);
            });
            this.subscribed.push(f.name);
        }
    }

    stop(): void {
        for (const name of this.subscribed.splice(0)) this.grid?.unsubscribeFunction(name);
    }
}
