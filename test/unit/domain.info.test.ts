/**
 * The info loop (issue 11, domain/info.ts): who may answer an approver's request for information, when, and what an
 * answer records (audit + projection, through recordStateChange), against the in-memory fakes.
 */
import { ConflictError, ForbiddenError, NotFoundError } from '../../domain/errors';
import { answerInfoRequest, assertAnswerable, type InfoPorts } from '../../domain/info';
import type { Principal } from '../../domain/principal';
import type { RunDoc } from '../../domain/run';
import { MemoryAudit, MemoryRuns } from '../support/domainFakes';
import { CP, waitingRun } from '../support/linkFixtures';

const NOW = '2025-06-01T13:00:00.000Z';
const ASKED = { by: 'ava', at: '2025-06-01T12:00:00.000Z', comment: 'which dataset?' };
const SUBMITTER: Principal = { id: 'dana', roles: ['Mesh.Developer'], teams: ['alpha'] };
const TEAMMATE: Principal = { id: 'sam', roles: ['Mesh.DataScientist'], teams: ['alpha'] };
const OTHER_TEAM: Principal = { id: 'bo', roles: ['Mesh.Developer'], teams: ['beta'] };
const COMPLIANCE: Principal = { id: 'cy', roles: ['Mesh.Compliance'], teams: [] };
const OPERATOR: Principal = { id: 'olga', roles: ['Mesh.Operator'], teams: [] };
const APPROVER: Principal = { id: 'ava', roles: ['Mesh.Approver'], teams: ['alpha'] };

const asking = (over: Partial<RunDoc> = {}, cp = {}): RunDoc => waitingRun(over, { infoRequest: ASKED, ...cp });

describe('assertAnswerable', () => {
    it('lets the submitter and a Developer or DataScientist of the team answer', () => {
        expect(assertAnswerable(SUBMITTER, asking(), CP).checkpoint.checkpointId).toBe(CP);
        expect(assertAnswerable(TEAMMATE, asking(), CP).run.id).toBe('run-1');
    });

    it('NOT_FOUND for a run the caller cannot see, or an unknown checkpoint; FORBIDDEN for those who see it but may not answer', () => {
        expect(() => assertAnswerable(OTHER_TEAM, asking(), CP)).toThrow(NotFoundError);
        expect(() => assertAnswerable(SUBMITTER, undefined, CP)).toThrow(NotFoundError);
        expect(() => assertAnswerable(SUBMITTER, asking(), 'run-1.1.taste.after.0')).toThrow(NotFoundError);
        expect(() => assertAnswerable(SUBMITTER, asking(), 'run-2.1.taste.before.0')).toThrow(NotFoundError);
        for (const p of [COMPLIANCE, OPERATOR, APPROVER])
            expect(() => assertAnswerable(p, asking(), CP)).toThrow(ForbiddenError);
    });

    it('CONFLICT without an open info request, on a closed checkpoint, or when the run does not await approval', () => {
        expect(() => assertAnswerable(SUBMITTER, waitingRun(), CP)).toThrow(ConflictError);
        expect(() => assertAnswerable(SUBMITTER, asking({}, { status: 'Approved' }), CP)).toThrow(ConflictError);
        expect(() => assertAnswerable(SUBMITTER, asking({ status: 'Paused' }), CP)).toThrow(ConflictError);
        expect(assertAnswerable(SUBMITTER, asking({}, { status: 'Escalated' }), CP).checkpoint.status).toBe(
            'Escalated',
        );
    });
});

describe('answerInfoRequest', () => {
    async function setup(run = asking()) {
        const runs = new MemoryRuns();
        const audit = new MemoryAudit();
        await runs.create(run);
        const ports: InfoPorts = { runs, audit, now: () => new Date(NOW) };
        return { runs, audit, ports };
    }

    it('records checkpoint.info_provided (actor, reason, correlation) and the answer, closing the request', async () => {
        const { runs, audit, ports } = await setup();
        const out = await answerInfoRequest(ports, SUBMITTER, CP, 'the Q3 export', 'corr-1');
        expect(out.eventId).toMatch(/^run-1\/info\/[0-9a-f-]{36}$/);
        const records = audit.records.filter((r) => r.runId === 'run-1');
        expect(records).toEqual([
            expect.objectContaining({
                eventId: out.eventId,
                type: 'checkpoint.info_provided',
                actor: 'dana',
                at: NOW,
                correlationID: 'corr-1',
                checkpointId: CP,
                stage: 'taste',
                reason: 'the Q3 export',
                details: { requestedBy: 'ava', requestedAt: ASKED.at },
            }),
        ]);
        const cp = (await runs.get('run-1'))!.checkpoints[0]!;
        expect(cp.infoRequest).toBeUndefined();
        expect(cp.infoAnswers).toEqual([{ by: 'dana', at: NOW, comment: 'the Q3 export' }]);
        expect(cp.status).toBe('Open'); // the checkpoint keeps waiting for a decision
        // answered: a second answer is CONFLICT and records nothing
        await expect(answerInfoRequest(ports, TEAMMATE, CP, 'more', 'corr-2')).rejects.toThrow(ConflictError);
        expect(audit.records.filter((r) => r.runId === 'run-1')).toHaveLength(1);
    });

    it('of two answers racing for one request, one wins and the other is CONFLICT (one audit record)', async () => {
        const { runs, audit, ports } = await setup();
        const results = await Promise.allSettled([
            answerInfoRequest(ports, SUBMITTER, CP, 'first', 'c1'),
            answerInfoRequest(ports, TEAMMATE, CP, 'second', 'c2'),
        ]);
        expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
        expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: expect.any(ConflictError) });
        expect(audit.records.filter((r) => r.type === 'checkpoint.info_provided')).toHaveLength(1);
        expect((await runs.get('run-1'))!.checkpoints[0]!.infoAnswers).toHaveLength(1);
    });

    it('changes nothing for a caller who may not answer', async () => {
        const { runs, audit, ports } = await setup();
        await expect(answerInfoRequest(ports, COMPLIANCE, CP, 'x', 'c')).rejects.toThrow(ForbiddenError);
        await expect(answerInfoRequest(ports, OTHER_TEAM, CP, 'x', 'c')).rejects.toThrow(NotFoundError);
        expect(audit.records).toHaveLength(0);
        expect((await runs.get('run-1'))!.checkpoints[0]!.infoRequest).toEqual(ASKED);
    });
});
