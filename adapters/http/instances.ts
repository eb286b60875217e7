/**
 * A run's durable instance as the triggers check it (domain/reconcile.ts): before an action is raised into the
 * workflow, on status reads, and from the sweep. The Durable client answers a purged (or never started) instance
 * with a 404 error, on Azure as on the embedded host; `orchestrationOf` maps it to undefined.
 */
import type { InvocationContext } from '@azure/functions';

import { isTerminal } from '../../domain/pipeline';
import { endedOutsideConflict, type InstanceState, type ReconcilePorts, reconcileRun } from '../../domain/reconcile';
import type { RunDoc } from '../../domain/run';
import { orchestrationOf } from './request';

/** What the durable backend says of the run's instance. */
export async function instanceStateOf(ctx: InvocationContext, runId: string): Promise<InstanceState> {
    const status = await orchestrationOf(ctx, runId);
    return status ? { exists: true, runtimeStatus: String(status.runtimeStatus) } : { exists: false };
}

/**
 * Before `action` is raised into a live run's workflow: if its instance ended outside the API, the run is reconciled
 * and the caller gets CONFLICT instead of an event nobody will ever read.
 */
export async function assertInstanceLive(
    ctx: InvocationContext,
    p: ReconcilePorts,
    run: RunDoc,
    correlationID: string,
    action: string,
): Promise<void> {
    if (isTerminal(run.status)) return;
    const reconciled = await reconcileRun(p, run, await instanceStateOf(ctx, run.id), correlationID);
    if (reconciled) throw endedOutsideConflict(run.id, reconciled.end, reconciled.run, action);
}

/** Status reads check a run's instance at most this often per run and process (dashboards poll). */
const READ_CHECK_MS = 5_000;
const lastReadCheck = new Map<string, number>();

/**
 * On a status read of a live run: reconciles it when its instance ended outside the API, at most every 5 s per run
 * and process. A read never fails for this: if the durable backend cannot answer, the projection is shown as stored.
 */
export async function reconciledOnRead(
    ctx: InvocationContext,
    p: ReconcilePorts,
    run: RunDoc,
    correlationID: string,
): Promise<RunDoc> {
    if (isTerminal(run.status) || run.status === 'Queued') return run;
    const now = Date.now();
    if (now - (lastReadCheck.get(run.id) ?? 0) < READ_CHECK_MS) return run;
    if (lastReadCheck.size >= 10_000) lastReadCheck.clear();
    lastReadCheck.set(run.id, now);
    try {
        return (await reconcileRun(p, run, await instanceStateOf(ctx, run.id), correlationID))?.run ?? run;
    } catch (e: unknown) {
        ctx.warn(
            `status read: the instance of run ${run.id} was not checked: ${e instanceof Error ? e.message : String(e)}`,
        );
        return run;
    }
}
