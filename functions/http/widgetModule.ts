import { createHash, randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

import { app, HttpRequest, HttpResponseInit } from '@azure/functions';

import { corsHeaders } from '../../adapters/http/cors';
import { observed } from '../../adapters/http/envelope';

/** Where `npm run build` puts the bundle: dist/widget, found from this file's place in dist/functions/http. */
const BUNDLE_CANDIDATES = [
    join(__dirname, '..', '..', 'widget', 'mesh-dashboard.js'),
    join(__dirname, '..', '..', 'dist', 'widget', 'mesh-dashboard.js'),
];

let cached: { path: string; mtimeMs: number; body: Buffer; etag: string } | undefined;

async function bundle(): Promise<typeof cached> {
    for (const path of BUNDLE_CANDIDATES) {
        const stat = await fsp.stat(path).catch(() => undefined);
        if (!stat?.isFile()) continue;
        if (cached?.path === path && cached.mtimeMs === stat.mtimeMs) return cached;
        const body = await fsp.readFile(path);
        const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
        return (cached = { path, mtimeMs: stat.mtimeMs, body, etag });
    }
    return undefined;
}

/** The origins allowed to load the module cross-origin (`MESH_CORS_ORIGINS`, adapters/http/cors.ts). */
function crossOriginHeaders(req: HttpRequest): Record<string, string> {
    return corsHeaders(req);
}

/**
 * GET /widget/mesh-dashboard.js: the dashboard widget, one self-contained ES module (SPEC "Dashboard widget (v1.1)").
 * Revalidated by ETag, so a new deployment reaches every host page within the cache lifetime.
 */
export async function widgetModule(req: HttpRequest): Promise<HttpResponseInit> {
    const b = await bundle();
    const cors = crossOriginHeaders(req);
    if (!b) {
        const correlationID = randomUUID();
        return {
            status: 503,
            headers: { 'content-type': 'application/json; charset=utf-8', 'x-correlation-id': correlationID, ...cors },
            jsonBody: {
                error_code: 'UNAVAILABLE',
                message: 'The dashboard widget is not built: run npm run build.',
                correlationID,
                data: null,
            },
        };
    }
    const headers = {
        'content-type': 'text/javascript; charset=utf-8',
        'cache-control': 'public, max-age=300, must-revalidate',
        etag: b.etag,
        'x-content-type-options': 'nosniff',
        ...cors,
    };
    const inm = req.headers.get('if-none-match');
    if (inm && inm.split(',').some((t) => t.trim() === b.etag)) return { status: 304, headers };
    return { status: 200, headers, body: b.body };
}

app.http('widgetModule', {
    route: 'widget/mesh-dashboard.js',
    methods: ['GET', 'HEAD'],
    authLevel: 'anonymous',
    handler: observed(widgetModule),
});
