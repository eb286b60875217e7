/**
 * Starts span export when the app starts and flushes it when the app stops (adapters/telemetry/tracing.ts): an
 * `appStart` hook runs before any function is invoked, on the Functions host and the embedded host alike, after the
 * configuration check (checkConfiguration.ts loads first) has refused a malformed OTLP endpoint.
 */
import { app } from '@azure/functions';

import { startTracing, stopTracing } from '../../adapters/telemetry/tracing';

app.hook.appStart(async () => {
    await startTracing();
});
app.hook.appTerminate(() => stopTracing());
