import { ConflictError } from '../../domain/errors';
import {
    assertTransition,
    canTransition,
    initialStages,
    isTerminal,
    nextStage,
    RUN_STATUSES,
    type RunStatus,
    STAGES,
    TERMINAL_STATUSES,
} from '../../domain/pipeline';

/**
 * The run state machine as SPEC ("Statuses", "The pipeline", the endpoint table) describes it, written out here
 * independently of domain/pipeline.ts. A status may always be re-applied to itself (a retried record).
 * - Queued (admitted, waiting for capacity): starts Running; may be aborted, or fail before it starts.
 * - Running: stops at a checkpoint (AwaitingApproval), pauses at a safe point, completes, fails (engine), is aborted.
 *   It never reaches Rejected/TimedOut without a checkpoint being open.
 * - AwaitingApproval: approved (Running), paused, rejected, deadline passed (TimedOut), aborted, or fails.
 * - Paused: resumed (Running, or AwaitingApproval when paused at a checkpoint), aborted, its checkpoint's deadline
 *   passes (TimedOut), or fails. Decisions are not taken while paused, so never Rejected.
 * - Completed, Failed, Aborted, Rejected, TimedOut: terminal, nothing changes them.
 */
const SPEC_TRANSITIONS: Record<RunStatus, RunStatus[]> = {
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

const TERMINAL: RunStatus[] = ['Completed', 'Failed', 'Aborted', 'Rejected', 'TimedOut'];

const pairs = RUN_STATUSES.flatMap((from) =>
    RUN_STATUSES.map((to): [RunStatus, RunStatus, boolean] => [
        from,
        to,
        from === to || SPEC_TRANSITIONS[from].includes(to),
    ]),
);

describe('run statuses', () => {
    it('are the nine of SPEC, five of them terminal', () => {
        expect([...RUN_STATUSES]).toEqual([
            'Queued',
            'Running',
            'AwaitingApproval',
            'Paused',
            'Completed',
            'Failed',
            'Aborted',
            'Rejected',
            'TimedOut',
        ]);
        expect([...TERMINAL_STATUSES].sort()).toEqual([...TERMINAL].sort());
        expect(RUN_STATUSES.filter(isTerminal)).toEqual(TERMINAL);
    });

    it.each(pairs)('%s -> %s allowed: %s', (from, to, allowed) => {
        expect(canTransition(from, to)).toBe(allowed);
        if (allowed) {
            expect(() => assertTransition(from, to)).not.toThrow();
        } else {
            expect(() => assertTransition(from, to)).toThrow(ConflictError);
        }
    });

    it.each(TERMINAL)('%s has no outgoing transition', (from) => {
        expect(RUN_STATUSES.filter((to) => to !== from && canTransition(from, to))).toEqual([]);
    });

    it('assertTransition answers CONFLICT with both statuses and a readable message', () => {
        expect(() => assertTransition('Completed', 'Running')).toThrow(
            expect.objectContaining({
                code: 'CONFLICT',
                status: 409,
                message: 'Cannot move a Completed run to Running.',
                details: { from: 'Completed', to: 'Running' },
            }) as Error,
        );
        expect(() => assertTransition('Running', 'Running', 'resume a run that is not paused')).not.toThrow();
        expect(() => assertTransition('Queued', 'Rejected', 'reject a queued run')).toThrow(
            'Cannot reject a queued run.',
        );
    });
});

describe('stages', () => {
    it('run generation → filtering → creativity → taste → improvement', () => {
        expect([...STAGES]).toEqual(['generation', 'filtering', 'creativity', 'taste', 'improvement']);
        expect(STAGES.map(nextStage)).toEqual(['filtering', 'creativity', 'taste', 'improvement', undefined]);
    });

    it('start Pending with no attempts', () => {
        expect(initialStages()).toEqual(
            STAGES.map((name) => ({ name, status: 'Pending', startedAt: null, endedAt: null, attempts: 0 })),
        );
        expect(initialStages()).not.toBe(initialStages());
    });
});
