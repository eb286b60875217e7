/**
 * Approval-link uses on Cosmos DB (`links`, pk `/id` = the jti): `use` is a `create`, and of any number of uses of
 * one link, from any instance, the database lets exactly one create the item (the others get 409: already used).
 * Items expire with the container's TTL (`COSMOS_TTL_DAYS_LINKS`, longer than any link lives) and are purged by
 * retention (`purgeAged`, by `usedAtMs`).
 */
import type { ItemDefinition } from '@azure/cosmos';

import { LinkUses } from '../../domain/ports';
import { isConflict, isoOf, itemId } from './common';
import { CosmosContext } from './cosmosContext';

export interface LinkUseItem extends ItemDefinition {
    id: string;
    jti: string;
    usedAt: string;
    /** `usedAt` in ms since the epoch, what retention compares. */
    usedAtMs: number;
}

export class CosmosLinkUses implements LinkUses {
    constructor(private readonly ctx: CosmosContext) {}

    async use(jti: string, at: string): Promise<boolean> {
        const usedAt = isoOf(at, 'at');
        const { links } = await this.ctx.containers();
        try {
            await links.items.create<LinkUseItem>({ id: itemId(jti), jti, usedAt, usedAtMs: Date.parse(usedAt) });
            return true;
        } catch (e: unknown) {
            if (isConflict(e)) return false;
            throw e;
        }
    }

    async used(jti: string): Promise<boolean> {
        const { links } = await this.ctx.containers();
        const id = itemId(jti);
        const { resource } = await links.item(id, id).read<LinkUseItem>();
        return resource !== undefined;
    }
}
