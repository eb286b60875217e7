import type { Deps } from '../deps';
import type { StateSource } from './metrics';

/**
 * The scrape-time gauges' view of the stores: one grouped count of runs by status (queued runs are the admission
 * queue; each run awaiting approval has one open checkpoint), the oldest open checkpoint, and the outbox count.
 */
export function storeState(d: Pick<Deps, 'runs' | 'outbox'>): StateSource {
    let counts: ReturnType<Deps['runs']['stateCounts']> | undefined;
    // The three run gauges share one read: the metrics module asks for a fresh source for every scrape.
    const read = (): ReturnType<Deps['runs']['stateCounts']> => (counts ??= d.runs.stateCounts());
    return {
        runsByStatus: async () => (await read()).byStatus,
        openCheckpoints: async () => {
            const c = await read();
            return { open: c.byStatus.AwaitingApproval ?? 0, oldestOpenedAt: c.oldestOpenedAt };
        },
        admissionQueueDepth: async () => (await read()).byStatus.Queued ?? 0,
        eventsPending: () => d.outbox.pendingCount(),
    };
}
