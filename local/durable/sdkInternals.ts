/**
 * The one module that reaches into durable-functions internals. The Durable Task extension learns which
 * task ids an out-of-process orchestrator scheduled by replaying its actions through DTFx; this host
 * instead reads the SDK's own task bookkeeping, which is exact for every task type (retries, long timers,
 * entity calls). That couples us to durable-functions 3.5.0, pinned exactly in package.json; the contract
 * suite in test/contract fails loudly if an upgrade moves any of the fields used here.
 */
/* eslint-disable @typescript-eslint/no-require-imports */

/** The SDK's task states (lib/src/task/index.js). */
export enum TaskState {
    Running = 0,
    Failed = 1,
    Completed = 2,
}

/** The subset of an SDK action object this host reads. */
export interface SdkAction {
    actionType: number;
    functionName?: string;
    input?: unknown;
    instanceId?: string;
    version?: string;
    operation?: string;
    fireAt?: Date;
    isCanceled?: boolean;
    retryOptions?: {
        firstRetryIntervalInMilliseconds: number;
        maxNumberOfAttempts: number;
        backoffCoefficient?: number;
        maxRetryIntervalInMilliseconds?: number;
        retryTimeoutInMilliseconds?: number;
    };
    externalEventName?: string;
    compoundActions?: SdkAction[];
}

/** The subset of an SDK task this host reads. */
export interface SdkTask {
    id: number | string | false;
    state: TaskState;
    actionObj: SdkAction | 'noOp';
    parent?: SdkTask & { isWaitingOnTimer?: boolean; attemptNumber?: number; children?: SdkTask[] };
}

interface Executor {
    openTasks: Record<string, SdkTask>;
    deferredTasks: Record<string, unknown[]>;
    trackOpenTask(this: Executor, task: SdkTask): void;
    meshTracked?: Map<number, SdkTask>;
}

const executorModule = require('durable-functions/lib/src/orchestrations/TaskOrchestrationExecutor') as {
    TaskOrchestrationExecutor: { prototype: Executor };
};
const taskModule = require('durable-functions/lib/src/task') as Record<string, new (...args: unknown[]) => unknown>;

const NoOpTask = taskModule.NoOpTask!;
const RetryableTask = taskModule.RetryableTask!;

let patched = false;

/**
 * Records every task that receives a sequence number, completed ones included, so that a replay can be
 * compared with the recorded history (non-determinism detection) and new work can be found exactly.
 */
export function installTaskTracking(): void {
    if (patched) return;
    const proto = executorModule.TaskOrchestrationExecutor.prototype;
    const original = Object.getOwnPropertyDescriptor(proto, 'trackOpenTask')!.value as (
        this: Executor,
        task: SdkTask,
    ) => void;
    proto.trackOpenTask = function (this: Executor, task: SdkTask): void {
        const hadId = task.id !== false;
        original.call(this, task);
        if (!hadId && typeof task.id === 'number') {
            (this.meshTracked ??= new Map()).set(task.id, task);
        }
    };
    patched = true;
}

/** The executor of the orchestration context after a handler call. */
export function executorOf(context: unknown): Executor | undefined {
    const df = (context as { df?: { taskOrchestratorExecutor?: Executor } }).df;
    return df?.taskOrchestratorExecutor;
}

export function isNoOpTask(task: SdkTask): boolean {
    return task instanceof NoOpTask;
}

export function isRetryableTask(task: unknown): boolean {
    return task instanceof RetryableTask;
}
