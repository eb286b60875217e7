/**
 * Checkpoint policies on Cosmos DB (`policies`, pk `/id`): one immutable item per version, id `v<version>`, so the
 * history can be read back. Saving version n+1 is a `create` of `v<n+1>`: of two editors who both read version n,
 * the database lets exactly one create it, and the other's 409 is the CONFLICT the port promises. The current policy
 * is the highest version (`TOP 1 … ORDER BY version DESC`), the default one (version 0) until someone saves another.
 */
import type { ItemDefinition } from '@azure/cosmos';

import { ConflictError } from '../../domain/errors';
import { CheckpointPolicy, DEFAULT_POLICY, policyBody, VersionedPolicy } from '../../domain/policy';
import { PolicyStore } from '../../domain/ports';
import { isConflict } from './common';
import { CosmosContext } from './cosmosContext';

interface PolicyItem extends ItemDefinition {
    id: string;
    version: number;
    updatedAt: string;
    updatedBy: string;
    policy: CheckpointPolicy;
}

export class CosmosPolicyStore implements PolicyStore {
    constructor(private readonly ctx: CosmosContext) {}

    async get(): Promise<VersionedPolicy> {
        return this.current();
    }

    async put(policy: CheckpointPolicy, expectedVersion: number, actor: string, at: string): Promise<VersionedPolicy> {
        const { policies } = await this.ctx.containers();
        const current = (await this.current()).version;
        if (expectedVersion !== current) throw stale(expectedVersion, current);
        const body = policyBody(policy);
        const version = current + 1;
        try {
            await policies.items.create<PolicyItem>({
                id: `v${version}`,
                version,
                updatedAt: at,
                updatedBy: actor,
                policy: body,
            });
        } catch (e: unknown) {
            // Another editor saved this version first.
            if (isConflict(e)) throw stale(expectedVersion, (await this.current()).version);
            throw e;
        }
        return structuredClone({ ...body, version, updatedAt: at, updatedBy: actor });
    }

    private async current(): Promise<VersionedPolicy> {
        const { policies } = await this.ctx.containers();
        const { resources } = await policies.items
            .query<PolicyItem>('SELECT TOP 1 * FROM c ORDER BY c.version DESC')
            .fetchAll();
        const item = resources[0];
        if (!item) {
            return {
                ...structuredClone(DEFAULT_POLICY),
                version: 0,
                updatedAt: '1970-01-01T00:00:00.000Z',
                updatedBy: 'system',
            };
        }
        return { ...item.policy, version: item.version, updatedAt: item.updatedAt, updatedBy: item.updatedBy };
    }
}

function stale(expectedVersion: number, currentVersion: number): ConflictError {
    return new ConflictError(`The policy is at version ${currentVersion}, not ${expectedVersion}.`, {
        expectedVersion,
        currentVersion,
    });
}
