/**
 * Where lifecycle events are published: the Event Grid topic endpoint and its access key. This module is the only
 * reader of `EVENTGRID_*`. On Azure they come from app settings (the key from Key Vault); the embedded host points
 * them at its local Event Grid stand-in.
 */

type Env = Readonly<Record<string, string | undefined>>;

export interface EventGridConfig {
    /** The topic's endpoint, e.g. `https://<topic>.<region>-1.eventgrid.azure.net/api/events`. */
    readonly endpoint: string;
    /** The topic's access key (sent as `aeg-sas-key`); absent: Entra ID (`DefaultAzureCredential`, workload identity). */
    readonly key?: string;
}

/**
 * Parses `EVENTGRID_ENDPOINT` and `EVENTGRID_KEY` without caching. No endpoint means publishing is off (undefined);
 * an endpoint without a key authenticates with Entra ID; one that is not an http(s) URL is a configuration error.
 */
export function parseEventGridConfig(env: Env): EventGridConfig | undefined {
    const endpoint = env.EVENTGRID_ENDPOINT?.trim();
    if (!endpoint) return undefined;
    let url: URL;
    try {
        url = new URL(endpoint);
    } catch {
        throw new Error(`EVENTGRID_ENDPOINT must be an http(s) URL, got '${endpoint}'.`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw new Error(`EVENTGRID_ENDPOINT must be an http(s) URL, got '${endpoint}'.`);
    const key = env.EVENTGRID_KEY?.trim();
    return Object.freeze(key ? { endpoint, key } : { endpoint });
}

let cached: { value: EventGridConfig | undefined } | undefined;

/** The Event Grid settings of this process, read from `process.env` on first use and cached. */
export function eventGridConfig(): EventGridConfig | undefined {
    cached ??= { value: parseEventGridConfig(process.env) };
    return cached.value;
}

/** Forgets the cached settings so a test can change the environment and read them again. */
export function resetEventGridConfigForTests(): void {
    cached = undefined;
}
