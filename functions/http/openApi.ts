import { app, HttpResponseInit } from '@azure/functions';

import { corsRoute } from '../../adapters/http/cors';
import { buildOpenApi } from '../../adapters/http/openapi';

let document: unknown;

/** GET /openapi.json: the bare OpenAPI 3.1 document, generated from the same schemas that validate requests. */
export function openApi(): HttpResponseInit {
    document ??= buildOpenApi();
    return { status: 200, jsonBody: document, headers: { 'cache-control': 'public, max-age=300' } };
}

app.http('openApi', { route: 'openapi.json', ...corsRoute(['GET'], () => Promise.resolve(openApi())) });
