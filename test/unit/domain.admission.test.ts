import { type AdmissionPorts, admitRun, CapacityWaitError, reclaimSlots, slotFreedBy } from '../../domain/admission';
import type { AdmissionSlots } from '../../domain/ports';
import type { RunDoc } from '../../domain/run';
import { makeRun, MemoryRuns } from '../support/domainFakes';

/** Slots in memory, with the port's semantics (a holder's acquire is idempotent). */
class MemorySlots implements AdmissionSlots {
    readonly taken = new Set<string>();
    acquire(runId: string, capacity: number): Promise<boolean> {
        if (this.taken.has(runId)) return Promise.resolve(true);
        if (this.taken.size >= capacity) return Promise.resolve(false);
        this.taken.add(runId);
        return Promise.resolve(true);
    }
    release(runId: string): Promise<void> {
        this.taken.delete(runId);
        return Promise.resolve();
    }
    held(): Promise<number> {
        return Promise.resolve(this.taken.size);
    }
    holders(): Promise<string[]> {
        return Promise.resolve([...this.taken]);
    }
}

function harness() {
    const runs = new MemoryRuns();
    const slots = new MemorySlots();
    const started: string[] = [];
    let clock = 0;
    let onWait: (() => void | Promise<void>) | undefined;
    const ports: AdmissionPorts = {
        runs,
        slots,
        started: (id) => Promise.resolve(started.includes(id)),
        start: (run: RunDoc) => {
            started.push(run.id);
            return Promise.resolve();
        },
        slotFreed: async (ms) => {
            clock += ms;
            await onWait?.();
        },
        now: () => clock,
        reclaim: async () => {
            await reclaimSlots({ slots, runs });
        },
    };
    return { runs, slots, started, ports, setOnWait: (f: typeof onWait) => (onWait = f) };
}

const message = (runId: string) => ({ runId, correlationID: `corr-${runId}` });

describe('admitRun', () => {
    it('starts a queued run once it holds a slot', async () => {
        const h = harness();
        await h.runs.create(makeRun({ id: 'r1', status: 'Queued' }));
        await expect(admitRun(h.ports, message('r1'), { capacity: 2, waitMs: 1000 })).resolves.toBe('admitted');
        expect(h.started).toEqual(['r1']);
        expect([...h.slots.taken]).toEqual(['r1']);
    });

    it('gives the message back (throws) when no slot frees within the wait, and starts nothing', async () => {
        const h = harness();
        await h.runs.create(makeRun({ id: 'other', status: 'Running' }));
        h.slots.taken.add('other');
        await h.runs.create(makeRun({ id: 'r1', status: 'Queued' }));
        await expect(admitRun(h.ports, message('r1'), { capacity: 1, waitMs: 1000 })).rejects.toBeInstanceOf(
            CapacityWaitError,
        );
        expect(h.started).toEqual([]);
        expect([...h.slots.taken]).toEqual(['other']);
    });

    it('admits as soon as a slot frees while it waits', async () => {
        const h = harness();
        await h.runs.create(makeRun({ id: 'other', status: 'Running' }));
        h.slots.taken.add('other');
        await h.runs.create(makeRun({ id: 'r1', status: 'Queued' }));
        h.setOnWait(() => h.slots.release('other'));
        await expect(admitRun(h.ports, message('r1'), { capacity: 1, waitMs: 10_000 })).resolves.toBe('admitted');
        expect(h.started).toEqual(['r1']);
    });

    it('is a no-op for a duplicate message of a started run', async () => {
        const h = harness();
        await h.runs.create(makeRun({ id: 'r1', status: 'Queued' }));
        await admitRun(h.ports, message('r1'), { capacity: 5, waitMs: 0 });
        await expect(admitRun(h.ports, message('r1'), { capacity: 5, waitMs: 0 })).resolves.toBe('already-started');
        expect(h.started).toEqual(['r1']);
        expect(h.slots.taken.size).toBe(1);
    });

    it('skips a run aborted while queued, and frees its slot if it took one while the abort happened', async () => {
        const h = harness();
        await h.runs.create(makeRun({ id: 'r1', status: 'Aborted' }));
        await expect(admitRun(h.ports, message('r1'), { capacity: 5, waitMs: 0 })).resolves.toBe('ended');
        await h.runs.create(makeRun({ id: 'r2', status: 'Queued' }));
        // The abort lands between the slot being taken and the start.
        const acquire = h.slots.acquire.bind(h.slots);
        h.slots.acquire = async (id, capacity) => {
            const got = await acquire(id, capacity);
            await h.runs.update(id, (r) => ({ ...r, status: 'Aborted' }));
            return got;
        };
        await expect(admitRun(h.ports, message('r2'), { capacity: 5, waitMs: 0 })).resolves.toBe('ended');
        expect(h.started).toEqual([]);
        expect(h.slots.taken.size).toBe(0);
    });

    it('starts a run paused while queued without taking a slot (it parks at its first safe point)', async () => {
        const h = harness();
        await h.runs.create(makeRun({ id: 'other', status: 'Running' }));
        h.slots.taken.add('other');
        const pause = { pauseId: 'p1', actor: 'olga', reason: 'hold', at: 'x', correlationID: 'c' };
        await h.runs.create(makeRun({ id: 'r1', status: 'Paused', pause, resumeStatus: 'Queued' }));
        await expect(admitRun(h.ports, message('r1'), { capacity: 1, waitMs: 0 })).resolves.toBe('admitted');
        expect([...h.slots.taken]).toEqual(['other']);
    });

    it('says unknown-run for a message whose run does not exist', async () => {
        const h = harness();
        await expect(admitRun(h.ports, message('ghost'), { capacity: 5, waitMs: 0 })).resolves.toBe('unknown-run');
    });
});

describe('reclaimSlots', () => {
    it("frees the slots of runs that stopped executing (a crash cut off their release), keeps the others'", async () => {
        const h = harness();
        await h.runs.create(makeRun({ id: 'running', status: 'Running' }));
        await h.runs.create(makeRun({ id: 'admitting', status: 'Queued' }));
        await h.runs.create(makeRun({ id: 'waiting', status: 'AwaitingApproval' }));
        await h.runs.create(makeRun({ id: 'done', status: 'Completed' }));
        for (const id of ['running', 'admitting', 'waiting', 'done', 'purged']) h.slots.taken.add(id);
        await expect(reclaimSlots(h)).resolves.toEqual(['waiting', 'done', 'purged']);
        expect([...h.slots.taken]).toEqual(['running', 'admitting']);
    });

    it('is what lets a waiting run in when every slot was leaked', async () => {
        const h = harness();
        await h.runs.create(makeRun({ id: 'done', status: 'Completed' }));
        h.slots.taken.add('done');
        await h.runs.create(makeRun({ id: 'r1', status: 'Queued' }));
        await expect(admitRun(h.ports, message('r1'), { capacity: 1, waitMs: 0 })).resolves.toBe('admitted');
        expect([...h.slots.taken]).toEqual(['r1']);
    });
});

describe('slotFreedBy', () => {
    it.each([
        ['Running', 'AwaitingApproval', true],
        ['Running', 'Paused', true],
        ['Running', 'Completed', true],
        ['Queued', 'Aborted', true],
        ['Queued', 'Running', false],
        ['Running', 'Running', false],
        ['AwaitingApproval', 'Running', false],
    ] as const)('%s → %s frees a slot: %s', (before, after, freed) => {
        expect(slotFreedBy(before, after)).toBe(freed);
    });
});
