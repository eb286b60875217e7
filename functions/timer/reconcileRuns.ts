/**
 * reconcileRuns: the sweep behind domain/reconcile.ts (`MESH_RECONCILE_SCHEDULE`, every 5 minutes by default). Live
 * runs (Running, AwaitingApproval, Paused; never Queued, which admission owns) whose durable instance was terminated,
 * failed or purged outside the API are recorded Aborted or Failed. Decisions, stops, resumes and status reads do the
 * same at once; the sweep catches the runs nobody touches, Running ones included, whose admission slot it frees.
 */
import { randomUUID } from 'node:crypto';

import { app, InvocationContext, Timer } from '@azure/functions';
import * as df from 'durable-functions';

import { reconcileSchedule } from '../../adapters/config';
import { type Deps, deps } from '../../adapters/deps';
import { instanceStateOf } from '../../adapters/http/instances';
import { reconcileRun } from '../../domain/reconcile';

const LIVE = ['Running', 'AwaitingApproval', 'Paused'] as const;

export async function reconcileRuns(
    _timer: Timer,
    ctx: InvocationContext,
    d: Pick<Deps, 'runs' | 'steps'>,
): Promise<{ checked: number; reconciled: number; failed: number }> {
    const correlationID = randomUUID();
    const summary = { checked: 0, reconciled: 0, failed: 0 };
    let token: string | undefined;
    do {
        const page = await d.runs.list({ status: [...LIVE] }, 100, token);
        for (const run of page.items) {
            summary.checked++;
            try {
                const done = await reconcileRun(d.steps, run, await instanceStateOf(ctx, run.id), correlationID);
                if (done) summary.reconciled++;
            } catch (e: unknown) {
                summary.failed++;
                ctx.warn(`reconcileRuns: run ${run.id} not checked: ${e instanceof Error ? e.message : String(e)}`);
            }
        }
        token = page.continuationToken;
    } while (token);
    if (summary.reconciled || summary.failed)
        ctx.warn(
            `reconcileRuns: ${summary.reconciled} of ${summary.checked} live runs had a workflow that ended outside ` +
                `the API (recorded Aborted/Failed); ${summary.failed} could not be checked`,
        );
    return summary;
}

app.timer('reconcileRuns', {
    schedule: reconcileSchedule(),
    extraInputs: [df.input.durableClient()],
    handler: async (timer: Timer, ctx: InvocationContext) => {
        await reconcileRuns(timer, ctx, deps());
    },
});
