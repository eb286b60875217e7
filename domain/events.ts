/**
 * Lifecycle events (SPEC "Events"): every state change is one CloudEvents 1.0 event, and the same events, and only
 * those, become audit records. So the audit record is the event's source of truth: this module maps a stored record
 * to the event published for it. The event id is `${runId}:${seq}`, fixed once the record is appended, so a record
 * published twice (a crash between publishing and marking it published) carries the same id both times and
 * consumers de-duplicate by it.
 */
import { type AuditRecord, type AuditType, EVENT_TYPES, type EventType, optionalFieldsOf } from './audit';
import type { Stage } from './pipeline';

/** `source` of every event: the orchestrator as a whole (the run is the `subject`). */
export const EVENT_SOURCE = '/mesh-orchestrator';
/** Every event type is the audit type under this prefix: `mesh.pipeline.started`, `mesh.stage.completed` … */
export const EVENT_TYPE_PREFIX = 'mesh.';

/** The event's `data`: the audit record's content, without the chain fields (hash, prevHash) and the eventId. */
export interface MeshEventData {
    orchestrationID: string;
    seq: number;
    actor: string;
    correlationID: string;
    stage?: Stage;
    checkpointId?: string;
    reason?: string;
    details?: Record<string, unknown>;
}

/** A CloudEvents 1.0 event in its JSON form (structured mode), with the `correlationid` extension attribute. */
export interface MeshCloudEvent {
    specversion: '1.0';
    id: string;
    type: string;
    source: string;
    subject: string;
    /** RFC 3339: the record's `at`. */
    time: string;
    datacontenttype: 'application/json';
    data: MeshEventData;
    /** Extension attribute (CloudEvents names are lower-case alphanumerics): the SPEC's `correlationID`. */
    correlationid: string;
}

const PUBLISHED = new Set<string>(EVENT_TYPES);

/** Whether records of this type become events (every SPEC event type; not the policy chain's `policy.updated`). */
export function isPublished(type: AuditType): type is EventType {
    return PUBLISHED.has(type);
}

/** The event id of a run's record: stable, so a re-published event is recognisably the same one. */
export function eventIdOf(runId: string, seq: number): string {
    return `${runId}:${seq}`;
}

/** The run an event's subject names. */
export function subjectOf(runId: string): string {
    return `/pipelines/${runId}`;
}

/** The CloudEvent published for an audit record. Throws for a record whose type is not a SPEC event. */
export function toCloudEvent(record: AuditRecord): MeshCloudEvent {
    if (!isPublished(record.type)) throw new Error(`toCloudEvent: '${record.type}' records are not published`);
    return {
        specversion: '1.0',
        id: eventIdOf(record.runId, record.seq),
        type: EVENT_TYPE_PREFIX + record.type,
        source: EVENT_SOURCE,
        subject: subjectOf(record.runId),
        time: record.at,
        datacontenttype: 'application/json',
        data: {
            orchestrationID: record.runId,
            seq: record.seq,
            actor: record.actor,
            correlationID: record.correlationID,
            ...optionalFieldsOf(record),
        },
        correlationid: record.correlationID,
    };
}
