import { app, HttpResponseInit } from '@azure/functions';

import { deps } from '../../adapters/deps';
import { meshMetrics } from '../../adapters/telemetry/metrics';
import { storeState } from '../../adapters/telemetry/storeState';

/**
 * GET /metrics: the Prometheus text format for the cluster's Prometheus (SPEC "Observability (v1.1)"). Not enveloped
 * and anonymous, like /openapi.json; the chart exposes it inside the cluster only. Its labels carry no ids or personal
 * data. The store-state gauges are read from the stores as the scrape comes in.
 */
export async function metrics(): Promise<HttpResponseInit> {
    const m = meshMetrics();
    return { status: 200, body: await m.registry.metrics(), headers: { 'content-type': m.registry.contentType } };
}

meshMetrics().useStateSource(() => storeState(deps()));

app.http('metrics', { route: 'metrics', methods: ['GET'], authLevel: 'anonymous', handler: metrics });
