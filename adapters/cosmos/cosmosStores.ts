/**
 * Every store of the app on Cosmos DB (`@azure/cosmos`): the same ports, and the same contract suites, as the embedded
 * SQLite stores. What SQLite gets from transactions, this adapter gets from single-item atomic operations:
 *
 * - `create` refuses an existing id (409): audit records (id = seq), policy versions (id = `v<n>`), link uses
 *   (id = jti), idempotency keys and rate windows are claimed that way;
 * - `replace` with `IfMatch: <_etag>` refuses a stale read (412): run updates and the admission semaphore retry on it;
 * - patch `incr` counts atomically: rate windows.
 *
 * Where two items must change together (a keyed run and its key, an audit record and its outbox entry, a purge), the
 * writes are ordered so that a crash in between leaves a state the next call repairs: see runStore.ts,
 * eventOutbox.ts and retentionStore.ts. Layout, TTLs and lazy initialisation: cosmosContext.ts.
 *
 * `openCosmosStores` does no I/O and returns at once; the client, database and containers are created on first use.
 */
import { AppStores } from '../../domain/ports';
import { CosmosAdmissionSlots } from './admissionSlots';
import { CosmosAuditLog } from './auditLog';
import { CosmosConfig } from './config';
import { Containers, CosmosContext, CosmosStoreOptions } from './cosmosContext';
import { CosmosEventOutbox } from './eventOutbox';
import { CosmosLinkUses } from './linkUses';
import { CosmosPolicyStore } from './policyStore';
import { CosmosRateCounters } from './rateCounters';
import { CosmosRetentionStore } from './retentionStore';
import { CosmosRunStore } from './runStore';

export type { CosmosStoreOptions } from './cosmosContext';

export interface CosmosStores extends AppStores {
    /** The containers (created if needed): for operations and tests that look at the items themselves. */
    containers(): Promise<Containers>;
    /** Disposes the client; the stores must not be used afterwards. */
    close(): Promise<void>;
}

export function openCosmosStores(config: CosmosConfig, options: CosmosStoreOptions = {}): CosmosStores {
    const ctx = new CosmosContext(config, options);
    const slots = new CosmosAdmissionSlots(ctx);
    return {
        runs: new CosmosRunStore(ctx),
        audit: new CosmosAuditLog(ctx, options.chainKeys),
        policies: new CosmosPolicyStore(ctx),
        outbox: new CosmosEventOutbox(ctx),
        linkUses: new CosmosLinkUses(ctx),
        slots,
        rateCounters: new CosmosRateCounters(ctx),
        retention: new CosmosRetentionStore(ctx, slots),
        containers: () => ctx.containers(),
        close: () => ctx.close(),
    };
}
