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
    };
}

interface HostJson {
    extensions?: {
        http?: { routePrefix?: string };
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
        },
    };
}

function positive(envValue: string | undefined, fallback: number): number {
    if (envValue === undefined) return fallback;
    const n = Number(envValue);
    if (!Number.isInteger(n) || n < 1)
        throw new Error(`Concurrency limits must be positive integers, got '${envValue}'.`);
    return n;
}
