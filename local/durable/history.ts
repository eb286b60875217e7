/**
 * The history events the Durable Task extension feeds to out-of-process SDKs (PascalCase, as the
 * extension serializes them). Only the fields the durable-functions SDK reads, plus the ones this host
 * needs for its own bookkeeping, are modelled. Every Input/Result is a JSON *string*, as on the wire.
 */
export enum EventType {
    ExecutionStarted = 0,
    ExecutionCompleted = 1,
    ExecutionFailed = 2,
    ExecutionTerminated = 3,
    TaskScheduled = 4,
    TaskCompleted = 5,
    TaskFailed = 6,
    SubOrchestrationInstanceCreated = 7,
    SubOrchestrationInstanceCompleted = 8,
    SubOrchestrationInstanceFailed = 9,
    TimerCreated = 10,
    TimerFired = 11,
    OrchestratorStarted = 12,
    OrchestratorCompleted = 13,
    EventSent = 14,
    EventRaised = 15,
    ContinueAsNew = 16,
    ExecutionSuspended = 19,
    ExecutionResumed = 20,
}

export interface HistoryEvent {
    EventType: EventType;
    EventId: number;
    IsPlayed: boolean;
    Timestamp: string;
    Name?: string;
    Input?: string;
    Result?: string;
    Reason?: string;
    Details?: string;
    TaskScheduledId?: number;
    TimerId?: number;
    FireAt?: string;
    InstanceId?: string;
    OrchestrationStatus?: string;
    /** Host bookkeeping: a signal sent to an entity (fire-and-forget, no task id). */
    Signal?: boolean;
    ParentInstance?: { InstanceId: string; TaskScheduledId: number; ExecutionId: string } | null;
    OrchestrationInstance?: { InstanceId: string; ExecutionId: string };
}

/** Events the SDK never reads but this host must see to know what work was already scheduled. */
export const SCHEDULING_EVENTS = new Set([
    EventType.TaskScheduled,
    EventType.TimerCreated,
    EventType.SubOrchestrationInstanceCreated,
    EventType.EventSent,
]);

export function event(type: EventType, at: Date, fields: Partial<HistoryEvent> = {}): HistoryEvent {
    return { EventType: type, EventId: -1, IsPlayed: false, Timestamp: at.toISOString(), ...fields };
}

/** JSON for history payloads: `undefined` becomes `null` because the SDK JSON.parses every Result. */
export function toJson(value: unknown): string {
    return value === undefined ? 'null' : JSON.stringify(value);
}
