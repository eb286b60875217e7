/**
 * The Cosmos DB client and containers behind every store, created lazily. Opening the stores does no I/O; the first
 * operation creates the client (loading `@azure/cosmos`, and `@azure/identity` when there is no key), the database
 * and the containers if they do not exist, and every operation awaits that one promise. A failed initialisation is
 * not cached: the next operation tries again (the account may just have been unreachable).
 *
 * Layout (DESIGN.md "Storage"):
 *
 * | container     | partition key | id                         | TTL                            |
 * |---------------|---------------|----------------------------|--------------------------------|
 * | `runs`        | `/id`         | run id                     | on, nothing expires (-1)       |
 * | `outputs`     | `/runId`      | output key                 | on, nothing expires (-1)       |
 * | `audit`       | `/runId`      | zero-padded seq            | on, nothing expires (-1)       |
 * | `policies`    | `/id`         | `v<version>`               | on, nothing expires (-1)       |
 * | `admission`   | `/id`         | `slots` (the semaphore)    | on, nothing expires (-1)       |
 * | `links`       | `/id`         | jti                        | `COSMOS_TTL_DAYS[_LINKS]`      |
 * | `idempotency` | `/id`         | sha256(createdBy \n key)   | `COSMOS_TTL_DAYS[_IDEMPOTENCY]`|
 * | `outbox`      | `/id`         | event id `runId:seq`       | `COSMOS_TTL_DAYS[_OUTBOX]`     |
 * | `ratelimits`  | `/id`         | key and window start       | `COSMOS_TTL_DAYS[_RATELIMITS]`, item `ttl` |
 *
 * Runs, outputs, audit and policies keep TTL on with `defaultTtl: -1` rather than a period: a per-item TTL would
 * cut the head off a live run's hash chain, so whole runs are purged by the retention job once they ended. (The
 * `admission` container, which DESIGN.md does not list, follows them: its one document must never expire.)
 *
 * Indexing, beyond the defaults: `runs` has the composite indexes its two two-field ORDER BYs need (list: createdAt
 * desc, id desc; retention: updatedAt asc, id asc), and every container leaves out of the index the bulky fields no
 * query filters on (run input/output/stages/checkpoints, output values, audit details, outbox records): the RU
 * charge of a write grows with the number of indexed paths. `audit` has a unique key on `/eventId` (per run, as
 * unique keys are per logical partition), the guard behind append's idempotency under concurrency.
 *
 * An existing container is checked, not trusted: a different partition key, or an audit container without the
 * unique key, is an error (those cannot be changed in place); a different TTL or missing composite indexes are
 * brought in line with a container replace, so a changed `COSMOS_TTL_DAYS_*` takes effect on the next start.
 */
import type {
    CompositePath,
    Container,
    ContainerDefinition,
    CosmosClient,
    CosmosClientOptions,
    Database,
    IndexingPolicy,
} from '@azure/cosmos';

import type { ChainKeyLoader } from '../audit/chainKeys';
import { isConflict, isNotFound, MicroClock } from './common';
import { CosmosConfig, ExpiringContainer } from './config';

export const CONTAINER_NAMES = [
    'runs',
    'outputs',
    'audit',
    'policies',
    'links',
    'idempotency',
    'outbox',
    'ratelimits',
    'admission',
] as const;
export type ContainerName = (typeof CONTAINER_NAMES)[number];

export type Containers = Readonly<Record<ContainerName, Container>>;

export interface CosmosStoreOptions {
    /** The Entra ID credential to use when the config has no key (default: `DefaultAzureCredential`). */
    credential?: CosmosClientOptions['aadCredentials'];
    /**
     * How far back `changesSince` looks behind its cursor, in ms (default 5000): the longest a run write may take
     * from taking its timestamp to being visible, plus the clock skew between instances (see runStore.ts).
     */
    changeLookbackMs?: number;
    /** How long a published outbox entry is kept as a tombstone, in seconds (default 3 days; see eventOutbox.ts). */
    outboxTombstoneSeconds?: number;
    /** The audit chain's keys (default: a key that lives only in this process; adapters/deps.ts passes the ring). */
    chainKeys?: ChainKeyLoader;
}

const DAY_S = 86_400;
const NEVER_EXPIRES = -1;

/** Paths no query filters on; always with the root included (Cosmos DB needs `/*` when anything is excluded). */
function indexing(excluded: readonly string[], compositeIndexes?: CompositePath[][]): IndexingPolicy {
    return {
        indexingMode: 'consistent',
        automatic: true,
        includedPaths: [{ path: '/*' }],
        excludedPaths: [{ path: '/"_etag"/?' }, ...excluded.map((path) => ({ path }))],
        ...(compositeIndexes ? { compositeIndexes } : {}),
    };
}

