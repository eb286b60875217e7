/**
 * Where the Cosmos DB stores live and how long their short-lived items are kept, parsed from the environment handed
 * in (the composition root passes `process.env`; this module never reads it itself).
 *
 * - `COSMOS_ENDPOINT` (required): the account endpoint, `https://<account>.documents.azure.com:443/`. Plain `http://`
 *   is accepted on loopback only (the local Cosmos-API server of the tests), so an account key never crosses a network
 *   in clear text.
 * - `COSMOS_KEY` (optional): the account key. Without it the stores authenticate with Entra ID
 *   (`DefaultAzureCredential`: the workload identity on AKS), which is the way to run on Azure.
 * - `COSMOS_DATABASE` (default `mesh`).
 * - `COSMOS_TTL_DAYS` (default 90): the time to live of the containers whose items expire by themselves
 *   (`links`, `idempotency`, `outbox`, `ratelimits`); `COSMOS_TTL_DAYS_<CONTAINER>` overrides it for one of them
 *   (e.g. `COSMOS_TTL_DAYS_LINKS=30`). Runs, outputs, audit and policies never expire by TTL (a per-item TTL would cut
 *   the head off a live run's hash chain); the retention job purges whole runs once they ended, so an override for
 *   one of those is refused rather than silently ignored.
 * - `COSMOS_DISABLE_ENDPOINT_DISCOVERY` (`true`/`false`): the SDK otherwise switches to the regional endpoints the
 *   account metadata names, which the local server answers with an https address it does not serve. Defaults to true
 *   for an `http://` loopback endpoint, false otherwise.
 *
 * Every problem is reported at once, in one Error; no message ever contains the key (nor the endpoint value, in case
 * someone pasted a connection string with its `AccountKey=` into it).
 */

type Env = Readonly<Record<string, string | undefined>>;

/** The containers whose items expire by themselves, each with its own `COSMOS_TTL_DAYS_<NAME>` override. */
export const EXPIRING_CONTAINERS = ['links', 'idempotency', 'outbox', 'ratelimits'] as const;
export type ExpiringContainer = (typeof EXPIRING_CONTAINERS)[number];

/** The containers kept until the retention job removes what they hold (TTL on, nothing expiring by itself). */
export const RETAINED_CONTAINERS = ['runs', 'outputs', 'audit', 'policies', 'admission'] as const;

export interface CosmosConfig {
    /** The account endpoint (an https URL; http on loopback only). */
    readonly endpoint: string;
    /**
     * The account key, or undefined for Entra ID. Not enumerable, so logging or serialising the config never shows it
     * (spread or JSON.stringify leave it out): read it by name.
     */
    readonly key: string | undefined;
    readonly database: string;
    /** Time to live of each expiring container, in days. */
    readonly ttlDays: Readonly<Record<ExpiringContainer, number>>;
    /** Passed to the SDK as `connectionPolicy.enableEndpointDiscovery = !disableEndpointDiscovery`. */
    readonly disableEndpointDiscovery: boolean;
}

const DEFAULT_DATABASE = 'mesh';
const DEFAULT_TTL_DAYS = 90;
/** Cosmos DB caps `defaultTtl` at 2^31 - 1 seconds. */
const MAX_TTL_DAYS = Math.floor((2 ** 31 - 1) / 86_400);
const TTL_PREFIX = 'COSMOS_TTL_DAYS_';

/** Parses the `COSMOS_*` settings from `env` without caching; throws one Error naming every problem. */
export function parseCosmosConfig(env: Env): CosmosConfig {
    const problems: string[] = [];

    const endpointText = env.COSMOS_ENDPOINT?.trim() ?? '';
    let endpoint: URL | undefined;
    if (!endpointText) problems.push('COSMOS_ENDPOINT is required');
    else {
        endpoint = urlOf(endpointText);
        if (!endpoint || (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:')) {
            problems.push('COSMOS_ENDPOINT must be an http(s) URL');
            endpoint = undefined;
        } else if (endpoint.protocol === 'http:' && !isLoopback(endpoint.hostname)) {
            problems.push('COSMOS_ENDPOINT must use https (plain http is accepted on loopback only)');
            endpoint = undefined;
        } else if (endpoint.username || endpoint.password || endpoint.search) {
            problems.push('COSMOS_ENDPOINT must be the bare account URL (no credentials, no query)');
            endpoint = undefined;
        }
    }

    const database = env.COSMOS_DATABASE?.trim() || DEFAULT_DATABASE;
    if (!/^[^/\\?#]{1,255}$/.test(database)) {
        problems.push('COSMOS_DATABASE must be 1 to 255 characters without / \\ ? or #');
    }

    const defaultDays = daysOf(env, 'COSMOS_TTL_DAYS', DEFAULT_TTL_DAYS, problems);
    const ttlDays = Object.fromEntries(
        EXPIRING_CONTAINERS.map((name) => [
            name,
            daysOf(env, `${TTL_PREFIX}${name.toUpperCase()}`, defaultDays, problems),
        ]),
    ) as Record<ExpiringContainer, number>;
    const known = new Set(EXPIRING_CONTAINERS.map((name) => `${TTL_PREFIX}${name.toUpperCase()}`));
    for (const name of Object.keys(env).sort()) {
        if (!name.startsWith(TTL_PREFIX) || known.has(name) || env[name] === undefined) continue;
        const container = name.slice(TTL_PREFIX.length).toLowerCase();
        problems.push(
            (RETAINED_CONTAINERS as readonly string[]).includes(container)
                ? `${name} is not supported: ${container} never expires by TTL (the retention job purges whole runs)`
                : `${name} names no expiring container (${EXPIRING_CONTAINERS.join(', ')})`,
        );
    }

    const discovery = env.COSMOS_DISABLE_ENDPOINT_DISCOVERY?.trim().toLowerCase();
    let disableEndpointDiscovery = endpoint?.protocol === 'http:';
    if (discovery) {
        if (['true', '1', 'yes'].includes(discovery)) disableEndpointDiscovery = true;
        else if (['false', '0', 'no'].includes(discovery)) disableEndpointDiscovery = false;
        else problems.push('COSMOS_DISABLE_ENDPOINT_DISCOVERY must be true or false');
    }

    if (problems.length > 0 || !endpoint) {
        throw new Error(`Invalid Cosmos DB configuration: ${problems.join('; ')}.`);
    }
    const config = {
        endpoint: endpointText,
        database,
        ttlDays: Object.freeze(ttlDays),
        disableEndpointDiscovery,
    };
    Object.defineProperty(config, 'key', { value: env.COSMOS_KEY?.trim() || undefined, enumerable: false });
    return Object.freeze(config) as CosmosConfig;
}

function urlOf(text: string): URL | undefined {
    try {
        return new URL(text);
    } catch {
        return undefined;
    }
}

function isLoopback(hostname: string): boolean {
    const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
    return host === 'localhost' || host === '::1' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

/** A whole number of days, 1 … MAX_TTL_DAYS; `fallback` when the setting is absent. */
function daysOf(env: Env, name: string, fallback: number, problems: string[]): number {
    const text = env[name]?.trim();
    if (!text) return fallback;
    const days = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(days) || days < 1 || days > MAX_TTL_DAYS) {
        problems.push(`${name} must be a whole number of days from 1 to ${MAX_TTL_DAYS}`);
        return fallback;
    }
    return days;
}
