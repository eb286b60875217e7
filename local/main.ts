/**
 * `npm start`: the whole product on one machine. Starts the embedded host on PORT (default 7071, as
 * `func start`), prints what it serves, and stops cleanly on SIGINT/SIGTERM.
 */
import { join, resolve } from 'node:path';

import { startHost } from './host';
import { hostConfig } from './hostConfig';
import { HOST_KEYS_FILE } from './hostKeys';
import { keysDirFrom } from './identity';

const QUIET = new Set(['trace', 'debug']);

function log(level: string, message: string): void {
    if (QUIET.has(level) && !process.env.MESH_DEBUG) return;
    const line = `${new Date().toISOString()} ${level.padEnd(11)} ${message}`;
    if (level === 'error' || level === 'critical' || level === 'warning') process.stderr.write(line + '\n');
    else if (process.env.MESH_LOG_INFO !== '0') process.stdout.write(line + '\n');
}

async function main(): Promise<void> {
    const root = resolve(__dirname, '..', '..');
    const config = hostConfig(process.env, root);
    // Signal handlers first: a stop requested while starting still stops cleanly.
    const started: { host?: Awaited<ReturnType<typeof startHost>> } = {};
    let stopping = false;
    const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log('information', `host: ${signal} received, stopping`);
        (started.host ? started.host.stop() : Promise.resolve()).then(
            () => process.exit(0),
            (e: unknown) => {
                log('error', `host: stop failed: ${String(e)}`);
                process.exit(1);
            },
        );
    };
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    const host = (started.host = await startHost(config, log));
    if (stopping) return void (await host.stop());
    process.stdout.write(
        [
            `Mesh Orchestrator (embedded host) listening on ${host.origin}`,
            `  functions:      ${host.functions.length} registered (${host.functions.join(', ')})`,
            `  dashboard:      ${host.dashboard.url}${host.dashboard.localSignIn ? '  (local sign-in: pick a person of the local directory)' : ''}`,
            `  health:         ${host.origin}/health/live  ${host.origin}/health/ready`,
            `  durable API:    ${host.origin}/runtime/webhooks/durabletask/ (x-functions-key: masterKey of ${join(keysDirFrom(process.env), HOST_KEYS_FILE)})`,
            `  local JWKS:     ${host.origin}/.well-known/jwks.json`,
            `  OpenAPI:        ${host.origin}/openapi.json`,
            ...(host.engineUrls
                ? [
                      `  engines:        ${Object.entries(host.engineUrls)
                          .map(([s, u]) => `${s} ${u}`)
                          .join(', ')}`,
                  ]
                : []),
            `  data:           ${config.dataDir}`,
            `Press Ctrl+C to stop.`,
            '',
        ].join('\n'),
    );
}

main().catch((e: unknown) => {
    process.stderr.write(`host: failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
});
