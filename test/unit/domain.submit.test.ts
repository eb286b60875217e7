import { ForbiddenError } from '../../domain/errors';
import { STAGES } from '../../domain/pipeline';
import { checkpointsFor, DEFAULT_POLICY } from '../../domain/policy';
import type { Principal } from '../../domain/principal';
import {
    checkpointSpecsOf,
    requestFingerprint,
    type SubmitContext,
    type SubmitRequest,
    submitRun,
} from '../../domain/submit';
import { FixedPolicy, MemoryAudit, MemoryRuns } from '../support/domainFakes';

const dev: Principal = { id: 'dev-1', name: 'Dev One', roles: ['Mesh.Developer'], teams: ['alpha'] };
const AT = '2024-03-01T10:00:00.000Z';

const body = (over: Partial<SubmitRequest['metadata']> = {}, rest: Partial<SubmitRequest> = {}): SubmitRequest => ({
    input: { prompt: 'a better kettle' },
    metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [], ...over },
    ...rest,
});

const context = (over: Partial<SubmitContext> = {}): SubmitContext => ({
    runId: 'run-1',
    correlationID: 'corr-1',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    at: AT,
    ...over,
});

function ports(policy = new FixedPolicy()) {
    return { runs: new MemoryRuns(), audit: new MemoryAudit(), policies: policy };
}

