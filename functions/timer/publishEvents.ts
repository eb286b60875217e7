/**
 * publishEvents: drains the event outbox into Event Grid every 10 seconds and at startup. The embedded host runs
 * timer triggers too, so this one function publishes on Azure and locally alike; between ticks, each audit append
 * nudges the same dispatcher, so events normally go out within milliseconds and the timer catches what is left
 * (a failed publish, events recorded before a crash).
 */
import { app, InvocationContext, Timer } from '@azure/functions';

import { type Deps, deps } from '../../adapters/deps';

export async function publishEvents(
    _timer: Timer,
    ctx: InvocationContext,
    d: Pick<Deps, 'events' | 'outbox'>,
): Promise<void> {
    const dispatcher = d.events;
    if (!dispatcher) {
        if ((await d.outbox.pending(1)).length)
            ctx.warn('EVENTGRID_ENDPOINT is not set: lifecycle events wait in the outbox until it is.');
        return;
    }
    const r = await dispatcher.drain();
    if (r.published || r.failedBatches)
        ctx.info(`published ${r.published} events; ${r.failedBatches} failed requests; ${r.waiting} waiting`);
}

app.timer('publishEvents', {
    schedule: '*/10 * * * * *',
    runOnStartup: true,
    handler: (timer: Timer, ctx: InvocationContext) => publishEvents(timer, ctx, deps()),
});