/** The definition of every container, from the configured TTLs. */
export function containerDefinitions(config: CosmosConfig): Record<ContainerName, ContainerDefinition> {
    const expiring = (name: ExpiringContainer) => config.ttlDays[name] * DAY_S;
    const byId = { paths: ['/id'] };
    const byRun = { paths: ['/runId'] };
    return {
        runs: {
            id: 'runs',
            partitionKey: byId,
            defaultTtl: NEVER_EXPIRES,
            indexingPolicy: indexing(
                ['/input/*', '/output/*', '/stages/*', '/checkpoints/*', '/nextAction/*'],
                [
                    [
                        { path: '/_createdAt', order: 'descending' },
                        { path: '/id', order: 'descending' },
                    ],
                    [
                        { path: '/_updatedAt', order: 'ascending' },
                        { path: '/id', order: 'ascending' },
                    ],
                ],
            ),
        },
        outputs: {
            id: 'outputs',
            partitionKey: byRun,
            defaultTtl: NEVER_EXPIRES,
            indexingPolicy: indexing(['/value/*']),
        },
        audit: {
            id: 'audit',
            partitionKey: byRun,
            defaultTtl: NEVER_EXPIRES,
            uniqueKeyPolicy: { uniqueKeys: [{ paths: ['/eventId'] }] },
            indexingPolicy: indexing(['/details/*']),
        },
        policies: {
            id: 'policies',
            partitionKey: byId,
            defaultTtl: NEVER_EXPIRES,
            indexingPolicy: indexing(['/policy/*']),
        },
        admission: { id: 'admission', partitionKey: byId, defaultTtl: NEVER_EXPIRES, indexingPolicy: indexing([]) },
        links: { id: 'links', partitionKey: byId, defaultTtl: expiring('links'), indexingPolicy: indexing([]) },
        idempotency: {
            id: 'idempotency',
            partitionKey: byId,
            defaultTtl: expiring('idempotency'),
            indexingPolicy: indexing([]),
        },
        outbox: {
            id: 'outbox',
            partitionKey: byId,
            defaultTtl: expiring('outbox'),
            indexingPolicy: indexing(['/record/*']),
        },
        ratelimits: {
            id: 'ratelimits',
            partitionKey: byId,
            defaultTtl: expiring('ratelimits'),
            indexingPolicy: indexing([]),
        },
    };
}

/** The client, the lazily initialised containers and the write clock every store module shares. */
export class CosmosContext {
    readonly clock = new MicroClock();
    readonly changeLookbackMs: number;
    readonly outboxTombstoneSeconds: number;
    private client: Promise<CosmosClient> | undefined;
    private ready: Promise<Containers> | undefined;
    private closed = false;

    constructor(
        private readonly config: CosmosConfig,
        private readonly options: CosmosStoreOptions = {},
    ) {
        this.changeLookbackMs = options.changeLookbackMs ?? 5000;
        // Never longer than the outbox container's own TTL (a tombstone must not outlive what it stands for).
        this.outboxTombstoneSeconds = Math.min(
            options.outboxTombstoneSeconds ?? 3 * DAY_S,
            config.ttlDays.outbox * DAY_S,
        );
    }

    /** The containers, created on first use (once; a failure is retried by the next call). */
    containers(): Promise<Containers> {
        if (this.closed) return Promise.reject(new Error('The Cosmos DB stores are closed.'));
        this.ready ??= this.initialise().catch((e: unknown) => {
            this.ready = undefined;
            throw e;
        });
        return this.ready;
    }

    /** Disposes the client (if one was made); the stores must not be used afterwards. */
    async close(): Promise<void> {
        this.closed = true;
        const client = this.client;
        this.client = undefined;
        this.ready = undefined;
        if (client) (await client.catch(() => undefined))?.dispose();
    }

    private async initialise(): Promise<Containers> {
        const client = await (this.client ??= this.makeClient().catch((e: unknown) => {
            this.client = undefined;
            throw e;
        }));
        const database = await ensureDatabase(client, this.config.database);
        const definitions = containerDefinitions(this.config);
        const entries = await Promise.all(
            CONTAINER_NAMES.map(async (name) => [name, await ensureContainer(database, definitions[name])] as const),
        );
        if (this.closed) throw new Error('The Cosmos DB stores are closed.');
        return Object.freeze(Object.fromEntries(entries) as Record<ContainerName, Container>);
    }

