/** The embedded host's settings: environment (as `func start` reads it) plus host.json. */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface HostConfig {
    root: string;
    port: number;
    bindAddress: string;
    dataDir: string;
    sqliteSync: 'NORMAL' | 'FULL';
    appMain?: string;
    routePrefix: string;
    taskHub: string;
    limits: {
        maxConcurrentActivityFunctions: number;
        maxConcurrentOrchestratorFunctions: number;
        maxConcurrentEntityFunctions: number;
        maxBacklog: number;
        /** Service Bus trigger invocations at once, per function (host.json `extensions.serviceBus.maxConcurrentCalls`). */
        maxConcurrentCalls: number;
    };
    /** The embedded queue that stands in for Service Bus. */
    queue: {
        /** Deliveries before a message is dead-lettered (`MESH_QUEUE_MAX_DELIVERY`, default 2000). */
        maxDeliveryCount: number;
        /** How long a delivery's lock lasts before it is renewed (`MESH_QUEUE_LOCK_MS`, default 60 s, as Service Bus). */
        lockMs: number;
    };
}

interface HostJson {
    extensions?: {
        http?: { routePrefix?: string };
        serviceBus?: { maxConcurrentCalls?: number };
        durableTask?: {
            hubName?: string;
            maxConcurrentActivityFunctions?: number;
            maxConcurrentOrchestratorFunctions?: number;
            maxConcurrentEntityFunctions?: number;
        };
    };
}

export function hostConfig(env: NodeJS.ProcessEnv, root: string): HostConfig {
    const hostJsonPath = join(root, 'host.json');
    const hostJson = (existsSync(hostJsonPath) ? JSON.parse(readFileSync(hostJsonPath, 'utf8')) : {}) as HostJson;
    const dt = hostJson.extensions?.durableTask ?? {};
    const port = Number(env.PORT ?? env.FUNCTIONS_HTTPWORKER_PORT ?? 7071);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new Error(`PORT must be a TCP port number, got '${env.PORT}'.`);
    const sync = (env.MESH_SQLITE_SYNC ?? 'NORMAL').toUpperCase();
    if (sync !== 'NORMAL' && sync !== 'FULL')
        throw new Error(`MESH_SQLITE_SYNC must be NORMAL or FULL, got '${env.MESH_SQLITE_SYNC}'.`);
    return {
        root,
        port,
        bindAddress: env.MESH_BIND_ADDRESS ?? '127.0.0.1',
        dataDir: resolve(root, env.MESH_DATA_DIR ?? '.mesh-data'),
        sqliteSync: sync,
        appMain: env.MESH_APP_MAIN,
        routePrefix: hostJson.extensions?.http?.routePrefix ?? 'api',
        taskHub: env.MESH_TASK_HUB ?? dt.hubName ?? 'MeshHub',
        limits: {
            maxConcurrentActivityFunctions: positive(
                env.MESH_MAX_CONCURRENT_ACTIVITIES,
                dt.maxConcurrentActivityFunctions ?? 10,
            ),
            maxConcurrentOrchestratorFunctions: positive(
                env.MESH_MAX_CONCURRENT_ORCHESTRATIONS,
                dt.maxConcurrentOrchestratorFunctions ?? 10,
            ),
            maxConcurrentEntityFunctions: positive(
                env.MESH_MAX_CONCURRENT_ENTITIES,
                dt.maxConcurrentEntityFunctions ?? 10,
            ),
            maxBacklog: positive(env.MESH_MAX_BACKLOG, dt.maxConcurrentOrchestratorFunctions ?? 10),
            // The Functions host's own override of host.json (what Helm sets), so one setting serves both hosts.
            maxConcurrentCalls: positive(
                env.AzureFunctionsJobHost__extensions__serviceBus__maxConcurrentCalls,
                hostJson.extensions?.serviceBus?.maxConcurrentCalls ?? 1,
            ),
        },
        queue: {
            maxDeliveryCount: positive(env.MESH_QUEUE_MAX_DELIVERY, 2000, 'MESH_QUEUE_MAX_DELIVERY'),
            lockMs: positive(env.MESH_QUEUE_LOCK_MS, 60_000, 'MESH_QUEUE_LOCK_MS'),
        },
    };
}

function positive(envValue: string | undefined, fallback: number, key?: string): number {
    if (envValue === undefined) return fallback;
    const n = Number(envValue);
    if (!Number.isInteger(n) || n < 1)
        throw new Error(`${key ?? 'Concurrency limits'} must be a positive integer, got '${envValue}'.`);
    return n;
}
