/**
 * Types for the few durable-functions 3.5.0 internals the replay helper and the SDK contract suite use. The
 * package ships no declarations for lib/src, and these modules are not public API: package.json pins the version
 * exactly and test/contract/durableSdk.contract.test.ts fails if an upgrade moves any of them.
 */

declare module 'durable-functions/lib/src/util/testingUtils' {
    import type { InvocationContext } from '@azure/functions';
    import type { OrchestrationHandler } from 'durable-functions';

    /** `new Orchestrator(fn).listen()`: the handler `df.app.orchestration` registers. */
    export function createOrchestrator(
        fn: OrchestrationHandler,
    ): (trigger: unknown, context: InvocationContext) => Promise<unknown>;
}

declare module 'durable-functions/lib/src/orchestrations/TaskOrchestrationExecutor' {
    export class TaskOrchestrationExecutor {
        openTasks: Record<string, unknown>;
        deferredTasks: Record<string, unknown[]>;
        /** Gives a task its sequence number (task id) when it is first yielded. */
        trackOpenTask(task: unknown): void;
    }
}

declare module 'durable-functions/lib/src/task' {
    export enum TaskState {
        Running = 0,
        Failed = 1,
        Completed = 2,
    }

    export class TaskBase {
        id: number | string | false;
        state: TaskState;
        parent?: TaskBase;
        readonly actionObj: unknown;
    }

    export class NoOpTask extends TaskBase {}

    export class CompoundTask extends TaskBase {
        children: TaskBase[];
    }

    export class RetryableTask extends CompoundTask {
        attemptNumber: number;
        isWaitingOnTimer: boolean;
    }
}

declare module 'durable-functions/lib/src/history/HistoryEventType' {
    export const HistoryEventType: Record<string, string | number>;
}

declare module 'durable-functions/lib/src/actions/ActionType' {
    export const ActionType: Record<string, string | number>;
}
