/**
 * The store contracts: what every adapter of RunStore, AuditLog and PolicyStore (describeStoreContract), LinkUses
 * (describeLinkUsesContract) and EventOutbox (describeEventOutboxContract) must do, written once and run against
 * each (embedded SQLite and Cosmos DB; LinkUses also against the in-memory fake). `open` must return stores over an
 * empty backend of their own: every test opens one and closes it. Only what the ports promise is asserted; what
 * one adapter does its own way (SQLite's numeric cursors, Cosmos DB's TTLs) is tested beside that adapter.
 */
import {
    AuditRecord,
    EVENT_TYPES,
    GENESIS_HASH,
    hashRecord,
    NewAuditEvent,
    POLICY_CHAIN,
    verifyChain,
} from '../../domain/audit';
import { ConflictError, NotFoundError, ValidationError } from '../../domain/errors';
import { initialStages, RunStatus, Stage } from '../../domain/pipeline';
import { CheckpointPolicy, DEFAULT_POLICY } from '../../domain/policy';
import { AuditLog, EventOutbox, LinkUses, PolicyStore, RunFilter, RunStore } from '../../domain/ports';
import type { Role } from '../../domain/principal';
import { RunDoc } from '../../domain/run';
import { TEST_KEYS } from '../support/chainKeys';

export interface OpenedStores {
    runs: RunStore;
    audit: AuditLog;
    policies: PolicyStore;
    close(): void | Promise<void>;
}

export function makeRun(id: string, over: Partial<RunDoc> = {}, meta: Partial<RunDoc['metadata']> = {}): RunDoc {
    return {
        id,
        status: 'Queued',
        metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [], ...meta },
        createdBy: 'alice',
        createdByRoles: ['Mesh.Developer'],
        createdAt: '2025-03-01T10:00:00.000Z',
        updatedAt: '2025-03-01T10:00:00.000Z',
        maxIterations: 1,
        iteration: 0,
        currentStage: null,
        stages: initialStages(),
        checkpoints: [],
        nextAction: null,
        input: { prompt: 'hello' },
        correlationID: `corr-${id}`,
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        ...over,
    };
}

export function makeEvent(runId: string, n: number, over: Partial<NewAuditEvent> = {}): NewAuditEvent {
    return {
        eventId: `${runId}-ev-${n}`,
        runId,
        type: 'stage.started',
        at: new Date(Date.UTC(2025, 2, 1, 10, 0, n)).toISOString(),
        actor: 'system',
        correlationID: `corr-${runId}`,
        stage: 'generation',
        details: { n },
        ...over,
    };
}

/** Walks every page of a list, failing on a page that is larger than asked or a token that never ends. */
export async function allPages<T>(
    fetch: (token: string | undefined) => Promise<{ items: T[]; continuationToken?: string }>,
    pageSize: number,
): Promise<{ items: T[]; pages: number }> {
    const items: T[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
        const page = await fetch(token);
        expect(page.items.length).toBeLessThanOrEqual(pageSize);
        items.push(...page.items);
        token = page.continuationToken;
        if (++pages > 10_000) throw new Error('continuation tokens never end');
    } while (token !== undefined);
    return { items, pages };
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
    const out: T[] = [];
    for await (const x of it) out.push(x);
    return out;
}

const ids = (runs: readonly RunDoc[]) => runs.map((r) => r.id);