describe('submitRun', () => {
    it('creates a Queued run with every stage Pending and appends pipeline.queued', async () => {
        const p = ports();
        const { run, created } = await submitRun(p, dev, body({ title: 'Kettle' }), context({ idempotencyKey: 'k-1' }));
        expect(created).toBe(true);
        expect(run).toEqual({
            id: 'run-1',
            status: 'Queued',
            metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [], title: 'Kettle' },
            createdBy: 'dev-1',
            createdByName: 'Dev One',
            createdByRoles: ['Mesh.Developer'],
            createdAt: AT,
            updatedAt: AT,
            maxIterations: 1,
            iteration: 1,
            currentStage: null,
            stages: STAGES.map((name) => ({ name, status: 'Pending', startedAt: null, endedAt: null, attempts: 0 })),
            checkpoints: [],
            nextAction: null,
            input: { prompt: 'a better kettle' },
            correlationID: 'corr-1',
            traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
            idempotencyKey: 'k-1',
            // SHA-256 of the canonical body: a reuse of the key with another body is told apart from a retry.
            idempotencyFingerprint: requestFingerprint(body({ title: 'Kettle' })),
        });
        expect(await p.runs.get('run-1')).toEqual(run);
        expect(p.audit.records).toEqual([
            expect.objectContaining({
                eventId: 'run-1/0',
                runId: 'run-1',
                seq: 1,
                type: 'pipeline.queued',
                at: AT,
                actor: 'dev-1',
                correlationID: 'corr-1',
                details: { team: 'alpha', riskLevel: 'low', complianceTags: [], checkpoints: [], maxIterations: 1 },
            }),
        ]);
    });

    it('keeps maxIterations when given', async () => {
        const { run } = await submitRun(ports(), dev, body({}, { maxIterations: 3 }), context());
        expect(run.maxIterations).toBe(3);
    });

    it('computes the checkpoints from the policy, fixed for the run (high risk: before taste, after improvement)', async () => {
        const p = ports();
        const { run } = await submitRun(p, dev, body({ riskLevel: 'high' }), context());
        expect(run.checkpoints).toEqual([
            {
                checkpointId: 'run-1.1.taste.before.0',
                key: 'taste.before.0',
                iteration: 1,
                stage: 'taste',
                position: 'before',
                requiredRoles: ['Mesh.Approver'],
                approvals: 1,
                timeoutMs: 86_400_000,
                rule: 'high-risk review before taste',
                onTimeout: 'reject',
                escalateTo: [],
                channels: ['email', 'teams'],
                status: 'Pending',
                openedAt: null,
                deadline: null,
                escalated: false,
                decisions: [],
            },
            expect.objectContaining({
                checkpointId: 'run-1.1.improvement.after.0',
                stage: 'improvement',
                position: 'after',
                status: 'Pending',
            }),
        ]);
        expect(p.audit.records[0]!.details).toMatchObject({ checkpoints: ['taste.before.0', 'improvement.after.0'] });
        // The orchestration input is the run's own specs, the same as the policy gave.
        expect(checkpointSpecsOf(run)).toEqual(
            checkpointsFor(DEFAULT_POLICY, {
                riskLevel: 'high',
                complianceTags: [],
                team: 'alpha',
                submitterRoles: ['Mesh.Developer'],
            }),
        );
    });

    it('matches policy rules on the submitter’s roles, tags and team', async () => {
        const policy = new FixedPolicy({
            rules: [
                {
                    name: 'data scientists with pii',
                    match: {
                        submitterRoles: ['Mesh.DataScientist'],
                        complianceTags: ['pii'],
                        teams: ['alpha'],
                        stages: ['filtering'],
                    },
                    position: 'after',
                    requiredRoles: ['Mesh.Compliance'],
                    approvals: 1,
                    timeout: 'PT4H',
                    onTimeout: 'approve',
                    channels: ['slack'],
                },
            ],
        });
        const scientist: Principal = { ...dev, id: 'ds-1', roles: ['Mesh.DataScientist'] };
        const hit = await submitRun(ports(policy), scientist, body({ complianceTags: ['pii'] }), context());
        expect(hit.run.checkpoints.map((c) => [c.checkpointId, c.timeoutMs, c.onTimeout])).toEqual([
            ['run-1.1.filtering.after.0', 14_400_000, 'approve'],
        ]);
        expect(
            (await submitRun(ports(policy), dev, body({ complianceTags: ['pii'] }), context())).run.checkpoints,
        ).toEqual([]);
        expect((await submitRun(ports(policy), scientist, body(), context())).run.checkpoints).toEqual([]);
    });

    it('called twice with the same idempotency key: one run, pipeline.queued appended once', async () => {
        const p = ports();
        const first = await submitRun(p, dev, body(), context({ runId: 'run-1', idempotencyKey: 'k-1' }));
        const second = await submitRun(
            p,
            dev,
            body(),
            context({ runId: 'run-2', idempotencyKey: 'k-1', at: '2024-03-01T10:05:00.000Z' }),
        );
        expect(second).toEqual({ run: first.run, created: false });
        expect([...p.runs.docs.keys()]).toEqual(['run-1']);
        expect(p.audit.records.filter((r) => r.type === 'pipeline.queued')).toHaveLength(1);
        expect(p.audit.records[0]).toMatchObject({ eventId: 'run-1/0', at: AT });
        // The retry re-appends the same event (completing a submission that crashed midway), which the log de-duplicates.
        expect(p.audit.appended.map((e) => e.eventId)).toEqual(['run-1/0', 'run-1/0']);
    });

    it('another caller’s identical idempotency key creates their own run', async () => {
        const p = ports();
        await submitRun(p, dev, body(), context({ idempotencyKey: 'k-1' }));
        const other = await submitRun(
            p,
            { ...dev, id: 'dev-2' },
            body(),
            context({ runId: 'run-2', idempotencyKey: 'k-1' }),
        );
        expect(other.created).toBe(true);
        expect(p.audit.types('run-2')).toEqual(['pipeline.queued']);
    });

    it('a developer of another team is forbidden, and nothing is stored', async () => {
        const p = ports();
        const outsider: Principal = { ...dev, teams: ['beta'] };
        await expect(submitRun(p, outsider, body(), context())).rejects.toBeInstanceOf(ForbiddenError);
        expect(p.runs.calls.create).toBe(0);
        expect(p.audit.appended).toEqual([]);
    });

    it('an approver (no submitting role) is forbidden', async () => {
        const p = ports();
        await expect(submitRun(p, { ...dev, roles: ['Mesh.Approver'] }, body(), context())).rejects.toThrow(
            ForbiddenError,
        );
        expect(p.runs.docs.size).toBe(0);
    });

    it('an operator may submit for any team', async () => {
        const operator: Principal = { id: 'op-1', roles: ['Mesh.Operator'], teams: [] };
        const { run } = await submitRun(ports(), operator, body({ team: 'gamma' }), context());
        expect(run).toMatchObject({ createdBy: 'op-1', metadata: { team: 'gamma' } });
        expect(run).not.toHaveProperty('createdByName');
    });
});

it('fingerprints a request by its canonical JSON: key order does not matter, content does', () => {
    const a: SubmitRequest = {
        input: { prompt: 'p', n: 1 },
        metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [] },
    };
    const reordered = JSON.parse(
        '{"metadata":{"complianceTags":[],"riskLevel":"low","team":"alpha"},"input":{"n":1,"prompt":"p"}}',
    ) as SubmitRequest;
    expect(requestFingerprint(reordered)).toBe(requestFingerprint(a));
    expect(requestFingerprint(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(requestFingerprint({ ...a, input: { prompt: 'q', n: 1 } })).not.toBe(requestFingerprint(a));
});
