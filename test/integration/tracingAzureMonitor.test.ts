/**
 * Both exporters set (adapters/telemetry/tracing.ts): `applicationinsights` brings its own provider and our spans reach
 * it (the ingestion endpoint of the connection string, here a local https receiver) and the OTLP collector alike;
 * stopping flushes both. Run in a child process from dist/ as the host runs it: the exporters load modules dynamically,
 * which jest's sandbox does not allow.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { ROOT } from '../support/hostProcess';

const bodies: { path: string; text: string }[] = [];
const servers: Server[] = [];

function receive(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        bodies.push({ path: req.url ?? '', text: body.toString('utf8') });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ itemsReceived: 1, itemsAccepted: 1, errors: [] }));
    });
}

async function listen(server: Server): Promise<string> {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterAll(async () => {
    for (const s of servers) {
        s.closeAllConnections();
        await new Promise((resolve) => s.close(resolve));
    }
});

/** Starts tracing from the environment, makes one engine-like span, stops (flushing). */
const SCRIPT = `
const t = require(${JSON.stringify(join(ROOT, 'dist/adapters/telemetry/tracing.js'))});
(async () => {
    const mode = await t.startTracing();
    await t.inSpan('engine taste', { attributes: { 'mesh.run_id': 'run-am' } }, async () => undefined);
    await t.stopTracing();
    process.stdout.write('mode=' + mode + '\\n');
})().catch((e) => { console.error(e); process.exit(1); });
`;

it('exports our spans to Azure Monitor and OTLP when both are set, flushing when it stops', async () => {
    // The Azure Monitor exporter only speaks https: a self-signed ingestion endpoint on loopback, trusted by the child.
    const dir = mkdtempSync(join(tmpdir(), 'mesh-am-'));
    execFileSync(
        'openssl',
        [
            ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1'],
            ...['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
        ],
        { stdio: 'ignore' },
    );
    const tls = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
    const ingestion = `https://${await listen(createHttpsServer(tls, receive))}/`;
    const otlp = `http://${await listen(createServer(receive))}`;
    const secret = 'InstrumentationKey=00000000-0000-0000-0000-000000000001';

    const out = await new Promise<string>((resolve, reject) =>
        execFile(
            process.execPath,
            ['-e', SCRIPT],
            {
                cwd: ROOT,
                timeout: 60_000,
                env: {
                    PATH: process.env.PATH ?? '',
                    APPLICATIONINSIGHTS_CONNECTION_STRING: `${secret};IngestionEndpoint=${ingestion}`,
                    OTEL_EXPORTER_OTLP_ENDPOINT: otlp,
                    OTEL_SERVICE_NAME: 'mesh-am-test',
                    NODE_TLS_REJECT_UNAUTHORIZED: '0',
                    APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true',
                    APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
                },
            },
            (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout + stderr)),
        ),
    );
    expect(out).toContain('mode=azure-monitor+otlp');
    // The connection string is a secret: the start-up line names Azure Monitor, never the key.
    expect(out).toContain('to Azure Monitor and OTLP');
    expect(out).not.toContain(secret);

    const otlpText = bodies.filter((b) => b.path === '/v1/traces').map((b) => b.text);
    expect(otlpText.join('\n')).toContain('engine taste');
    const azure = bodies.filter((b) => b.path.includes('track')).map((b) => b.text);
    expect(azure.join('\n')).toContain('engine taste');
    expect(azure.join('\n')).toContain('run-am');
}, 90_000);
