/**
 * The DurableClient inside HTTP functions talks to the Durable extension over HTTP on localhost, as on Azure.
 * On this host both ends live in one process, so by default its requests to this host's own management API
 * are answered in-process (same handler, same status codes and bodies) instead of through a socket: it saves
 * two HTTP parses per start or raise. `MESH_DURABLE_CLIENT_TRANSPORT=http` keeps real HTTP. Requests to any
 * other origin go through axios unchanged.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import type { DurableClientData } from '../invoke';
import type { DurableEngine } from './engine';
import { handleManagementApi, isManagementPath, refuseWithoutSystemKey } from './managementApi';

interface AxiosConfig {
    url?: string;
    baseURL?: string;
    method?: string;
    data?: unknown;
    headers?: unknown;
    adapter?: unknown;
}

interface AxiosStatic {
    create(config?: AxiosConfig): { defaults: AxiosConfig };
    getAdapter(adapter: unknown): (config: AxiosConfig) => Promise<unknown>;
}

export function answerDurableClientInProcess(
    origin: string,
    engine: DurableEngine,
    clientData: () => DurableClientData,
    systemKey: string,
): void {
    // The very axios module durable-functions loads (one copy in node_modules, checked by the contract suite).
    const axios = (require('axios') as { default: AxiosStatic }).default;
    const create = axios.create.bind(axios);
    axios.create = (config?: AxiosConfig) => {
        const instance = create(config);
        const fallback = axios.getAdapter(instance.defaults.adapter);
        instance.defaults.adapter = async (c: AxiosConfig) => {
            const url = new URL(c.url ?? '', c.baseURL);
            if (url.origin !== origin || !isManagementPath(url.pathname)) return fallback(c);
            const body = typeof c.data === 'string' ? Buffer.from(c.data) : Buffer.alloc(0);
            // The same key check as over HTTP: the client's URLs must carry the system key here too.
            const r =
                refuseWithoutSystemKey(systemKey, url, headerOf(c.headers, 'x-functions-key')) ??
                (await handleManagementApi(engine, clientData(), (c.method ?? 'get').toUpperCase(), url, body));
            return {
                data: r.body === undefined ? '' : JSON.stringify(r.body),
                status: r.status,
                statusText: String(r.status),
                headers: r.headers ?? {},
                config: c,
                request: {},
            };
        };
        return instance;
    };
}

function headerOf(headers: unknown, name: string): string | undefined {
    if (!headers || typeof headers !== 'object') return undefined;
    const get = (headers as { get?: unknown }).get;
    const v: unknown =
        typeof get === 'function'
            ? (get as (n: string) => unknown).call(headers, name)
            : Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1];
    return typeof v === 'string' ? v : undefined;
}
