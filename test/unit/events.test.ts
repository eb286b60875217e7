/** Lifecycle events as CloudEvents 1.0 (domain/events.ts): one per audit record of a SPEC event type. */
import { type AuditRecord, chainNext, EVENT_TYPES, type NewAuditEvent, POLICY_CHAIN } from '../../domain/audit';
import { EVENT_SOURCE, eventIdOf, isPublished, toCloudEvent } from '../../domain/events';
import { TEST_KEYS } from '../support/chainKeys';

function record(over: Partial<NewAuditEvent> = {}, prev?: AuditRecord): AuditRecord {
    return chainNext(
        prev,
        {
            eventId: 'run-7/x',
            runId: 'run-7',
            type: 'checkpoint.decided',
            at: '2025-03-01T10:00:00.123Z',
            actor: 'ava',
            correlationID: 'corr-7',
            ...over,
        },
        TEST_KEYS.current,
    );
}

describe('toCloudEvent', () => {
    it('maps every field of the record, under the CloudEvents 1.0 attributes', () => {
        const first = record({ type: 'pipeline.queued', eventId: 'run-7/0' });
        const r = record(
            {
                stage: 'taste',
                checkpointId: 'cp-1',
                reason: 'looks right',
                details: { decision: 'approve', approvals: 1 },
            },
            first,
        );
        expect(toCloudEvent(r)).toEqual({
            specversion: '1.0',
            id: 'run-7:2',
            type: 'mesh.checkpoint.decided',
            source: '/mesh-orchestrator',
            subject: '/pipelines/run-7',
            time: '2025-03-01T10:00:00.123Z',
            datacontenttype: 'application/json',
            data: {
                orchestrationID: 'run-7',
                seq: 2,
                actor: 'ava',
                correlationID: 'corr-7',
                stage: 'taste',
                checkpointId: 'cp-1',
                reason: 'looks right',
                details: { decision: 'approve', approvals: 1 },
            },
            correlationid: 'corr-7',
        });
    });

    it('leaves absent optional fields out of data (not null, not undefined)', () => {
        const e = toCloudEvent(record({ type: 'pipeline.started', actor: 'system' }));
        expect(Object.keys(e.data).sort()).toEqual(['actor', 'correlationID', 'orchestrationID', 'seq']);
        expect(JSON.parse(JSON.stringify(e))).toEqual(e);
    });

    it('has a stable id per (run, seq): mapping the same record twice gives the same event', () => {
        const r = record();
        expect(toCloudEvent(r)).toEqual(toCloudEvent(structuredClone(r)));
        expect(eventIdOf('run-7', 1)).toBe('run-7:1');
        expect(toCloudEvent(r).source).toBe(EVENT_SOURCE);
    });

    it('uses only lower-case alphanumeric attribute names, as CloudEvents requires of extensions', () => {
        for (const name of Object.keys(toCloudEvent(record()))) expect(name).toMatch(/^[a-z0-9]{1,20}$/);
    });

    it.each(EVENT_TYPES.map((t) => [t]))('publishes %s as mesh.%s', (type) => {
        expect(isPublished(type)).toBe(true);
        expect(toCloudEvent(record({ type })).type).toBe(`mesh.${type}`);
    });

    it('publishes an answer to an info request (issue 11) as mesh.checkpoint.info_provided, actor and checkpoint kept', () => {
        expect(isPublished('checkpoint.info_provided')).toBe(true);
        const e = toCloudEvent(
            record({
                type: 'checkpoint.info_provided',
                actor: 'dana',
                checkpointId: 'run-7.1.taste.before.0',
                stage: 'taste',
                reason: 'the Q3 export',
            }),
        );
        expect(e).toMatchObject({
            type: 'mesh.checkpoint.info_provided',
            subject: '/pipelines/run-7',
            data: { actor: 'dana', checkpointId: 'run-7.1.taste.before.0', stage: 'taste', reason: 'the Q3 export' },
        });
    });

    it('does not publish the policy chain: policy.updated is audited only', () => {
        expect(isPublished('policy.updated')).toBe(false);
        expect(() => toCloudEvent(record({ type: 'policy.updated', runId: POLICY_CHAIN }))).toThrow(/not published/);
    });
});
