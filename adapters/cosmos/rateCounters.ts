/**
 * Rate-limit counters on Cosmos DB (`ratelimits`, pk `/id` = key and window start): one item per (key, window),
 * counted with a patch `incr` (atomic on the server, and it answers the new count), created with count 1 on first
 * use (a 409 means another instance created it first: patch again). Each item carries a `ttl` that lets Cosmos DB
 * drop the window a minute after it ended (the port allows forgetting a window once it is over); retention's
 * `purgeAged` removes ended windows too (by `windowEnd`), which is what the local server, which does not enforce TTL,
 * relies on.
 */
import type { ItemDefinition } from '@azure/cosmos';

import { ValidationError } from '../../domain/errors';
import { RateCounters } from '../../domain/ports';
import { isConflict, isNotFound, itemId, MAX_ATTEMPTS } from './common';
import { CosmosContext } from './cosmosContext';

export interface RateWindowItem extends ItemDefinition {
    id: string;
    key: string;
    windowStart: number;
    windowMs: number;
    /** windowStart + windowMs: what retention compares. */
    windowEnd: number;
    count: number;
    ttl: number;
}

/** How long a window is kept after it ended, in seconds. */
const GRACE_S = 60;
/** Cosmos DB's largest item ttl. */
const MAX_TTL_S = 2 ** 31 - 1;

export class CosmosRateCounters implements RateCounters {
    constructor(private readonly ctx: CosmosContext) {}

    async increment(key: string, windowStart: number, windowMs: number): Promise<number> {
        if (!Number.isSafeInteger(windowStart) || !Number.isSafeInteger(windowMs) || windowMs <= 0) {
            throw new ValidationError([
                { path: 'window', message: 'windowStart and windowMs must be whole ms, windowMs > 0' },
            ]);
        }
        const { ratelimits } = await this.ctx.containers();
        const id = itemId(`${key}|${windowStart}`);
        for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
            try {
                const { resource } = await ratelimits
                    .item(id, id)
                    .patch<RateWindowItem>([{ op: 'incr', path: '/count', value: 1 }]);
                if (!resource) throw new Error('Cosmos DB answered a patch without the item');
                return resource.count;
            } catch (e: unknown) {
                if (!isNotFound(e)) throw e;
            }
            const windowEnd = windowStart + windowMs;
            const ttl = Math.min(MAX_TTL_S, Math.max(1, Math.ceil((windowEnd - Date.now()) / 1000)) + GRACE_S);
            try {
                await ratelimits.items.create<RateWindowItem>({
                    id,
                    key,
                    windowStart,
                    windowMs,
                    windowEnd,
                    count: 1,
                    ttl,
                });
                return 1;
            } catch (e: unknown) {
                if (!isConflict(e)) throw e;
            }
        }
        throw new Error('A rate window kept appearing and vanishing.');
    }
}
