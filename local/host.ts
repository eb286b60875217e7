/**
 * The embedded host: loads the app like the Functions worker, drives its durable functions with the
 * embedded engine, serves its HTTP functions and runs its other triggers. `startHost` is used by
 * `npm start` (main.ts), the integration tests and the benchmarks alike.
 */
import { mkdirSync } from 'node:fs';
import { createServer, RequestListener } from 'node:http';
import { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { engineUrlKey } from '../adapters/engines/config';
import { STAGES } from '../domain/pipeline';
import { answerDurableClientInProcess } from './durable/clientTransport';
import { ActivityHandler, DurableEngine, EngineRegistrations, EntityHandler } from './durable/engine';
import { OrchestrationHandler } from './durable/replay';
import { DurableStore } from './durable/store';
import { startEngineProcess } from './engines/process';
import { simulatorOptionsFromEnv } from './engines/simulator';
import { EVENTGRID_PATH, LocalEventGrid } from './eventGrid/localEventGrid';
import { loadEventGridAccessKey, loadEventGridCipher } from './eventGrid/storeCipher';
import { retryScaleFromEnv, subscriptionsFromEnv } from './eventGrid/subscriptions';
import { HostConfig } from './hostConfig';
import { HostKeys, loadOrCreateHostKeys } from './hostKeys';
import { LOCAL_SIGN_IN_PATH, localSignIn } from './http/localSignIn';
import { answerClientError, createRequestListener, startingListener } from './http/server';
import { keysDirFrom, loadOrCreateSigningKey, LOCAL_AUDIENCE, LOCAL_ISSUER, publicJwks } from './identity';
import { DurableClientData, durableClientData, HostLog } from './invoke';
import { loadApp } from './loadApp';
import { BUILT_IN_TRIGGERS, triggerAdapters } from './triggers';

export interface RunningHost {
    origin: string;
    port: number;
    engine: DurableEngine;
    store: DurableStore;
    /** The local Event Grid topic the app publishes its lifecycle events to. */
    eventGrid: LocalEventGrid;
    /** The function key (authLevel function routes). */
    functionKey: string;
    /** The host's keys (`<MESH_KEYS_DIR>/host-keys.json`); `keys.masterKey` opens the host-internal routes. */
    keys: HostKeys;
    functions: string[];
    /** The simulated engines' URLs, when the host runs them. */
    engineUrls?: Record<string, string>;
    /** The dashboard page; `localSignIn` when it offers the local directory's people (no sign-in configured). */
    dashboard: { url: string; localSignIn: boolean };
    stop(): Promise<void>;
}

export const JWKS_PATH = '/.well-known/jwks.json';

export async function startHost(config: HostConfig, log: HostLog): Promise<RunningHost> {
    mkdirSync(config.dataDir, { recursive: true });
    const keysDir = keysDirFrom(process.env);
    // The embedded host is local operation whatever the store: the app's keys (approval links, data keys) are local
    // keys here too, where Azure needs Key Vault (adapters/configCheck.ts).
    process.env.MESH_KEYS_DIR = keysDir;
    const signingKey = await loadOrCreateSigningKey(keysDir);
    const keys = await loadOrCreateHostKeys(keysDir, config.dataDir);
    const jwks = publicJwks(signingKey);

    const store = new DurableStore(config.dataDir, config.sqliteSync);
    // The server must know its port before the app reads its configuration (JWKS URI, WEBSITE_HOSTNAME).
    let listener: RequestListener = startingListener;
    const server = createServer((req, res) => listener(req, res));
    server.keepAliveTimeout = 65_000;
    // Requests Node's parser refuses (an over-long URL or headers, malformed HTTP) are answered in the envelope too.
    server.on('clientError', answerClientError);
    const port = await new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.bindAddress, () => resolve((server.address() as AddressInfo).port));
    });
    const origin = `http://${config.bindAddress === '0.0.0.0' ? '127.0.0.1' : config.bindAddress}:${port}`;
    // As on Azure, the app learns where it runs and whom to trust from its settings.
    process.env.WEBSITE_HOSTNAME = new URL(origin).host;
    // No sign-in configured (the app trusts the local identity provider): the dashboard offers local sign-in.
    const offerLocalSignIn = !process.env.AUTH_ISSUER?.trim() || process.env.AUTH_ISSUER === LOCAL_ISSUER;
    process.env.AUTH_ISSUER ??= LOCAL_ISSUER;
    process.env.AUTH_AUDIENCE ??= LOCAL_AUDIENCE;
    process.env.AUTH_JWKS_URI ??= `${origin}${JWKS_PATH}`;
    process.env.MESH_DATA_DIR = config.dataDir;
    // Whom notifications reach: the settings' directory, else the sample one (ava, amir, bea, ada …).
    process.env.MESH_DIRECTORY ??= join(config.root, 'local', 'directory.sample.json');
    // The local Event Grid topic; the app publishes to it as to Azure's, unless its settings name another topic.
    const eventGrid = new LocalEventGrid({
        dataDir: config.dataDir,
        cipher: await loadEventGridCipher(keysDir),
        key: await loadEventGridAccessKey(keysDir, config.dataDir),
        sqliteSync: config.sqliteSync,
        subscriptions: subscriptionsFromEnv(process.env, config.root),
        retryScale: retryScaleFromEnv(process.env),
        log,
    });
    if (!process.env.EVENTGRID_ENDPOINT?.trim()) {
        process.env.EVENTGRID_ENDPOINT = `${origin}${EVENTGRID_PATH}`;
        process.env.EVENTGRID_KEY = eventGrid.key;
    }
    // The five mesh engines: simulated locally unless the settings point at real ones.
    const engines = process.env.ENGINE_URL_GENERATION
        ? undefined
        : await startEngineProcess(simulatorOptionsFromEnv(process.env));
    if (engines) for (const stage of STAGES) process.env[engineUrlKey(stage)] = engines.urls[stage];

    const { registry } = loadApp(config.root, log, config.appMain);
    // As on the Functions host, appStart hooks run before any function is invoked: the app's configuration check
    // stops a misconfigured host here, before it serves a request or fires a timer.
    try {
        for (const hook of registry.hooks.get('appStart') ?? []) await hook({ hookData: {}, appHookData: {} });
    } catch (e: unknown) {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await engines?.stop();
        store.close();
        throw e;
    }
    const registrations: EngineRegistrations = { orchestrators: new Map(), activities: new Map(), entities: new Map() };
    for (const f of registry.byTriggerType('orchestrationTrigger'))
        registrations.orchestrators.set(f.name, f.handler as unknown as OrchestrationHandler);
    for (const f of registry.byTriggerType('activityTrigger'))
        registrations.activities.set(f.name, f.handler as unknown as ActivityHandler);
    for (const f of registry.byTriggerType('entityTrigger'))
        registrations.entities.set(f.name.toLowerCase(), f.handler as unknown as EntityHandler);

    const engine = new DurableEngine(store, registrations, config.limits, log);
    const clientData: DurableClientData = durableClientData(origin, config.taskHub, keys.masterKey);
    if (process.env.MESH_DURABLE_CLIENT_TRANSPORT !== 'http')
        answerDurableClientInProcess(origin, engine, () => clientData, keys.masterKey);
    listener = createRequestListener({
        registry,
        engine,
        clientData: () => clientData,
        routePrefix: config.routePrefix,
        keys,
        hostRoutes: { [JWKS_PATH]: () => ({ status: 200, body: jwks }) },
        hostHandlers: {
            [EVENTGRID_PATH]: eventGrid.handle,
            ...(offerLocalSignIn
                ? {
                      [LOCAL_SIGN_IN_PATH]: localSignIn({
                          key: signingKey,
                          directoryFile: () => process.env.MESH_DIRECTORY?.trim() || undefined,
                      }),
                  }
                : {}),
        },
        log,
    });

    const adapters = triggerAdapters({
        eventGrid,
        serviceBus: {
            maxConcurrentCalls: config.limits.maxConcurrentCalls,
            ...config.queue,
            sqliteSync: config.sqliteSync,
        },
    });
    const host = { registry, clientData: () => clientData, log, dataDir: config.dataDir };
    for (const adapter of adapters) await adapter.start(registry.byTriggerType(adapter.type), host);
    const served = new Set(['httptrigger', ...BUILT_IN_TRIGGERS, ...adapters.map((a) => a.type.toLowerCase())]);
    for (const f of registry.functions.values()) {
        if (!served.has(f.trigger.type.toLowerCase()))
            log(
                'warning',
                `host: function '${f.name}' has trigger type '${f.trigger.type}', which the embedded host does not serve yet.`,
            );
    }
    eventGrid.start();
    const subscriptions = eventGrid.subscriptionNames();
    log(
        'information',
        `host: local Event Grid topic ${origin}${EVENTGRID_PATH}; subscriptions: ${subscriptions.join(', ') || 'none'}`,
    );
    engine.start();

    let stopped = false;
    return {
        origin,
        port,
        engine,
        store,
        eventGrid,
        functionKey: keys.functionKey,
        keys,
        functions: [...registry.functions.keys()],
        ...(engines ? { engineUrls: engines.urls } : {}),
        dashboard: { url: `${origin}/${joinPrefix(config.routePrefix)}dashboard`, localSignIn: offerLocalSignIn },
        async stop() {
            if (stopped) return;
            stopped = true;
            await new Promise<void>((resolve) => {
                server.close(() => resolve());
                server.closeIdleConnections();
                setTimeout(() => {
                    server.closeAllConnections();
                    resolve();
                }, 2_000).unref();
            });
            for (const adapter of adapters) await adapter.stop();
            await engine.stop();
            await eventGrid.stop();
            await engines?.stop();
            for (const hook of registry.hooks.get('appTerminate') ?? []) await hook({ hookData: {}, appHookData: {} });
            store.close();
        },
    };
}

/** `api` → `api/`, '' → '': the route prefix in front of a function route. */
function joinPrefix(prefix: string): string {
    const p = prefix.replace(/^\/+|\/+$/g, '');
    return p ? `${p}/` : '';
}
