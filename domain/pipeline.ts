/**
 * The ideaflow pipeline: its stages in their fixed order, run statuses and the state machine between them.
 */
import { ConflictError } from './errors';

export const STAGES = ['generation', 'filtering', 'creativity', 'taste', 'improvement'] as const;
export type Stage = (typeof STAGES)[number];

export const RISK_LEVELS = ['low', 'medium', 'high', 'critical'] as const;
export type RiskLevel = (typeof RISK_LEVELS)[number];

export const POSITIONS = ['before', 'after'] as const;
export type Position = (typeof POSITIONS)[number];

export const RUN_STATUSES = [
    'Queued',
    'Running',
    'AwaitingApproval',
    'Paused',
    'Completed',
    'Failed',
    'Aborted',
    'Rejected',
    'TimedOut',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export const TERMINAL_STATUSES: ReadonlySet<RunStatus> = new Set([
    'Completed',
    'Failed',
    'Aborted',
    'Rejected',
    'TimedOut',
]);

export type StageStatus = 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Skipped';

/** Legal transitions. A terminal status has none: nothing changes a finished run. */
const TRANSITIONS: Record<RunStatus, readonly RunStatus[]> = {
    Queued: ['Running', 'Aborted', 'Failed'],
    Running: ['AwaitingApproval', 'Paused', 'Completed', 'Failed', 'Aborted'],
    AwaitingApproval: ['Running', 'Paused', 'Rejected', 'TimedOut', 'Aborted', 'Failed'],
    Paused: ['Running', 'AwaitingApproval', 'Aborted', 'TimedOut', 'Failed'],
    Completed: [],
    Failed: [],
    Aborted: [],
    Rejected: [],
    TimedOut: [],
};

export function isTerminal(status: RunStatus): boolean {
    return TERMINAL_STATUSES.has(status);
}

export function canTransition(from: RunStatus, to: RunStatus): boolean {
    return from === to || TRANSITIONS[from].includes(to);
}

/** Throws CONFLICT for an illegal transition (e.g. resuming a run that is not paused). */
export function assertTransition(from: RunStatus, to: RunStatus, what = `move a ${from} run to ${to}`): void {
    if (!canTransition(from, to)) throw new ConflictError(`Cannot ${what}.`, { from, to });
}

/** The stage after `stage`, or undefined after the last one. */
export function nextStage(stage: Stage): Stage | undefined {
    return STAGES[STAGES.indexOf(stage) + 1];
}

/** One stage's progress, as GET /pipeline/status shows it. */
export interface StageState {
    name: Stage;
    status: StageStatus;
    startedAt: string | null;
    endedAt: string | null;
    attempts: number;
}

export function initialStages(): StageState[] {
    return STAGES.map((name) => ({ name, status: 'Pending', startedAt: null, endedAt: null, attempts: 0 }));
}