    private async makeClient(): Promise<CosmosClient> {
        const { CosmosClient } = await import('@azure/cosmos');
        const common: CosmosClientOptions = {
            endpoint: this.config.endpoint,
            connectionPolicy: { enableEndpointDiscovery: !this.config.disableEndpointDiscovery },
            userAgentSuffix: 'mesh-orchestrator',
        };
        if (this.config.key !== undefined) return new CosmosClient({ ...common, key: this.config.key });
        const credential = this.options.credential ?? new (await import('@azure/identity')).DefaultAzureCredential();
        return new CosmosClient({ ...common, aadCredentials: credential });
    }
}

async function ensureDatabase(client: CosmosClient, id: string): Promise<Database> {
    try {
        return (await client.databases.createIfNotExists({ id })).database;
    } catch (e: unknown) {
        // Another instance created it between the SDK's read and create.
        if (!isConflict(e)) throw e;
        return (await client.databases.createIfNotExists({ id })).database;
    }
}

async function ensureContainer(database: Database, wanted: ContainerDefinition): Promise<Container> {
    const id = wanted.id!;
    const container = database.container(id);
    let existing: ContainerDefinition | undefined;
    try {
        existing = (await container.read()).resource;
    } catch (e: unknown) {
        if (!isNotFound(e)) throw e;
    }
    if (!existing) {
        try {
            await database.containers.create(wanted);
            return container;
        } catch (e: unknown) {
            if (isForbidden(e))
                throw new Error(
                    `Cosmos DB container '${id}' does not exist, and this identity may not create it (Entra ID ` +
                        'data-plane roles cannot): create it with infra/bicep/main.bicep.',
                );
            if (!isConflict(e)) throw e;
            existing = (await container.read()).resource;
            if (!existing) throw new Error(`Cosmos DB container '${id}' was created concurrently but cannot be read.`);
        }
    }
    await reconcile(container, existing, wanted);
    return container;
}

const pathsOf = (definition: ContainerDefinition) => JSON.stringify(definition.partitionKey?.paths ?? []);
const compositeKey = (paths: readonly CompositePath[]) =>
    paths.map((p) => `${p.path} ${p.order ?? 'ascending'}`).join(', ');

async function reconcile(container: Container, existing: ContainerDefinition, wanted: ContainerDefinition) {
    const id = wanted.id!;
    if (pathsOf(existing) !== pathsOf(wanted)) {
        throw new Error(
            `Cosmos DB container '${id}' is partitioned by ${pathsOf(existing)}, not ${pathsOf(wanted)}; ` +
                'it cannot be changed in place (migrate the data to a new container).',
        );
    }
    for (const unique of wanted.uniqueKeyPolicy?.uniqueKeys ?? []) {
        const has = (existing.uniqueKeyPolicy?.uniqueKeys ?? []).some(
            (k) => JSON.stringify(k.paths) === JSON.stringify(unique.paths),
        );
        if (!has) {
            throw new Error(
                `Cosmos DB container '${id}' lacks the unique key ${JSON.stringify(unique.paths)}; ` +
                    'unique keys are fixed at creation (migrate the data to a new container).',
            );
        }
    }
    const have = new Set((existing.indexingPolicy?.compositeIndexes ?? []).map(compositeKey));
    const missing = (wanted.indexingPolicy?.compositeIndexes ?? []).filter((c) => !have.has(compositeKey(c)));
    if (existing.defaultTtl === wanted.defaultTtl && missing.length === 0) return;
    try {
        await replaceDefinition(container, existing, wanted, missing);
    } catch (e: unknown) {
        // With Entra ID and key-based metadata writes disabled (infra/bicep), containers are infrastructure: the app
        // works with what is there and says what differs, rather than refusing to start.
        if (!isForbidden(e)) throw e;
        console.warn(
            `Cosmos DB container '${id}' differs from what this build expects (defaultTtl ${String(existing.defaultTtl)} ` +
                `vs ${String(wanted.defaultTtl)}; ${missing.length} composite indexes missing) and this identity may not ` +
                'change it: apply infra/bicep/main.bicep.',
        );
    }
}

function isForbidden(e: unknown): boolean {
    return (e as { code?: unknown } | null)?.code === 403;
}

async function replaceDefinition(
    container: Container,
    existing: ContainerDefinition,
    wanted: ContainerDefinition,
    missing: CompositePath[][],
): Promise<void> {
    const id = wanted.id!;
    await container.replace({
        id,
        partitionKey: existing.partitionKey,
        ...(existing.uniqueKeyPolicy ? { uniqueKeyPolicy: existing.uniqueKeyPolicy } : {}),
        indexingPolicy:
            missing.length === 0
                ? existing.indexingPolicy
                : {
                      ...existing.indexingPolicy,
                      compositeIndexes: [...(existing.indexingPolicy?.compositeIndexes ?? []), ...missing],
                  },
        defaultTtl: wanted.defaultTtl,
    });
}