export function describeStoreContract(name: string, open: () => Promise<OpenedStores>): void {
    describe(`store contract: ${name}`, () => {
        let s: OpenedStores;

        beforeEach(async () => {
            s = await open();
        });

        afterEach(async () => {
            await s.close();
        });

        describe('RunStore', () => {
            it('creates a run and reads it back', async () => {
                const run = makeRun('r1', {}, { title: 'First' });
                await expect(s.runs.create(run)).resolves.toEqual({ run, created: true });
                await expect(s.runs.get('r1')).resolves.toEqual(run);
                await expect(s.runs.get('nope')).resolves.toBeUndefined();
            });

            it('answers ping', async () => {
                await expect(s.runs.ping()).resolves.toBeUndefined();
            });

            it('returns the run an idempotency key already created, and changes nothing', async () => {
                const first = makeRun('r1', { idempotencyKey: 'k1' });
                await s.runs.create(first);
                const retry = await s.runs.create(makeRun('r2', { idempotencyKey: 'k1', input: { other: true } }));
                expect(retry).toEqual({ run: first, created: false });
                await expect(s.runs.get('r2')).resolves.toBeUndefined();
                await expect(s.runs.get('r1')).resolves.toEqual(first);
            });

            it('replays a key reused with the same fingerprint, and refuses another fingerprint (CONFLICT)', async () => {
                const first = makeRun('r1', { idempotencyKey: 'k1', idempotencyFingerprint: 'a'.repeat(64) });
                await s.runs.create(first);
                const retry = await s.runs.create(
                    makeRun('r2', { idempotencyKey: 'k1', idempotencyFingerprint: 'a'.repeat(64) }),
                );
                expect(retry).toEqual({ run: first, created: false });
                await expect(
                    s.runs.create(makeRun('r3', { idempotencyKey: 'k1', idempotencyFingerprint: 'b'.repeat(64) })),
                ).rejects.toBeInstanceOf(ConflictError);
                await expect(s.runs.get('r3')).resolves.toBeUndefined();
                await expect(s.runs.get('r1')).resolves.toEqual(first);
                // Another creator's key of the same name is not a reuse.
                const bob = await s.runs.create(
                    makeRun('r4', { idempotencyKey: 'k1', createdBy: 'bob', idempotencyFingerprint: 'b'.repeat(64) }),
                );
                expect(bob.created).toBe(true);
            });

            it('replays a key stored without a fingerprint (before fingerprints existed)', async () => {
                const first = makeRun('r1', { idempotencyKey: 'k-old' });
                await s.runs.create(first);
                const retry = await s.runs.create(
                    makeRun('r2', { idempotencyKey: 'k-old', idempotencyFingerprint: 'c'.repeat(64) }),
                );
                expect(retry).toEqual({ run: first, created: false });
            });

            it('scopes idempotency keys to their creator', async () => {
                await s.runs.create(makeRun('r1', { idempotencyKey: 'k1' }));
                const bob = await s.runs.create(makeRun('r2', { idempotencyKey: 'k1', createdBy: 'bob' }));
                expect(bob.created).toBe(true);
                expect(bob.run.id).toBe('r2');
                const noKey = await s.runs.create(makeRun('r3'));
                expect(noKey.created).toBe(true);
            });

            it('answers concurrent creates with one idempotency key with one run', async () => {
                const results = await Promise.all(
                    Array.from({ length: 10 }, (_, i) => s.runs.create(makeRun(`r${i}`, { idempotencyKey: 'same' }))),
                );
                expect(results.filter((r) => r.created)).toHaveLength(1);
                const winner = results.find((r) => r.created)!.run.id;
                expect(new Set(results.map((r) => r.run.id))).toEqual(new Set([winner]));
                const page = await s.runs.list({}, 50);
                expect(ids(page.items)).toEqual([winner]);
            });

            it('refuses a second run with the same id', async () => {
                const run = makeRun('r1');
                await s.runs.create(run);
                await expect(s.runs.create(makeRun('r1', { createdBy: 'bob' }))).rejects.toBeInstanceOf(ConflictError);
                await expect(s.runs.get('r1')).resolves.toEqual(run);
            });

            it('updates with read-modify-write and returns the stored run', async () => {
                await s.runs.create(makeRun('r1'));
                const updated = await s.runs.update('r1', (r) => ({
                    ...r,
                    status: 'Running',
                    currentStage: 'generation',
                }));
                expect(updated).toMatchObject({ id: 'r1', status: 'Running', currentStage: 'generation' });
                await expect(s.runs.get('r1')).resolves.toEqual(updated);
            });

            it('writes nothing when mutate returns undefined', async () => {
                const run = makeRun('r1');
                await s.runs.create(run);
                const before = await s.runs.changesSince(undefined, 10);
                await expect(s.runs.update('r1', () => undefined)).resolves.toEqual(run);
                const after = await s.runs.changesSince(before.cursor, 10);
                expect(after.runs).toEqual([]);
                expect(after.cursor).toBe(before.cursor);
            });

            it('rejects an update of an unknown run with NOT_FOUND', async () => {
                await expect(s.runs.update('ghost', (r) => r)).rejects.toBeInstanceOf(NotFoundError);
            });

            it('leaves the run unchanged when mutate throws', async () => {
                const run = makeRun('r1');
                await s.runs.create(run);
                await expect(
                    s.runs.update('r1', () => {
                        throw new ConflictError('wrong state');
                    }),
                ).rejects.toBeInstanceOf(ConflictError);
                await expect(s.runs.get('r1')).resolves.toEqual(run);
            });

            it('applies every one of many concurrent updates', async () => {
                await s.runs.create(makeRun('r1'));
                await Promise.all([
                    s.runs.update('r1', (r) => ({ ...r, iteration: r.iteration + 1 })),
                    s.runs.update('r1', (r) => ({ ...r, iteration: r.iteration + 1 })),
                ]);
                await expect(s.runs.get('r1')).resolves.toMatchObject({ iteration: 2 });
                await Promise.all(
                    Array.from({ length: 20 }, (_, i) =>
                        s.runs.update('r1', (r) => ({
                            ...r,
                            iteration: r.iteration + 1,
                            stages: r.stages.map((st, j) => (j === i % 5 ? { ...st, attempts: st.attempts + 1 } : st)),
                        })),
                    ),
                );
                const final = (await s.runs.get('r1'))!;
                expect(final.iteration).toBe(22);
                expect(final.stages.map((st) => st.attempts)).toEqual([4, 4, 4, 4, 4]);
            });

            describe('list', () => {
                // Eight runs, deliberately sharing creation times so the id tie-break is exercised.
                const seed: [string, RunStatus, string, Stage | null, string, string, string?][] = [
                    ['a1', 'Running', 'alpha', 'generation', 'alice', '2025-03-01T10:00:00.000Z', 'Summer Campaign'],
                    ['a2', 'Completed', 'alpha', null, 'alice', '2025-03-02T10:00:00.000Z', 'winter plan'],
                    ['a3', 'AwaitingApproval', 'alpha', 'taste', 'bob', '2025-03-03T10:00:00.000Z'],
                    ['b1', 'Running', 'beta', 'filtering', 'bob', '2025-03-03T10:00:00.000Z', 'Beta launch'],
                    ['b2', 'Failed', 'beta', 'creativity', 'carol', '2025-03-04T10:00:00.000Z'],
                    ['g1', 'Queued', 'gamma', null, 'carol', '2025-03-04T10:00:00.000Z', 'ALPHA numeric'],
                    ['g2', 'Paused', 'gamma', 'improvement', 'alice', '2025-03-05T10:00:00.000Z'],
                    ['g3', 'Running', 'Gamma-Ops', 'taste', 'dave', '2025-03-05T10:00:00.000Z', 'Öffentliche Straße'],
                ];

                beforeEach(async () => {
                    for (const [id, status, team, currentStage, createdBy, createdAt, title] of seed) {
                        await s.runs.create(
                            makeRun(
                                id,
                                { status, currentStage, createdBy, createdAt },
                                { team, ...(title ? { title } : {}) },
                            ),
                        );
                    }
                });

                const cases: [string, RunFilter, string[]][] = [
                    [
                        'no filter, newest first with id descending on ties',
                        {},
                        ['g3', 'g2', 'g1', 'b2', 'b1', 'a3', 'a2', 'a1'],
                    ],
                    ['status in list', { status: ['Running', 'Paused'] }, ['g3', 'g2', 'b1', 'a1']],
                    ['empty status list', { status: [] }, []],
                    ['teams in list', { teams: ['alpha', 'gamma'] }, ['g2', 'g1', 'a3', 'a2', 'a1']],
                    ['empty teams list (caller with no teams)', { teams: [] }, []],
                    ['team', { team: 'beta' }, ['b2', 'b1']],
                    ['stage is the current stage', { stage: 'taste' }, ['g3', 'a3']],
                    ['createdBy', { createdBy: 'alice' }, ['g2', 'a2', 'a1']],
                    ['since is inclusive', { since: '2025-03-04T10:00:00.000Z' }, ['g3', 'g2', 'g1', 'b2']],
                    ['since in another offset', { since: '2025-03-04T12:00:00+02:00' }, ['g3', 'g2', 'g1', 'b2']],
                    ['q over title, case-insensitive', { q: 'CAMPAIGN' }, ['a1']],
                    ['q over id', { q: 'B2' }, ['b2']],
                    ['q over team and title', { q: 'alpha' }, ['g1', 'a3', 'a2', 'a1']],
                    ['q beyond ASCII', { q: 'ÖFFENTLICHE' }, ['g3']],
                    ['q with LIKE wildcards is literal', { q: '%' }, []],
                    ['filters combine', { teams: ['alpha', 'beta'], status: ['Running'], createdBy: 'bob' }, ['b1']],
                ];

                it.each(cases)('filters: %s', async (_, filter, expected) => {
                    const page = await s.runs.list(filter, 50);
                    expect(ids(page.items)).toEqual(expected);
                    expect(page.continuationToken).toBeUndefined();
                });

                it.each([1, 2, 3, 7, 8])('walks all pages of %d without duplicates or gaps', async (size) => {
                    const { items, pages } = await allPages((t) => s.runs.list({}, size, t), size);
                    expect(ids(items)).toEqual(['g3', 'g2', 'g1', 'b2', 'b1', 'a3', 'a2', 'a1']);
                    expect(pages).toBe(Math.ceil(8 / size));
                });

                it('keeps the filter across pages', async () => {
                    const { items } = await allPages((t) => s.runs.list({ teams: ['alpha', 'beta'] }, 2, t), 2);
                    expect(ids(items)).toEqual(['b2', 'b1', 'a3', 'a2', 'a1']);
                });

                it('rejects a malformed continuation token', async () => {
                    await expect(s.runs.list({}, 2, 'not a token')).rejects.toBeInstanceOf(ValidationError);
                });

                it('rejects a malformed since', async () => {
                    await expect(s.runs.list({ since: 'yesterday' }, 2)).rejects.toBeInstanceOf(ValidationError);
                });

                it('sees updates to indexed fields', async () => {
                    await s.runs.update('a1', (r) => ({ ...r, status: 'Completed', currentStage: null }));
                    expect(ids((await s.runs.list({ status: ['Completed'] }, 50)).items)).toEqual(['a2', 'a1']);
                    expect(ids((await s.runs.list({ stage: 'generation' }, 50)).items)).toEqual([]);
                });
            });

            describe('count, riskLevel, waitingFor and answerableBy (whom a run waits on)', () => {
                const approver = { id: 'ava', roles: ['Mesh.Approver'] as Role[], teams: ['alpha'] };
                // A run waiting on a checkpoint (AwaitingApproval, the checkpoint open), with `approved` approvals.
                const waiting = (
                    id: string,
                    opts: {
                        team?: string;
                        createdBy?: string;
                        roles?: Role[];
                        approved?: string[];
                        status?: RunStatus;
                        info?: boolean;
                        riskLevel?: RunDoc['metadata']['riskLevel'];
                        createdAt?: string;
                    } = {},
                ): RunDoc => {
                    const checkpointId = `${id}.0.taste.before.0`;
                    const roles = opts.roles ?? ['Mesh.Approver'];
                    return makeRun(
                        id,
                        {
                            status: opts.status ?? 'AwaitingApproval',
                            createdBy: opts.createdBy ?? 'alice',
                            createdAt: opts.createdAt ?? '2025-03-01T10:00:00.000Z',
                            nextAction: {
                                type: 'approval',
                                checkpointId,
                                stage: 'taste',
                                position: 'before',
                                requiredRoles: roles,
                                deadline: '2025-03-02T10:00:00.000Z',
                            },
                            checkpoints: [
                                {
                                    checkpointId,
                                    key: 'taste.before.0',
                                    iteration: 0,
                                    stage: 'taste',
                                    position: 'before',
                                    requiredRoles: roles,
                                    approvals: 2,
                                    timeoutMs: 86_400_000,
                                    onTimeout: 'reject',
                                    escalateTo: [],
                                    channels: [],
                                    rule: 'test',
                                    status: 'Open',
                                    openedAt: '2025-03-01T10:00:00.000Z',
                                    deadline: '2025-03-02T10:00:00.000Z',
                                    escalated: false,
                                    decisions: (opts.approved ?? []).map((actorId) => ({
                                        actorId,
                                        decision: 'approve',
                                        channel: 'api',
                                        at: '2025-03-01T11:00:00.000Z',
                                    })),
                                    ...(opts.info
                                        ? { infoRequest: { by: 'ava', at: '2025-03-01T12:00:00.000Z' } }
                                        : {}),
                                },
                            ],
                        },
                        { team: opts.team ?? 'alpha', riskLevel: opts.riskLevel ?? 'high' },
                    );
                };

                beforeEach(async () => {
                    for (const run of [
                        waiting('w1', { createdAt: '2025-03-01T10:00:00.000Z' }),
                        waiting('w2', { approved: ['ava'], createdAt: '2025-03-02T10:00:00.000Z' }),
                        waiting('w3', { createdBy: 'ava', createdAt: '2025-03-03T10:00:00.000Z' }),
                        waiting('w4', { team: 'beta', createdAt: '2025-03-04T10:00:00.000Z' }),
                        waiting('w5', { roles: ['Mesh.Admin'], createdAt: '2025-03-05T10:00:00.000Z' }),
                        waiting('w6', { status: 'Paused', createdAt: '2025-03-06T10:00:00.000Z' }),
                        waiting('w7', {
                            roles: ['Mesh.Approver', 'Mesh.Admin'],
                            info: true,
                            riskLevel: 'critical',
                            createdAt: '2025-03-07T10:00:00.000Z',
                        }),
                        makeRun('l1', { createdAt: '2025-03-08T10:00:00.000Z' }, { riskLevel: 'low' }),
                    ])
                        await s.runs.create(run);
                });

                const cases: [string, RunFilter, string[]][] = [
                    ['riskLevel', { riskLevel: ['critical', 'low'] }, ['l1', 'w7']],
                    ['empty riskLevel list', { riskLevel: [] }, []],
                    // Not w2 (approved it), w3 (submitted it), w4 (other team), w5 (role), w6 (paused), l1 (not waiting).
                    ['waitingFor an approver', { waitingFor: approver }, ['w7', 'w1']],
                    [
                        'waitingFor an admin of no team',
                        { waitingFor: { id: 'ada', roles: ['Mesh.Admin'], teams: [] } },
                        ['w7', 'w5'],
                    ],
                    [
                        'waitingFor someone without a deciding role',
                        { waitingFor: { id: 'dana', roles: ['Mesh.Developer'], teams: ['alpha'] } },
                        [],
                    ],
                    ['waitingFor combines with visibility', { waitingFor: approver, teams: ['beta'] }, []],
                    ['answerableBy the submitter', { answerableBy: { id: 'alice', roles: [], teams: [] } }, ['w7']],
                    [
                        'answerableBy a developer of the team',
                        { answerableBy: { id: 'dana', roles: ['Mesh.Developer'], teams: ['alpha'] } },
                        ['w7'],
                    ],
                    ['answerableBy an approver of the team', { answerableBy: approver }, []],
                    [
                        'answerableBy a developer of another team',
                        { answerableBy: { id: 'bob', roles: ['Mesh.Developer'], teams: ['beta'] } },
                        [],
                    ],
                ];

                it.each(cases)('filters and counts: %s', async (_, filter, expected) => {
                    expect(ids((await s.runs.list(filter, 50)).items)).toEqual(expected);
                    await expect(s.runs.count(filter)).resolves.toBe(expected.length);
                });

                it('counts every page of a filter, and nothing for an empty team list', async () => {
                    await expect(s.runs.count({})).resolves.toBe(8);
                    await expect(s.runs.count({ teams: [] })).resolves.toBe(0);
                    const first = await s.runs.list({ status: ['AwaitingApproval'] }, 2);
                    expect(first.items).toHaveLength(2);
                    await expect(s.runs.count({ status: ['AwaitingApproval'] })).resolves.toBe(6);
                });

                it('follows the run: an approval, the checkpoint closing and an info request move it', async () => {
                    await s.runs.update('w1', (r) => ({
                        ...r,
                        checkpoints: r.checkpoints.map((c) => ({
                            ...c,
                            decisions: [
                                { actorId: 'ava', decision: 'approve', channel: 'api', at: '2025-03-01T11:00:00.000Z' },
                            ],
                        })),
                    }));
                    expect(ids((await s.runs.list({ waitingFor: approver }, 50)).items)).toEqual(['w7']);
                    await s.runs.update('w7', (r) => ({
                        ...r,
                        status: 'Running',
                        nextAction: null,
                        checkpoints: r.checkpoints.map((c) => ({ ...c, status: 'Approved', infoRequest: undefined })),
                    }));
                    await expect(s.runs.count({ waitingFor: approver })).resolves.toBe(0);
                    await expect(s.runs.count({ answerableBy: { id: 'alice', roles: [], teams: [] } })).resolves.toBe(
                        0,
                    );
                    await s.runs.update('w2', (r) => ({
                        ...r,
                        checkpoints: r.checkpoints.map((c) => ({
                            ...c,
                            infoRequest: { by: 'ava', at: '2025-03-02T12:00:00.000Z' },
                        })),
                    }));
                    expect(
                        ids((await s.runs.list({ answerableBy: { id: 'alice', roles: [], teams: [] } }, 50)).items),
                    ).toEqual(['w2']);
                });
            });

            it('caps a page at 200 runs', async () => {
                for (let i = 0; i < 205; i++) {
                    await s.runs.create(
                        makeRun(`r${String(i).padStart(3, '0')}`, { createdAt: '2025-03-01T10:00:00.000Z' }),
                    );
                }
                const first = await s.runs.list({}, 1000);
                expect(first.items).toHaveLength(200);
                expect(first.items[0]!.id).toBe('r204');
                const rest = await s.runs.list({}, 1000, first.continuationToken);
                expect(ids(rest.items)).toEqual(['r004', 'r003', 'r002', 'r001', 'r000']);
                expect(rest.continuationToken).toBeUndefined();
            });

            it('streams changes after a cursor, oldest first', async () => {
                const empty = await s.runs.changesSince(undefined, 10);
                expect(empty.runs).toEqual([]);
                await s.runs.create(makeRun('r1'));
                await s.runs.create(makeRun('r2'));
                await s.runs.create(makeRun('r3'));
                const all = await s.runs.changesSince(empty.cursor, 10);
                expect(ids(all.runs)).toEqual(['r1', 'r2', 'r3']);
                expect(typeof all.cursor).toBe('string');

                const firstTwo = await s.runs.changesSince(empty.cursor, 2);
                expect(ids(firstTwo.runs)).toEqual(['r1', 'r2']);
                const third = await s.runs.changesSince(firstTwo.cursor, 2);
                expect(ids(third.runs)).toEqual(['r3']);
                expect(third.cursor).toBe(all.cursor);

                const idle = await s.runs.changesSince(all.cursor, 10);
                expect(idle).toEqual({ runs: [], cursor: all.cursor });

                await s.runs.update('r1', (r) => ({ ...r, status: 'Running' }));
                await s.runs.update('r2', (r) => ({ ...r, status: 'Running' }));
                await s.runs.update('r1', (r) => ({ ...r, status: 'Paused' }));
                const moved = await s.runs.changesSince(all.cursor, 10);
                // A run appears once, at its latest change, carrying its latest state.
                expect(moved.runs.map((r) => [r.id, r.status])).toEqual([
                    ['r2', 'Running'],
                    ['r1', 'Paused'],
                ]);
                expect(moved.cursor).not.toBe(all.cursor);
            });

            it('counts runs by status and finds the oldest open checkpoint (stateCounts, for the metrics gauges)', async () => {
                await expect(s.runs.stateCounts()).resolves.toEqual({ byStatus: {}, oldestOpenedAt: undefined });
                const checkpoint = (n: number, status: string, openedAt: string | null) => ({
                    checkpointId: `cp-${n}`,
                    key: `taste.before.${n}`,
                    iteration: 1,
                    stage: 'taste',
                    position: 'before',
                    requiredRoles: ['Mesh.Approver'],
                    approvals: 1,
                    timeoutMs: 86_400_000,
                    onTimeout: 'reject',
                    escalateTo: [],
                    channels: [],
                    rule: 'test',
                    status,
                    openedAt,
                    deadline: null,
                    escalated: false,
                    decisions: [],
                });
                const cps = (...c: ReturnType<typeof checkpoint>[]) => c as unknown as RunDoc['checkpoints'];
                await s.runs.create(
                    makeRun('w1', {
                        status: 'AwaitingApproval',
                        checkpoints: cps(
                            checkpoint(1, 'Approved', '2025-01-01T00:00:00.000Z'),
                            checkpoint(2, 'Open', '2025-03-01T10:00:00.000Z'),
                        ),
                    }),
                );
                await s.runs.create(
                    makeRun('w2', {
                        status: 'AwaitingApproval',
                        checkpoints: cps(checkpoint(1, 'Escalated', '2025-02-01T10:00:00.000Z')),
                    }),
                );
                // Not awaiting approval: a stale open checkpoint of a paused or ended run does not count.
                await s.runs.create(
                    makeRun('p1', {
                        status: 'Paused',
                        checkpoints: cps(checkpoint(1, 'Open', '2024-01-01T00:00:00.000Z')),
                    }),
                );
                await s.runs.create(makeRun('q1', { status: 'Queued' }));
                await s.runs.create(makeRun('q2', { status: 'Queued' }));
                await s.runs.create(makeRun('c1', { status: 'Completed' }));
                const counts = await s.runs.stateCounts();
                expect(counts).toEqual({
                    byStatus: { AwaitingApproval: 2, Paused: 1, Queued: 2, Completed: 1 },
                    oldestOpenedAt: '2025-02-01T10:00:00.000Z',
                });
            });

            it('rejects a malformed changes cursor', async () => {
                await expect(s.runs.changesSince('bogus', 10)).rejects.toBeInstanceOf(ValidationError);
            });

            it('keeps stage outputs beside the run', async () => {
                await s.runs.create(makeRun('r1'));
                await expect(s.runs.getOutput('r1', 'generation.0')).resolves.toBeUndefined();
                await s.runs.putOutput('r1', 'generation.0', { ideas: ['a', 'b'], score: 0.5 });
                await s.runs.putOutput('r1', 'filtering.0', 'text');
                await expect(s.runs.getOutput('r1', 'generation.0')).resolves.toEqual({
                    ideas: ['a', 'b'],
                    score: 0.5,
                });
                await expect(s.runs.getOutput('r1', 'filtering.0')).resolves.toBe('text');
                await s.runs.putOutput('r1', 'generation.0', { ideas: ['c'] });
                await expect(s.runs.getOutput('r1', 'generation.0')).resolves.toEqual({ ideas: ['c'] });
                await expect(s.runs.getOutput('r2', 'generation.0')).resolves.toBeUndefined();
            });
        });

        describe('AuditLog', () => {
            it('chains records from seq 1 and the genesis hash', async () => {
                const a = await s.audit.append(makeEvent('run-a', 1));
                const b = await s.audit.append(makeEvent('run-a', 2, { type: 'stage.completed', reason: 'done' }));
                expect(a).toMatchObject({ ...makeEvent('run-a', 1), seq: 1, prevHash: GENESIS_HASH });
                expect(b).toMatchObject({ seq: 2, prevHash: a.hash, reason: 'done' });
                expect(a.hash).toBe(hashRecord(a, TEST_KEYS.current));
                expect(b.hash).toBe(hashRecord(b, TEST_KEYS.current));
                expect((await s.audit.list('run-a', 10)).items).toEqual([a, b]);
            });

            it('returns the latest records oldest first', async () => {
                for (let i = 1; i <= 5; i++) await s.audit.append(makeEvent('run-l', i));
                expect((await s.audit.latest('run-l', 2)).map((r) => r.seq)).toEqual([4, 5]);
                expect((await s.audit.latest('run-l', 10)).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
                await expect(s.audit.latest('run-none', 3)).resolves.toEqual([]);
            });

            it('keeps one chain per run', async () => {
                await s.audit.append(makeEvent('run-a', 1));
                await s.audit.append(makeEvent('run-a', 2));
                const other = await s.audit.append(makeEvent('run-b', 1));
                expect(other).toMatchObject({ seq: 1, prevHash: GENESIS_HASH });
                await expect(s.audit.list('run-none', 10)).resolves.toEqual({ items: [] });
            });

            it('is idempotent by eventId: the stored record comes back and nothing is written', async () => {
                const first = await s.audit.append(makeEvent('run-a', 1));
                const again = await s.audit.append(makeEvent('run-a', 1, { reason: 'a retry with other content' }));
                expect(again).toEqual(first);
                const next = await s.audit.append(makeEvent('run-a', 2));
                expect(next.seq).toBe(2);
                expect((await collect(s.audit.all('run-a'))).map((r) => r.eventId)).toEqual([
                    'run-a-ev-1',
                    'run-a-ev-2',
                ]);
            });

            it('stays gap-free and verifiable under 50 concurrent appends (with retries)', async () => {
                const events = Array.from({ length: 50 }, (_, i) => makeEvent('run-c', i + 1));
                const results = await Promise.all([...events, ...events.slice(0, 10)].map((e) => s.audit.append(e)));
                const records = await collect(s.audit.all('run-c'));
                expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
                expect(new Set(records.map((r) => r.eventId)).size).toBe(50);
                // A retried append answered with the record its first append stored.
                for (const [i, r] of results.slice(50).entries()) expect(r).toEqual(results[i]);
                expect(verifyChain(records, TEST_KEYS)).toEqual({ verified: true, head: records[49]!.hash });
            });

            it('masks PII in details before hashing and storing', async () => {
                const r = await s.audit.append(
                    makeEvent('run-a', 1, {
                        details: { approver: 'alice@contoso.com', phone: '+14255550100', apiKey: 'k-123', n: 7 },
                    }),
                );
                expect(r.details).toEqual({
                    approver: 'a***@contoso.com',
                    phone: '+*********00',
                    apiKey: '[redacted]',
                    n: 7,
                });
                const [stored] = (await s.audit.list('run-a', 10)).items;
                expect(stored).toEqual(r);
                expect(JSON.stringify(stored)).not.toContain('alice@');
                expect(verifyChain([stored!], TEST_KEYS).verified).toBe(true);
            });

            it('pages in ascending seq', async () => {
                for (let i = 1; i <= 25; i++) await s.audit.append(makeEvent('run-a', i));
                const { items, pages } = await allPages((t) => s.audit.list('run-a', 10, t), 10);
                expect(pages).toBe(3);
                expect(items.map((r) => r.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
                const last = await s.audit.list('run-a', 25);
                expect(last.items).toHaveLength(25);
                expect(last.continuationToken).toBeUndefined();
            });

            it('caps a page at 1000 records, and all() reads past it', async () => {
                const written: AuditRecord[] = [];
                for (let i = 1; i <= 1001; i++) written.push(await s.audit.append(makeEvent('run-big', i)));
                const first = await s.audit.list('run-big', 5000);
                expect(first.items).toHaveLength(1000);
                const rest = await s.audit.list('run-big', 5000, first.continuationToken);
                expect(rest.items.map((r) => r.seq)).toEqual([1001]);
                const all = await collect(s.audit.all('run-big'));
                expect(all).toEqual(written);
                expect(verifyChain(all, TEST_KEYS).verified).toBe(true);
            });

            it('rejects a malformed continuation token', async () => {
                await expect(s.audit.list('run-a', 10, 'seq-three')).rejects.toBeInstanceOf(ValidationError);
            });
        });

        describe('PolicyStore', () => {
            const strict: CheckpointPolicy = {
                rules: [
                    {
                        name: 'everything before taste',
                        match: { stages: ['taste'] },
                        position: 'before',
                        requiredRoles: ['Mesh.Approver'],
                        approvals: 1,
                        timeout: 'PT4H',
                        onTimeout: 'reject',
                        channels: ['email'],
                    },
                ],
            };

            it('serves the default policy at version 0 until one is saved', async () => {
                await expect(s.policies.get()).resolves.toEqual({
                    ...DEFAULT_POLICY,
                    version: 0,
                    updatedAt: '1970-01-01T00:00:00.000Z',
                    updatedBy: 'system',
                });
            });

            it('saves numbered versions', async () => {
                const v1 = await s.policies.put(strict, 0, 'carol', '2025-03-01T10:00:00.000Z');
                expect(v1).toEqual({
                    ...strict,
                    version: 1,
                    updatedAt: '2025-03-01T10:00:00.000Z',
                    updatedBy: 'carol',
                });
                await expect(s.policies.get()).resolves.toEqual(v1);
                const v2 = await s.policies.put(DEFAULT_POLICY, 1, 'dave', '2025-03-02T10:00:00.000Z');
                expect(v2).toMatchObject({ version: 2, updatedBy: 'dave', rules: DEFAULT_POLICY.rules });
                await expect(s.policies.get()).resolves.toEqual(v2);
            });

            it('stores the rules, not stamps passed back in', async () => {
                const v1 = await s.policies.put(strict, 0, 'carol', '2025-03-01T10:00:00.000Z');
                const v2 = await s.policies.put({ ...v1 }, 1, 'dave', '2025-03-02T10:00:00.000Z');
                expect(v2).toEqual({ ...strict, version: 2, updatedAt: '2025-03-02T10:00:00.000Z', updatedBy: 'dave' });
            });

            it('refuses a stale expected version with CONFLICT and keeps the current one', async () => {
                const v1 = await s.policies.put(strict, 0, 'carol', '2025-03-01T10:00:00.000Z');
                await expect(
                    s.policies.put(DEFAULT_POLICY, 0, 'dave', '2025-03-02T10:00:00.000Z'),
                ).rejects.toBeInstanceOf(ConflictError);
                await expect(
                    s.policies.put(DEFAULT_POLICY, 5, 'dave', '2025-03-02T10:00:00.000Z'),
                ).rejects.toBeInstanceOf(ConflictError);
                await expect(s.policies.get()).resolves.toEqual(v1);
            });

            it('lets exactly one of two concurrent edits of the same version win', async () => {
                const results = await Promise.allSettled([
                    s.policies.put(strict, 0, 'carol', '2025-03-01T10:00:00.000Z'),
                    s.policies.put(DEFAULT_POLICY, 0, 'dave', '2025-03-01T10:00:00.000Z'),
                ]);
                const won = results.filter((r) => r.status === 'fulfilled');
                const lost = results.filter((r) => r.status === 'rejected');
                expect(won).toHaveLength(1);
                expect(lost).toHaveLength(1);
                expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
                await expect(s.policies.get()).resolves.toMatchObject({ version: 1 });
            });
        });
    });
}

export interface OpenedLinkUses {
    linkUses: LinkUses;
    close(): void | Promise<void>;
}

/**
 * The LinkUses contract (a link works once). `kind: 'fake'` is for in-memory test doubles, which skip what only a
 * store checks (that a use time is an ISO date-time).
 */
export function describeLinkUsesContract(
    name: string,
    open: () => Promise<OpenedLinkUses>,
    kind: 'store' | 'fake' = 'store',
): void {
    const AT = '2025-06-01T12:00:00.000Z';

    describe(`LinkUses contract: ${name}`, () => {
        let s: OpenedLinkUses;

        beforeEach(async () => {
            s = await open();
        });

        afterEach(async () => {
            await s.close();
        });

        it('is true the first time and false ever after; used() tells without using', async () => {
            const uses = s.linkUses;
            await expect(uses.used('jti-aaaaaaaaaaaaaaaa')).resolves.toBe(false);
            await expect(uses.used('jti-aaaaaaaaaaaaaaaa')).resolves.toBe(false);
            await expect(uses.use('jti-aaaaaaaaaaaaaaaa', AT)).resolves.toBe(true);
            await expect(uses.used('jti-aaaaaaaaaaaaaaaa')).resolves.toBe(true);
            await expect(uses.use('jti-aaaaaaaaaaaaaaaa', AT)).resolves.toBe(false);
            await expect(uses.use('jti-bbbbbbbbbbbbbbbb', AT)).resolves.toBe(true);
        });

        it('of concurrent uses of one jti exactly one wins', async () => {
            const results = await Promise.all(
                Array.from({ length: 20 }, () => s.linkUses.use('jti-cccccccccccccccc', AT)),
            );
            expect(results.filter(Boolean)).toHaveLength(1);
        });

        if (kind === 'store') {
            it('refuses a use time that is not an ISO date-time', async () => {
                await expect(s.linkUses.use('jti-ffffffffffffffff', 'yesterday')).rejects.toMatchObject({
                    code: 'VALIDATION_FAILED',
                });
                await expect(s.linkUses.used('jti-ffffffffffffffff')).resolves.toBe(false);
            });
        }
    });
}

export interface OpenedOutboxStores {
    audit: AuditLog;
    outbox: EventOutbox;
    close(): void | Promise<void>;
}

/**
 * The EventOutbox contract: an entry per audit record of a SPEC event, keyed runId:seq, read back in recording order
 * (so seq order within a run), forgotten once marked published.
 */
export function describeEventOutboxContract(name: string, open: () => Promise<OpenedOutboxStores>): void {
    describe(`EventOutbox contract: ${name}`, () => {
        let s: OpenedOutboxStores;

        beforeEach(async () => {
            s = await open();
        });

        afterEach(async () => {
            await s.close();
        });

        it('holds one entry per SPEC event record, keyed runId:seq, with the stored record', async () => {
            const records: AuditRecord[] = [];
            for (const [i, type] of EVENT_TYPES.entries())
                records.push(await s.audit.append(makeEvent('r1', i + 1, { type })));
            const pending = await s.outbox.pending(100);
            expect(pending.map((e) => e.id)).toEqual(records.map((r) => `r1:${r.seq}`));
            expect(pending.map((e) => e.record)).toEqual(records);
            expect(pending[0]).toEqual({ id: 'r1:1', runId: 'r1', seq: 1, record: records[0] });
        });

        it('counts the unpublished entries (pendingCount, for mesh_events_pending)', async () => {
            await expect(s.outbox.pendingCount()).resolves.toBe(0);
            for (let i = 1; i <= 3; i++) await s.audit.append(makeEvent('r1', i));
            await expect(s.outbox.pendingCount()).resolves.toBe(3);
            await s.outbox.markPublished(['r1:1']);
            await expect(s.outbox.pendingCount()).resolves.toBe(2);
        });

        it('leaves policy changes out: they are audited, not published', async () => {
            await s.audit.append(makeEvent(POLICY_CHAIN, 1, { type: 'policy.updated', stage: undefined }));
            expect(await s.outbox.pending(10)).toEqual([]);
        });

        it('adds nothing for an append repeated with the same eventId', async () => {
            await s.audit.append(makeEvent('r1', 1));
            await s.audit.append(makeEvent('r1', 1));
            await Promise.all([s.audit.append(makeEvent('r1', 2)), s.audit.append(makeEvent('r1', 2))]);
            expect((await s.outbox.pending(10)).map((e) => e.id)).toEqual(['r1:1', 'r1:2']);
        });

        it('returns entries in recording order (so seq order per run) under concurrent appends, a page at a time', async () => {
            const writes = [];
            for (let i = 1; i <= 20; i++)
                for (const run of ['a', 'b', 'c']) writes.push(s.audit.append(makeEvent(run, i)));
            await Promise.all(writes);
            const all = await s.outbox.pending(1000);
            expect(all).toHaveLength(60);
            for (const run of ['a', 'b', 'c'])
                expect(all.filter((e) => e.runId === run).map((e) => e.seq)).toEqual(
                    Array.from({ length: 20 }, (_, i) => i + 1),
                );
            expect(await s.outbox.pending(7)).toEqual(all.slice(0, 7));
        });

        it('forgets what is marked published, idempotently, and leaves the audit records alone', async () => {
            for (let i = 1; i <= 4; i++) await s.audit.append(makeEvent('r1', i));
            await s.outbox.markPublished(['r1:1', 'r1:2']);
            await s.outbox.markPublished(['r1:1', 'nope:9']);
            await s.outbox.markPublished([]);
            expect((await s.outbox.pending(10)).map((e) => e.id)).toEqual(['r1:3', 'r1:4']);
            // A retried append of a published record does not bring its entry back.
            await s.audit.append(makeEvent('r1', 2));
            expect((await s.outbox.pending(10)).map((e) => e.id)).toEqual(['r1:3', 'r1:4']);
            expect((await s.audit.list('r1', 10)).items).toHaveLength(4);
        });
    });
}
