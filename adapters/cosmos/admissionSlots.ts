/**
 * Admission slots on Cosmos DB (`admission`, pk `/id`): one semaphore item, id `slots`, holding the ids of the runs
 * that hold a slot. Acquire and release read it and replace it with `IfMatch: <_etag>`; a 412 (another instance
 * changed it in between) reads again, so the capacity check and the change are atomic across instances. A run that
 * already holds a slot keeps it (acquire is idempotent for a holder), and releasing a slot not held writes nothing.
 *
 * One item for the fleet is a deliberate hot spot: admissions are few (one per run start and end), and a single item
 * is the only way to count holders atomically without a transaction.
 */
import type { Container, ItemDefinition } from '@azure/cosmos';

import { AdmissionSlots } from '../../domain/ports';
import { backoff, isConflict, isNotFound, isPreconditionFailed, MAX_ATTEMPTS } from './common';
import { CosmosContext } from './cosmosContext';

const SEMAPHORE = 'slots';

interface SemaphoreItem extends ItemDefinition {
    id: string;
    holders: string[];
    _etag?: string;
}

export class CosmosAdmissionSlots implements AdmissionSlots {
    constructor(private readonly ctx: CosmosContext) {}

    async acquire(runId: string, capacity: number): Promise<boolean> {
        return this.change((holders) => {
            if (holders.includes(runId)) return { result: true };
            if (holders.length >= capacity) return { result: false };
            return { result: true, holders: [...holders, runId] };
        });
    }

    async release(runId: string): Promise<void> {
        await this.change((holders) =>
            holders.includes(runId)
                ? { result: undefined, holders: holders.filter((h) => h !== runId) }
                : { result: undefined },
        );
    }

    async held(): Promise<number> {
        return (await this.holders()).length;
    }

    async holders(): Promise<string[]> {
        const { admission } = await this.ctx.containers();
        const { resource } = await admission.item(SEMAPHORE, SEMAPHORE).read<SemaphoreItem>();
        return [...(resource?.holders ?? [])];
    }

    /** Read, decide, and (if `decide` returns new holders) replace with IfMatch; again on 412. */
    private async change<T>(decide: (holders: readonly string[]) => { result: T; holders?: string[] }): Promise<T> {
        const { admission } = await this.ctx.containers();
        for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
            const item = await this.semaphore(admission);
            const { result, holders } = decide(item.holders);
            if (!holders) return result;
            try {
                await admission
                    .item(SEMAPHORE, SEMAPHORE)
                    .replace<SemaphoreItem>(
                        { id: SEMAPHORE, holders },
                        { accessCondition: { type: 'IfMatch', condition: item._etag! } },
                    );
                return result;
            } catch (e: unknown) {
                if (!isPreconditionFailed(e) && !isNotFound(e)) throw e;
                await backoff(attempt);
            }
        }
        throw new Error(`The admission semaphore changed ${MAX_ATTEMPTS} times in a row under this instance.`);
    }

    /** The semaphore item, created empty on first use. */
    private async semaphore(admission: Container): Promise<SemaphoreItem> {
        for (;;) {
            const { resource } = await admission.item(SEMAPHORE, SEMAPHORE).read<SemaphoreItem>();
            if (resource) return resource;
            try {
                return (await admission.items.create<SemaphoreItem>({ id: SEMAPHORE, holders: [] })).resource!;
            } catch (e: unknown) {
                if (!isConflict(e)) throw e; // another instance created it: read that one
            }
        }
    }
}
