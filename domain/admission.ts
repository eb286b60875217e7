/**
 * Admission: a submitted run is stored `Queued` and put on the admission queue; the admitter takes the queue in
 * order and starts a run's workflow once the run holds one of the `capacity` slots. A slot frees when its run stops
 * executing: it waits for a person, is paused, or ends (see `slotFreedBy`). A run resuming after a decision needs no
 * new slot, so capacity bounds admission of new work, never the completion of work already admitted.
 */
import { isTerminal, type RunStatus } from './pipeline';
import type { AdmissionMessage, AdmissionSlots, RunStore } from './ports';
import type { RunDoc } from './run';

export interface AdmissionPorts {
    runs: Pick<RunStore, 'get'>;
    slots: AdmissionSlots;
    /** Whether the durable backend already has the run's workflow (a duplicate message, or a retry after a crash). */
    started(runId: string): Promise<boolean>;
    /** Starts the run's workflow (instance id = run id). */
    start(run: RunDoc): Promise<void>;
    /** Resolves when a slot may have been freed, or after `ms` at the latest. */
    slotFreed(ms: number): Promise<void>;
    /** Frees slots whose release a crash cut off (see `reclaimSlots`); may do nothing if it ran moments ago. */
    reclaim(): Promise<void>;
    now(): number;
}

export interface AdmissionOptions {
    capacity: number;
    /** How long one delivery waits for a free slot before it gives the message back to the queue. */
    waitMs: number;
}

/**
 * No slot came free while the message was held: the message goes back to its place at the head of the queue (Service
 * Bus abandon) and is delivered again, so order is kept and nothing is lost.
 */
export class CapacityWaitError extends Error {
    constructor(
        readonly runId: string,
        readonly capacity: number,
    ) {
        super(`All ${capacity} slots are held; run ${runId} stays queued.`);
        this.name = 'CapacityWaitError';
    }
}

export type AdmissionOutcome = 'admitted' | 'already-started' | 'ended' | 'unknown-run';

/** Admits one queued run: waits (bounded) for a slot, then starts its workflow. Safe to repeat for the same message. */
export async function admitRun(
    p: AdmissionPorts,
    message: AdmissionMessage,
    o: AdmissionOptions,
): Promise<AdmissionOutcome> {
    const run = await p.runs.get(message.runId);
    if (!run) return 'unknown-run';
    if (isTerminal(run.status)) {
        await p.slots.release(run.id);
        return 'ended';
    }
    if (await p.started(run.id)) return 'already-started';
    // A run paused while queued starts without a slot: its first safe point parks it, and a slot would sit idle.
    if (!run.pause) await acquireSlot(p, run.id, o);
    // Aborted while we waited? Its abort may have released before we acquired: give the slot back.
    const now = await p.runs.get(run.id);
    if (!now || isTerminal(now.status)) {
        await p.slots.release(run.id);
        return 'ended';
    }
    await p.start(now);
    return 'admitted';
}

async function acquireSlot(p: AdmissionPorts, runId: string, o: AdmissionOptions): Promise<void> {
    const deadline = p.now() + o.waitMs;
    let reclaimed = false;
    while (!(await p.slots.acquire(runId, o.capacity))) {
        if (!reclaimed) {
            reclaimed = true;
            await p.reclaim();
            continue;
        }
        const left = deadline - p.now();
        if (left <= 0) throw new CapacityWaitError(runId, o.capacity);
        await p.slotFreed(Math.min(left, 250));
    }
}

/**
 * Frees the slots of runs that no longer execute. A slot is released right after the status change that frees it, in
 * a second write: a crash between the two (kill -9, a lost instance) would leave the slot held for good and shrink
 * capacity. Safe to run at any time: a run that holds a slot while `Queued` is being admitted and keeps it.
 */
export async function reclaimSlots(p: { slots: AdmissionSlots; runs: Pick<RunStore, 'get'> }): Promise<string[]> {
    const freed: string[] = [];
    for (const runId of await p.slots.holders()) {
        const run = await p.runs.get(runId);
        if (run && (run.status === 'Running' || run.status === 'Queued')) continue;
        await p.slots.release(runId);
        freed.push(runId);
    }
    return freed;
}

/** Whether a change of status from `before` to `after` frees the run's slot (it stopped executing). */
export function slotFreedBy(before: RunStatus, after: RunStatus): boolean {
    return before !== after && after !== 'Running' && after !== 'Queued';
}
