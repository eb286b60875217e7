/**
 * The scale contract: what every backend's AdmissionSlots, RateCounters and RetentionStore must do, written once
 * and run against each (embedded SQLite, Cosmos DB). `open` must return stores over an empty backend of their own:
 * every test opens one and closes it. Only what the ports promise is asserted, never how a store keeps it.
 */
import { RunStatus } from '../../domain/pipeline';
import { AppStores } from '../../domain/ports';
import { makeEvent, makeRun } from './storeContract';

const CUTOFF = '2025-03-10T00:00:00.000Z';
const at = (day: number, hour = 10) => new Date(Date.UTC(2025, 2, day, hour)).toISOString();

export function describeScaleContract(name: string, open: () => Promise<AppStores>): void {
    describe(`scale contract: ${name}`, () => {
        let s: AppStores;

        beforeEach(async () => {
            s = await open();
        });

        afterEach(async () => {
            await s.close();
        });

        describe('AdmissionSlots', () => {
            it('grants slots up to capacity, then refuses', async () => {
                await expect(s.slots.held()).resolves.toBe(0);
                await expect(s.slots.acquire('r1', 2)).resolves.toBe(true);
                await expect(s.slots.acquire('r2', 2)).resolves.toBe(true);
                await expect(s.slots.acquire('r3', 2)).resolves.toBe(false);
                await expect(s.slots.held()).resolves.toBe(2);
            });

            it("keeps a holder's slot: acquiring again is true and takes no second slot", async () => {
                await expect(s.slots.acquire('r1', 2)).resolves.toBe(true);
                await expect(s.slots.acquire('r1', 2)).resolves.toBe(true);
                await expect(s.slots.held()).resolves.toBe(1);
                await expect(s.slots.acquire('r2', 2)).resolves.toBe(true);
                await expect(s.slots.acquire('r1', 2)).resolves.toBe(true);
                // Even when capacity shrank below what is held, a holder keeps its slot.
                await expect(s.slots.acquire('r1', 1)).resolves.toBe(true);
                await expect(s.slots.held()).resolves.toBe(2);
            });

            it('release frees one slot and is idempotent', async () => {
                await s.slots.acquire('r1', 2);
                await s.slots.acquire('r2', 2);
                await expect(s.slots.acquire('r3', 2)).resolves.toBe(false);
                await s.slots.release('r1');
                await expect(s.slots.held()).resolves.toBe(1);
                await s.slots.release('r1');
                await s.slots.release('never-held');
                await expect(s.slots.held()).resolves.toBe(1);
                await expect(s.slots.acquire('r3', 2)).resolves.toBe(true);
                await expect(s.slots.acquire('r4', 2)).resolves.toBe(false);
                await expect(s.slots.held()).resolves.toBe(2);
            });

            it('names the runs holding slots', async () => {
                await expect(s.slots.holders()).resolves.toEqual([]);
                await s.slots.acquire('r1', 3);
                await s.slots.acquire('r2', 3);
                await s.slots.release('r1');
                await s.slots.acquire('r3', 3);
                expect((await s.slots.holders()).sort()).toEqual(['r2', 'r3']);
            });

            it('of 20 concurrent acquires against capacity 5, exactly 5 win', async () => {
                const results = await Promise.all(Array.from({ length: 20 }, (_, i) => s.slots.acquire(`run-${i}`, 5)));
                expect(results.filter(Boolean)).toHaveLength(5);
                await expect(s.slots.held()).resolves.toBe(5);
            });
        });

        describe('RateCounters', () => {
            const W = Date.UTC(2025, 2, 1, 10, 0);

            it('counts 1, 2, 3 within one window', async () => {
                await expect(s.rateCounters.increment('tenant-a', W, 60_000)).resolves.toBe(1);
                await expect(s.rateCounters.increment('tenant-a', W, 60_000)).resolves.toBe(2);
                await expect(s.rateCounters.increment('tenant-a', W, 60_000)).resolves.toBe(3);
            });

            it('keeps keys and windows apart', async () => {
                await s.rateCounters.increment('tenant-a', W, 60_000);
                await s.rateCounters.increment('tenant-a', W, 60_000);
                await expect(s.rateCounters.increment('tenant-b', W, 60_000)).resolves.toBe(1);
                await expect(s.rateCounters.increment('tenant-b', W, 60_000)).resolves.toBe(2);
                await expect(s.rateCounters.increment('tenant-a', W + 60_000, 60_000)).resolves.toBe(1);
                await expect(s.rateCounters.increment('tenant-a', W + 60_000, 60_000)).resolves.toBe(2);
            });

            it('gives 50 concurrent increments the distinct counts 1..50', async () => {
                const results = await Promise.all(
                    Array.from({ length: 50 }, () => s.rateCounters.increment('hot', W, 60_000)),
                );
                expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
            });
        });

        describe('RetentionStore', () => {
            async function seedRun(id: string, status: RunStatus, updatedAt: string): Promise<void> {
                await s.runs.create(makeRun(id, { status, createdAt: at(1), updatedAt }));
            }

            it('lists runs that ended before the cutoff, oldest first, and honours limit', async () => {
                await seedRun('done-late', 'Completed', at(9));
                await seedRun('failed-early', 'Failed', at(2));
                await seedRun('aborted', 'Aborted', at(5));
                await seedRun('rejected', 'Rejected', at(6));
                await seedRun('timed-out', 'TimedOut', at(7));
                await seedRun('after-cutoff', 'Completed', at(11));
                await seedRun('at-cutoff', 'Completed', CUTOFF);
                // Old, but not ended: never expired.
                await seedRun('queued', 'Queued', at(1));
                await seedRun('running', 'Running', at(1));
                await seedRun('waiting', 'AwaitingApproval', at(1));
                await seedRun('paused', 'Paused', at(1));

                await expect(s.retention.expiredRuns(CUTOFF, 100)).resolves.toEqual([
                    'failed-early',
                    'aborted',
                    'rejected',
                    'timed-out',
                    'done-late',
                ]);
                await expect(s.retention.expiredRuns(CUTOFF, 2)).resolves.toEqual(['failed-early', 'aborted']);
                await expect(s.retention.expiredRuns(at(1), 100)).resolves.toEqual([]);
            });

            it('sees a run once an update ends it, at its new updatedAt', async () => {
                await seedRun('r1', 'Running', at(1));
                await expect(s.retention.expiredRuns(CUTOFF, 10)).resolves.toEqual([]);
                await s.runs.update('r1', (r) => ({ ...r, status: 'Completed', updatedAt: at(3) }));
                await expect(s.retention.expiredRuns(CUTOFF, 10)).resolves.toEqual(['r1']);
                await expect(s.retention.expiredRuns(at(3), 10)).resolves.toEqual([]);
            });

            it('purges a run with its outputs, idempotency key, audit records and outbox entries', async () => {
                await s.runs.create(makeRun('gone', { status: 'Completed', idempotencyKey: 'k-gone' }));
                await s.runs.putOutput('gone', 'generation.0', { ideas: ['a'] });
                await s.runs.putOutput('gone', 'filtering.0', 'text');
                for (let i = 1; i <= 3; i++) await s.audit.append(makeEvent('gone', i));
                await s.runs.create(makeRun('kept', { status: 'Completed', idempotencyKey: 'k-kept' }));
                await s.runs.putOutput('kept', 'generation.0', { ideas: ['b'] });
                for (let i = 1; i <= 2; i++) await s.audit.append(makeEvent('kept', i));

                await expect(s.retention.purgeRun('gone')).resolves.toEqual({ runs: 1, outputs: 2, auditRecords: 3 });

                await expect(s.runs.get('gone')).resolves.toBeUndefined();
                await expect(s.runs.getOutput('gone', 'generation.0')).resolves.toBeUndefined();
                await expect(s.runs.getOutput('gone', 'filtering.0')).resolves.toBeUndefined();
                await expect(s.audit.list('gone', 10)).resolves.toEqual({ items: [] });
                const pending = await s.outbox.pending(100);
                expect(pending.filter((e) => e.runId === 'gone')).toEqual([]);
                expect(pending.filter((e) => e.runId === 'kept').map((e) => e.seq)).toEqual([1, 2]);

                // The other run is untouched.
                await expect(s.runs.get('kept')).resolves.toMatchObject({ id: 'kept' });
                await expect(s.runs.getOutput('kept', 'generation.0')).resolves.toEqual({ ideas: ['b'] });
                expect((await s.audit.list('kept', 10)).items.map((r) => r.seq)).toEqual([1, 2]);

                // The idempotency key is free again: the same key creates a new run.
                const again = await s.runs.create(makeRun('gone-2', { idempotencyKey: 'k-gone' }));
                expect(again).toMatchObject({ created: true, run: { id: 'gone-2' } });
                const kept = await s.runs.create(makeRun('kept-2', { idempotencyKey: 'k-kept' }));
                expect(kept).toMatchObject({ created: false, run: { id: 'kept' } });

                await expect(s.retention.purgeRun('gone')).resolves.toEqual({ runs: 0, outputs: 0, auditRecords: 0 });
                await expect(s.retention.purgeRun('never-was')).resolves.toEqual({
                    runs: 0,
                    outputs: 0,
                    auditRecords: 0,
                });
            });

            it('drops a purged run from expiredRuns', async () => {
                await seedRun('a', 'Completed', at(2));
                await seedRun('b', 'Failed', at(3));
                await s.retention.purgeRun('a');
                await expect(s.retention.expiredRuns(CUTOFF, 10)).resolves.toEqual(['b']);
            });

            it('purges link uses and rate windows older than the cutoff, and keeps recent ones', async () => {
                const old = Date.UTC(2025, 2, 1, 10, 0);
                const recent = Date.UTC(2025, 2, 20, 10, 0);
                await s.linkUses.use('jti-old-aaaaaaaaaaaa', at(1));
                await s.linkUses.use('jti-new-aaaaaaaaaaaa', at(20));
                await s.rateCounters.increment('tenant-quiet', old, 60_000);
                await s.rateCounters.increment('tenant-quiet', old, 60_000);
                await s.rateCounters.increment('tenant-busy', recent, 60_000);

                await expect(s.retention.purgeAged(CUTOFF)).resolves.toBe(2);

                await expect(s.linkUses.used('jti-old-aaaaaaaaaaaa')).resolves.toBe(false);
                await expect(s.linkUses.used('jti-new-aaaaaaaaaaaa')).resolves.toBe(true);
                // A forgotten window starts again from 1; a kept one counts on.
                await expect(s.rateCounters.increment('tenant-quiet', old, 60_000)).resolves.toBe(1);
                await expect(s.rateCounters.increment('tenant-busy', recent, 60_000)).resolves.toBe(2);

                await expect(s.retention.purgeAged(at(1))).resolves.toBe(0);
            });
        });
    });
}
