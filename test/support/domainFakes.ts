/**
 * In-memory fakes of the domain ports (domain/ports.ts) for unit tests of the use-cases in domain/submit.ts and
 * domain/steps.ts. They keep the contracts the use-cases rely on (idempotent create by key and creator, audit
 * appends idempotent by eventId, read-modify-write updates) and record how they were called. The engine fake
 * answers with canned results and throws when it runs out (STYLE.md §9).
 */
import { type AuditRecord, chainNext, type NewAuditEvent } from '../../domain/audit';
import { ConflictError, NotFoundError } from '../../domain/errors';
import { initialStages } from '../../domain/pipeline';
import { type CheckpointPolicy, DEFAULT_POLICY, type VersionedPolicy } from '../../domain/policy';
import type {
    AuditLog,
    EngineClient,
    EngineRequest,
    EngineResult,
    Page,
    PolicyStore,
    RunFilter,
    RunStateCounts,
    RunStore,
} from '../../domain/ports';
import { assertSameRequest, type RunDoc } from '../../domain/run';
import { TEST_KEYS } from './chainKeys';

const copy = <T>(value: T): T => structuredClone(value);

export class MemoryRuns implements RunStore {
    readonly docs = new Map<string, RunDoc>();
    readonly outputs = new Map<string, unknown>();
    readonly calls = { create: 0, update: 0, putOutput: 0, getOutput: 0 };
    private readonly keys = new Map<string, string>();

    create(run: RunDoc): Promise<{ run: RunDoc; created: boolean }> {
        this.calls.create++;
        const key = run.idempotencyKey === undefined ? undefined : `${run.createdBy}\n${run.idempotencyKey}`;
        const existing = key === undefined ? undefined : this.keys.get(key);
        if (existing !== undefined) {
            const stored = this.docs.get(existing)!;
            return Promise.resolve().then(() => {
                assertSameRequest(stored.idempotencyFingerprint, run.idempotencyFingerprint);
                return { run: copy(stored), created: false };
            });
        }
        if (this.docs.has(run.id)) return Promise.reject(new ConflictError(`Run ${run.id} exists.`));
        this.docs.set(run.id, copy(run));
        if (key !== undefined) this.keys.set(key, run.id);
        return Promise.resolve({ run: copy(run), created: true });
    }

    get(id: string): Promise<RunDoc | undefined> {
        const run = this.docs.get(id);
        return Promise.resolve(run && copy(run));
    }

    update(id: string, mutate: (run: RunDoc) => RunDoc | undefined): Promise<RunDoc> {
        this.calls.update++;
        const current = this.docs.get(id);
        if (!current) return Promise.reject(new NotFoundError(`Run ${id} was not found.`));
        const next = mutate(copy(current));
        if (next) this.docs.set(id, copy(next));
        return Promise.resolve(copy(next ?? current));
    }

    list(_filter: RunFilter, _limit: number): Promise<Page<RunDoc>> {
        return Promise.reject(new Error('MemoryRuns.list is not used by these tests'));
    }

    count(_filter: RunFilter): Promise<number> {
        return Promise.reject(new Error('MemoryRuns.count is not used by these tests'));
    }

    stateCounts(): Promise<RunStateCounts> {
        return Promise.reject(new Error('MemoryRuns.stateCounts is not used by these tests'));
    }

    changesSince(): Promise<{ runs: RunDoc[]; cursor: string | undefined }> {
        return Promise.reject(new Error('MemoryRuns.changesSince is not used by these tests'));
    }

    putOutput(runId: string, key: string, output: unknown): Promise<void> {
        this.calls.putOutput++;
        this.outputs.set(`${runId}/${key}`, copy(output));
        return Promise.resolve();
    }

    getOutput(runId: string, key: string): Promise<unknown> {
        this.calls.getOutput++;
        return Promise.resolve(copy(this.outputs.get(`${runId}/${key}`)));
    }

    ping(): Promise<void> {
        return Promise.resolve();
    }
}

export class MemoryAudit implements AuditLog {
    readonly records: AuditRecord[] = [];
    /** Every append call, duplicates included. */
    readonly appended: NewAuditEvent[] = [];

    append(event: NewAuditEvent): Promise<AuditRecord> {
        this.appended.push(copy(event));
        const existing = this.records.find((r) => r.runId === event.runId && r.eventId === event.eventId);
        if (existing) return Promise.resolve(existing);
        const prev = this.records.filter((r) => r.runId === event.runId).at(-1);
        const record = chainNext(prev, event, TEST_KEYS.current);
        this.records.push(record);
        return Promise.resolve(record);
    }

    list(runId: string): Promise<Page<AuditRecord>> {
        return Promise.resolve({ items: this.records.filter((r) => r.runId === runId) });
    }

    latest(runId: string, limit: number): Promise<AuditRecord[]> {
        return Promise.resolve(this.records.filter((r) => r.runId === runId).slice(-limit));
    }

    async *all(runId: string): AsyncIterable<AuditRecord> {
        for (const r of (await this.list(runId)).items) yield r;
    }

    types(runId: string): string[] {
        return this.records.filter((r) => r.runId === runId).map((r) => r.type);
    }
}

export class FixedPolicy implements PolicyStore {
    constructor(private readonly policy: CheckpointPolicy = DEFAULT_POLICY) {}

    get(): Promise<VersionedPolicy> {
        return Promise.resolve({
            ...copy(this.policy),
            version: 1,
            updatedAt: '2024-01-01T00:00:00.000Z',
            updatedBy: 'system',
        });
    }

    put(): Promise<VersionedPolicy> {
        return Promise.reject(new Error('FixedPolicy.put is not used by these tests'));
    }
}

/** Answers each call with the next canned result (an Error is thrown: a transient failure); throws when exhausted. */
export class CannedEngine implements EngineClient {
    readonly requests: EngineRequest[] = [];

    constructor(private readonly answers: (EngineResult | Error)[] = []) {}

    queue(...more: (EngineResult | Error)[]): this {
        this.answers.push(...more);
        return this;
    }

    invoke(req: EngineRequest): Promise<EngineResult> {
        this.requests.push(copy(req));
        const answer = this.answers.shift();
        if (answer === undefined)
            return Promise.reject(new Error(`CannedEngine: no answer left for ${req.stage}#${req.iteration}`));
        return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    }
}

/** A run as submitRun creates it (status Queued, no checkpoints); override what a test needs. */
export function makeRun(over: Partial<RunDoc> = {}): RunDoc {
    return {
        id: 'run-1',
        status: 'Queued',
        metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] },
        createdBy: 'dev-1',
        createdByRoles: ['Mesh.Developer'],
        createdAt: '2024-01-01T00:00:00.000Z',
        updatedAt: '2024-01-01T00:00:00.000Z',
        maxIterations: 1,
        iteration: 1,
        currentStage: null,
        stages: initialStages(),
        checkpoints: [],
        nextAction: null,
        input: { prompt: 'an idea' },
        correlationID: 'corr-1',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        ...over,
    };
}
