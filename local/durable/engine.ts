/**
 * The embedded Durable Task engine: drives the real durable-functions orchestrator, activity and entity
 * handlers the way the Durable Task extension does, with all state in the DurableStore. Each unit of work
 * (an orchestration episode, an activity completion, an entity operation) commits in one transaction and
 * only then is its follow-up work dispatched, so a crash at any point is recovered by re-reading the store.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';

import { InvocationContext } from '@azure/functions';

import { GroupCommit } from '../../adapters/embedded/sqliteStores';
import { DueHeap } from './heap';
import { event, EventType, HistoryEvent, toJson } from './history';
import { OrchestrationHandler, runEpisode, Work } from './replay';
import {
    DurableStore,
    InstanceQuery,
    InstanceRow,
    MessageRow,
    NewMessage,
    RuntimeStatus,
    TERMINAL_STATUSES,
    WorkItemRow,
} from './store';

export type ActivityHandler = (input: unknown, ctx: InvocationContext) => Promise<unknown>;
export type EntityHandler = (binding: EntityBinding, ctx: InvocationContext) => Promise<unknown>;

export interface EntityBinding {
    self: { name: string; key: string };
    exists: boolean;
    state: string | undefined;
    batch: { id: string; name: string; signal: boolean; input: string | undefined }[];
}

interface EntityState {
    results: { isError: boolean; result?: string }[];
    signals: { target: { name: string; key: string }; name: string; input?: string }[];
    entityExists: boolean;
    entityState?: string;
}

/** Entity operations as they wait in the store. */
interface EntityMessage {
    requestId: string;
    operation: string;
    signal: boolean;
    input?: string;
    parentInstanceId?: string;
    parentExecutionId?: string;
}

export interface EngineLimits {
    maxConcurrentActivityFunctions: number;
    maxConcurrentOrchestratorFunctions: number;
    maxConcurrentEntityFunctions: number;
    /** Backlog (queued + running units of work) above which new client work waits to be admitted. */
    maxBacklog: number;
}

export interface EngineRegistrations {
    orchestrators: Map<string, OrchestrationHandler>;
    activities: Map<string, ActivityHandler>;
    /** Keyed by the lower-case entity name, as entity scheduler ids are. */
    entities: Map<string, EntityHandler>;
}

export type Logger = (level: 'debug' | 'information' | 'warning' | 'error', message: string) => void;

export class ClientError extends Error {
    constructor(
        readonly status: 400 | 404 | 409 | 410,
        message: string,
    ) {
        super(message);
    }
}

export interface InstanceStatus {
    name: string;
    instanceId: string;
    createdTime: string;
    lastUpdatedTime: string;
    input: unknown;
    output: unknown;
    runtimeStatus: RuntimeStatus;
    customStatus: unknown;
    history?: unknown[];
}

interface CachedHistory {
    executionId: string;
    events: HistoryEvent[];
}

const HISTORY_CACHE_LIMIT = 20_000;

export class DurableEngine extends EventEmitter {
    private readonly ready = new Set<string>();
    private readonly queue: string[] = [];
    private readonly busy = new Set<string>();
    private readonly again = new Set<string>();
    private runningOrchestrations = 0;
    private runningEntities = 0;
    private readonly activityQueue: WorkItemRow[] = [];
    private readonly activityInFlight = new Set<number>();
    private readonly timers = new DueHeap<string>();
    private timerHandle: NodeJS.Timeout | undefined;
    private timerDue = Infinity;
    private readonly historyCache = new Map<string, CachedHistory>();
    private pumpScheduled = false;
    private stopping = false;
    private readonly inFlight = new Set<Promise<unknown>>();
    private readonly commits: GroupCommit;
    private readonly admissionWaiters: (() => void)[] = [];

    constructor(
        private readonly store: DurableStore,
        private readonly registrations: EngineRegistrations,
        private readonly limits: EngineLimits,
        private readonly log: Logger = () => undefined,
        private readonly clock: () => number = Date.now,
    ) {
        super();
        this.setMaxListeners(0);
        this.commits = new GroupCommit(store.db);
    }

    /** Recovers from the store: re-dispatches in-flight activities, due messages and future timers. */
    start(): void {
        const now = this.clock();
        for (const item of this.store.allWork()) this.activityQueue.push(item);
        for (const target of this.store.readyTargets(now)) this.notify(target);
        for (const { target, dueAt } of this.store.futureMessages(now)) this.addTimer(dueAt, target);
        this.schedulePump();
    }

    /** Stops taking new work and waits (bounded) for what is running to commit. */
    async stop(timeoutMs = 5_000): Promise<void> {
        this.stopping = true;
        if (this.timerHandle) clearTimeout(this.timerHandle);
        const deadline = new Promise((r) => setTimeout(r, timeoutMs).unref());
        await Promise.race([Promise.allSettled([...this.inFlight]), deadline]);
    }

    // ---- client operations (the Durable HTTP management API maps onto these) ----

    async startNew(name: string, instanceId: string | undefined, input: unknown): Promise<string> {
        await this.admit();
        if (!this.registrations.orchestrators.has(name))
            throw new ClientError(
                400,
                `The function '${name}' doesn't exist, is disabled, or is not an orchestrator function.`,
            );
        const id = instanceId ?? randomUUID().replace(/-/g, '');
        validateInstanceId(id);
        const now = this.clock();
        const executionId = randomUUID().replace(/-/g, '');
        await this.commit(() => {
            const existing = this.store.getInstance(id);
            if (existing && !TERMINAL_STATUSES.has(existing.status)) {
                throw new ClientError(409, `An instance with ID '${id}' already exists.`);
            }
            this.createInstance({ id, name, executionId, input, now, parent: null });
        });
        this.historyCache.delete(id);
        this.notify(id);
        return id;
    }

    raiseEvent(instanceId: string, eventName: string, data: unknown): Promise<void> {
        return this.sendControl(
            instanceId,
            event(EventType.EventRaised, new Date(this.clock()), { Name: eventName, Input: toJson(data) }),
        );
    }

    terminate(instanceId: string, reason: string): Promise<void> {
        return this.sendControl(
            instanceId,
            event(EventType.ExecutionTerminated, new Date(this.clock()), { Input: toJson(reason) }),
        );
    }

    suspend(instanceId: string, reason: string): Promise<void> {
        return this.sendControl(
            instanceId,
            event(EventType.ExecutionSuspended, new Date(this.clock()), { Reason: reason }),
        );
    }

    resume(instanceId: string, reason: string): Promise<void> {
        return this.sendControl(
            instanceId,
            event(EventType.ExecutionResumed, new Date(this.clock()), { Reason: reason }),
        );
    }

    async purge(instanceId: string): Promise<number> {
        const deleted = await this.commit(() => this.store.purge(instanceId));
        this.historyCache.delete(instanceId);
        return deleted ? 1 : 0;
    }

    getStatus(
        instanceId: string,
        opts: { showHistory?: boolean; showInput?: boolean } = {},
    ): InstanceStatus | undefined {
        const row = this.store.getInstance(instanceId);
        if (!row) return undefined;
        const status = toStatus(row, opts.showInput !== false);
        if (opts.showHistory) status.history = this.store.history(row.id, row.executionId).map(toHistoryItem);
        return status;
    }

    query(filter: InstanceQuery, showInput = true): { instances: InstanceStatus[]; continuation?: string } {
        const { rows, continuation } = this.store.queryInstances(filter);
        return { instances: rows.map((r) => toStatus(r, showInput)), continuation };
    }

    async signalEntity(entityId: string, operation: string, input: string | undefined): Promise<void> {
        this.entityRegistration(entityId);
        const message: EntityMessage = { requestId: randomUUID(), operation, signal: true, input };
        await this.commit(() =>
            this.store.insertMessage({
                target: entityId,
                executionId: null,
                dueAt: this.clock(),
                body: JSON.stringify(message),
            }),
        );
        this.notify(entityId);
    }

    readEntity(entityId: string): { exists: boolean; state: unknown } {
        const row = this.store.getEntity(entityId);
        return row
            ? { exists: true, state: row.state === null ? null : (JSON.parse(row.state) as unknown) }
            : { exists: false, state: undefined };
    }

    /** True when the store answers (readiness). */
    healthy(): boolean {
        try {
            return !this.stopping && this.store.ping();
        } catch {
            return false;
        }
    }

    // ---- group commit ----

    /**
     * Runs `work` inside the next batch transaction and resolves once that batch has committed. Every unit
     * of work queued in one turn of the event loop commits together (group commit): one WAL write instead
     * of one per unit. If a unit throws, the batch is redone with a savepoint per unit, so it rolls back alone.
     */
    private commit<T>(work: () => T): Promise<T> {
        return this.commits.run(work);
    }

    // ---- flow control ----

    /**
     * New client work (starts, events) waits while the engine's own backlog is long. Accepting events
     * faster than they can be processed only grows a queue, and every event in it waits longer; holding
     * the caller briefly keeps event-to-completion latency bounded (at most `waitMs`, then admitted anyway).
     */
    private admit(waitMs = 5_000): Promise<void> {
        if (this.backlog() < this.limits.maxBacklog || this.stopping) return Promise.resolve();
        return new Promise<void>((resolve) => {
            const timer = setTimeout(release, waitMs);
            function release(): void {
                clearTimeout(timer);
                resolve();
            }
            this.admissionWaiters.push(release);
        });
    }

    private backlog(): number {
        return this.queue.length + this.activityQueue.length + this.runningOrchestrations + this.activityInFlight.size;
    }

    private releaseAdmissions(): void {
        while (this.admissionWaiters.length && this.backlog() < this.limits.maxBacklog)
            this.admissionWaiters.shift()!();
    }

    // ---- scheduling ----

    private notify(target: string): void {
        if (this.busy.has(target)) {
            this.again.add(target);
            return;
        }
        if (!this.ready.has(target)) {
            this.ready.add(target);
            this.queue.push(target);
        }
        this.schedulePump();
    }

    private schedulePump(): void {
        if (this.pumpScheduled || this.stopping) return;
        this.pumpScheduled = true;
        setImmediate(() => {
            this.pumpScheduled = false;
            this.pump();
        });
    }

    private pump(): void {
        if (this.stopping) return;
        const l = this.limits;
        while (this.activityQueue.length && this.activityInFlight.size < l.maxConcurrentActivityFunctions) {
            const item = this.activityQueue.shift()!;
            if (this.activityInFlight.has(item.id)) continue;
            this.activityInFlight.add(item.id);
            this.track(
                this.runActivity(item).finally(() => {
                    this.activityInFlight.delete(item.id);
                    this.schedulePump();
                }),
            );
        }
        let skipped = 0;
        while (this.queue.length > skipped) {
            const target = this.queue.shift()!;
            const isEntity = target.startsWith('@');
            if (
                isEntity
                    ? this.runningEntities >= l.maxConcurrentEntityFunctions
                    : this.runningOrchestrations >= l.maxConcurrentOrchestratorFunctions
            ) {
                this.queue.push(target);
                skipped++;
                continue;
            }
            this.ready.delete(target);
            this.busy.add(target);
            if (isEntity) this.runningEntities++;
            else this.runningOrchestrations++;
            const work = isEntity ? this.processEntity(target) : this.processOrchestration(target);
            this.track(
                work
                    .catch((e: unknown) =>
                        this.log('error', `durable host: processing ${target} failed: ${describe(e)}`),
                    )
                    .finally(() => {
                        if (isEntity) this.runningEntities--;
                        else this.runningOrchestrations--;
                        this.busy.delete(target);
                        if (this.again.delete(target)) this.notify(target);
                        this.schedulePump();
                    }),
            );
        }
        this.releaseAdmissions();
    }

    private track(p: Promise<unknown>): void {
        this.inFlight.add(p);
        void p.finally(() => this.inFlight.delete(p));
    }

    private addTimer(due: number, target: string): void {
        this.timers.push(due, target);
        if (due < this.timerDue) this.armTimer();
    }

    private armTimer(): void {
        if (this.stopping) return;
        if (this.timerHandle) clearTimeout(this.timerHandle);
        const next = this.timers.peek();
        this.timerDue = next ?? Infinity;
        if (next === undefined) return;
        // setTimeout cannot wait longer than ~24.8 days; re-arm hourly for far timers.
        const delay = Math.min(Math.max(0, next - this.clock()), 3_600_000);
        this.timerHandle = setTimeout(() => {
            this.timerHandle = undefined;
            for (const target of this.timers.popDue(this.clock())) this.notify(target);
            this.armTimer();
        }, delay);
    }

    // ---- orchestrations ----

    private async processOrchestration(id: string): Promise<void> {
        const now = this.clock();
        const messages = this.store.dueMessages(id, now);
        if (!messages.length) return;
        const instance = this.store.getInstance(id);
        if (!instance || TERMINAL_STATUSES.has(instance.status)) {
            // Messages to a finished or purged instance are dropped, as the Durable extension does.
            await this.commit(() => messages.forEach((m) => this.store.deleteMessage(m.id)));
            return;
        }
        const at = new Date(now);
        const consumed: MessageRow[] = [];
        const incoming: HistoryEvent[] = [];
        const control: HistoryEvent[] = [];
        let status = instance.status;
        for (const m of messages) {
            const e = JSON.parse(m.body) as HistoryEvent;
            if (e.EventType === EventType.ExecutionTerminated) {
                return this.finishTerminated(instance, e, messages, at);
            }
            if (e.EventType === EventType.ExecutionSuspended) {
                consumed.push(m);
                if (status !== 'Suspended') control.push(e);
                status = 'Suspended';
                continue;
            }
            if (e.EventType === EventType.ExecutionResumed) {
                consumed.push(m);
                if (status === 'Suspended') control.push(e);
                status = 'Running';
                continue;
            }
            if (status === 'Suspended') continue; // buffered until resumed
            if (m.executionId !== null && m.executionId !== instance.executionId) {
                consumed.push(m); // a completion for an earlier execution (continueAsNew): stale
                continue;
            }
            consumed.push(m);
            incoming.push(e);
        }
        if (status === 'Suspended' || !incoming.length) {
            const final =
                status === 'Suspended' ? 'Suspended' : instance.status === 'Suspended' ? 'Running' : instance.status;
            const current = instance;
            await this.commit(() => {
                consumed.forEach((m) => this.store.deleteMessage(m.id));
                if (control.length) this.store.appendHistory(current.id, current.executionId, control);
                this.store.updateInstance(id, final, current.output, current.customStatus, now);
            });
            if (control.length) this.cacheAppend(current, control);
            if (final !== instance.status) this.emit('status', id, final);
            // A resume may have unblocked buffered messages.
            if (final === 'Running' && this.store.dueMessages(id, now, 1).length) this.notify(id);
            return;
        }

        const handler = this.registrations.orchestrators.get(instance.name);
        const past = this.historyOf(instance);
        const fresh = dedupeCompletions(past, incoming);
        const result = handler
            ? await runEpisode(handler, {
                  name: instance.name,
                  instanceId: id,
                  parentInstanceId: instance.parentInstanceId,
                  input: JSON.parse(instance.input) as unknown,
                  past,
                  incoming: [...control, ...fresh],
                  now: at,
                  newRequestId: () => randomUUID(),
                  log: (level, message) =>
                      this.log(level === 'error' ? 'error' : 'information', `[${instance.name} ${id}] ${message}`),
              })
            : missingOrchestrator(instance.name, at, [...control, ...fresh]);

        const notifyAfter = new Set<string>();
        const timersAfter: { due: number; target: string }[] = [];
        const activitiesAfter: WorkItemRow[] = [];
        const outcome = result.outcome;
        let newStatus: RuntimeStatus = 'Running';
        const current = instance;
        await this.commit(() => {
            consumed.forEach((m) => this.store.deleteMessage(m.id));
            this.store.appendHistory(current.id, current.executionId, result.appended);
            for (const timerId of result.cancelledTimers) this.store.deleteTimer(id, current.executionId, timerId);
            for (const w of result.work)
                this.dispatchWork(current, w, now, { notifyAfter, timersAfter, activitiesAfter });
            const customStatus = result.customStatus === undefined ? null : toJson(result.customStatus);
            switch (outcome.status) {
                case 'running':
                    this.store.updateInstance(id, 'Running', null, customStatus, now);
                    break;
                case 'completed':
                    newStatus = 'Completed';
                    this.store.updateInstance(id, 'Completed', toJson(outcome.output), customStatus, now);
                    this.store.dropPendingWork(id);
                    this.notifyParent(
                        current,
                        { EventType: EventType.SubOrchestrationInstanceCompleted, Result: toJson(outcome.output) },
                        now,
                        notifyAfter,
                    );
                    break;
                case 'failed':
                    newStatus = 'Failed';
                    this.store.updateInstance(id, 'Failed', toJson(outcome.error), customStatus, now);
                    this.store.dropPendingWork(id);
                    this.notifyParent(
                        current,
                        {
                            EventType: EventType.SubOrchestrationInstanceFailed,
                            Reason: outcome.error,
                            Details: outcome.error,
                        },
                        now,
                        notifyAfter,
                    );
                    break;
                case 'continuedAsNew': {
                    newStatus = 'Running';
                    const executionId = randomUUID().replace(/-/g, '');
                    this.store.dropPendingWork(id);
                    this.store.restartInstance(id, executionId, toJson(outcome.input), now);
                    this.store.insertMessage({
                        target: id,
                        executionId,
                        dueAt: now,
                        body: JSON.stringify(startedEvent(current.name, id, executionId, outcome.input, null, at)),
                    });
                    notifyAfter.add(id);
                    break;
                }
            }
        });
        if (outcome.status === 'running') this.cacheAppend(current, result.appended);
        else this.historyCache.delete(id);
        if (outcome.status === 'failed') this.log('warning', `[${current.name} ${id}] failed: ${outcome.error}`);
        for (const item of activitiesAfter) this.activityQueue.push(item);
        for (const t of timersAfter) this.addTimer(t.due, t.target);
        for (const target of notifyAfter) this.notify(target);
        if (newStatus !== 'Running' || fresh.some((e) => e.EventType === EventType.ExecutionStarted))
            this.emit('status', id, newStatus);
        if (messages.length >= 500) this.notify(id);
        this.schedulePump();
    }

    private dispatchWork(
        instance: InstanceRow,
        w: Work,
        now: number,
        after: {
            notifyAfter: Set<string>;
            timersAfter: { due: number; target: string }[];
            activitiesAfter: WorkItemRow[];
        },
    ): void {
        switch (w.kind) {
            case 'activity': {
                const input = toJson(w.input);
                const id = this.store.insertWork(instance.id, instance.executionId, w.taskId, w.name, input);
                if (id !== undefined)
                    after.activitiesAfter.push({
                        id,
                        instanceId: instance.id,
                        executionId: instance.executionId,
                        taskId: w.taskId,
                        name: w.name,
                        input,
                    });
                break;
            }
            case 'timer': {
                const due = w.fireAt.getTime();
                const fired = event(EventType.TimerFired, w.fireAt, {
                    TimerId: w.taskId,
                    FireAt: w.fireAt.toISOString(),
                });
                this.store.insertMessage({
                    target: instance.id,
                    executionId: instance.executionId,
                    dueAt: due,
                    timerId: w.taskId,
                    body: JSON.stringify(fired),
                });
                if (due <= now) after.notifyAfter.add(instance.id);
                else after.timersAfter.push({ due, target: instance.id });
                break;
            }
            case 'subOrchestration': {
                const existing = this.store.getInstance(w.instanceId);
                if (
                    (existing && !TERMINAL_STATUSES.has(existing.status)) ||
                    !this.registrations.orchestrators.has(w.name)
                ) {
                    const reason = existing
                        ? `An instance with ID '${w.instanceId}' already exists.`
                        : `The orchestrator function '${w.name}' doesn't exist.`;
                    this.store.insertMessage(
                        this.reply(
                            instance,
                            {
                                EventType: EventType.SubOrchestrationInstanceFailed,
                                TaskScheduledId: w.taskId,
                                Reason: reason,
                                Details: reason,
                            },
                            now,
                        ),
                    );
                    after.notifyAfter.add(instance.id);
                    break;
                }
                this.createInstance({
                    id: w.instanceId,
                    name: w.name,
                    executionId: randomUUID().replace(/-/g, ''),
                    input: w.input,
                    now,
                    parent: { instanceId: instance.id, executionId: instance.executionId, taskId: w.taskId },
                });
                after.notifyAfter.add(w.instanceId);
                break;
            }
            case 'entityCall':
            case 'entitySignal': {
                const message: EntityMessage = {
                    requestId: w.requestId,
                    operation: w.operation,
                    signal: w.kind === 'entitySignal',
                    input: w.input === undefined ? undefined : JSON.stringify(w.input),
                    parentInstanceId: w.kind === 'entityCall' ? instance.id : undefined,
                    parentExecutionId: w.kind === 'entityCall' ? instance.executionId : undefined,
                };
                this.store.insertMessage({
                    target: w.entityId,
                    executionId: null,
                    dueAt: now,
                    body: JSON.stringify(message),
                });
                after.notifyAfter.add(w.entityId);
                break;
            }
        }
    }

    private createInstance(p: {
        id: string;
        name: string;
        executionId: string;
        input: unknown;
        now: number;
        parent: { instanceId: string; executionId: string; taskId: number } | null;
    }): void {
        this.store.insertInstance({
            id: p.id,
            name: p.name,
            executionId: p.executionId,
            status: 'Pending',
            input: toJson(p.input),
            createdAt: p.now,
            updatedAt: p.now,
            parentInstanceId: p.parent?.instanceId ?? null,
            parentExecutionId: p.parent?.executionId ?? null,
            parentTaskId: p.parent?.taskId ?? null,
        });
        this.store.insertMessage({
            target: p.id,
            executionId: p.executionId,
            dueAt: p.now,
            body: JSON.stringify(startedEvent(p.name, p.id, p.executionId, p.input, p.parent, new Date(p.now))),
        });
        this.historyCache.delete(p.id);
    }

    private async finishTerminated(instance: InstanceRow, e: HistoryEvent, all: MessageRow[], at: Date): Promise<void> {
        const reason = e.Input ?? 'null';
        const notifyAfter = new Set<string>();
        const now = at.getTime();
        await this.commit(() => {
            all.forEach((x) => this.store.deleteMessage(x.id));
            this.store.appendHistory(instance.id, instance.executionId, [
                event(EventType.OrchestratorStarted, at),
                e,
                event(EventType.ExecutionCompleted, at, { OrchestrationStatus: 'Terminated', Result: reason }),
            ]);
            this.store.updateInstance(instance.id, 'Terminated', reason, instance.customStatus, now);
            this.store.dropPendingWork(instance.id);
            const text = `Instance '${instance.id}' was terminated: ${JSON.parse(reason) as string}`;
            this.notifyParent(
                instance,
                { EventType: EventType.SubOrchestrationInstanceFailed, Reason: text, Details: text },
                now,
                notifyAfter,
            );
        });
        this.historyCache.delete(instance.id);
        for (const t of notifyAfter) this.notify(t);
        this.emit('status', instance.id, 'Terminated');
    }

    private notifyParent(
        child: InstanceRow,
        fields: Partial<HistoryEvent>,
        now: number,
        notifyAfter: Set<string>,
    ): void {
        if (!child.parentInstanceId || child.parentTaskId === null) return;
        this.store.insertMessage({
            target: child.parentInstanceId,
            executionId: child.parentExecutionId,
            dueAt: now,
            body: JSON.stringify(
                event(fields.EventType!, new Date(now), { ...fields, TaskScheduledId: child.parentTaskId }),
            ),
        });
        notifyAfter.add(child.parentInstanceId);
    }

    private reply(instance: InstanceRow, fields: Partial<HistoryEvent>, now: number): NewMessage {
        return {
            target: instance.id,
            executionId: instance.executionId,
            dueAt: now,
            body: JSON.stringify(event(fields.EventType!, new Date(now), fields)),
        };
    }

    private async sendControl(instanceId: string, e: HistoryEvent): Promise<void> {
        await this.admit();
        await this.commit(() => {
            const row = this.store.getInstance(instanceId);
            if (!row) throw new ClientError(404, `No instance with ID '${instanceId}' found.`);
            if (TERMINAL_STATUSES.has(row.status))
                throw new ClientError(410, `Instance '${instanceId}' is ${row.status}.`);
            this.store.insertMessage({
                target: instanceId,
                executionId: null,
                dueAt: this.clock(),
                body: JSON.stringify(e),
            });
        });
        this.notify(instanceId);
    }

    private historyOf(instance: InstanceRow): HistoryEvent[] {
        const cached = this.historyCache.get(instance.id);
        if (cached && cached.executionId === instance.executionId) {
            // Refresh LRU position.
            this.historyCache.delete(instance.id);
            this.historyCache.set(instance.id, cached);
            return cached.events;
        }
        const events = this.store.history(instance.id, instance.executionId);
        this.cacheHistory(instance.id, { executionId: instance.executionId, events });
        return events;
    }

    /** Mirrors committed history appends into the cache (only after commit: a rolled-back batch never shows). */
    private cacheAppend(instance: InstanceRow, events: HistoryEvent[]): void {
        const cached = this.historyCache.get(instance.id);
        if (cached && cached.executionId === instance.executionId) cached.events.push(...events);
    }

    private cacheHistory(id: string, h: CachedHistory): void {
        this.historyCache.set(id, h);
        if (this.historyCache.size > HISTORY_CACHE_LIMIT) {
            const oldest = this.historyCache.keys().next().value;
            if (oldest !== undefined) this.historyCache.delete(oldest);
        }
    }

    // ---- activities ----

    private async runActivity(item: WorkItemRow): Promise<void> {
        const handler = this.registrations.activities.get(item.name);
        const at = new Date(this.clock());
        let completion: HistoryEvent;
        if (!handler) {
            const reason = `The activity function '${item.name}' doesn't exist.`;
            completion = event(EventType.TaskFailed, at, {
                TaskScheduledId: item.taskId,
                Reason: reason,
                Details: reason,
            });
        } else {
            const ctx = new InvocationContext({
                functionName: item.name,
                invocationId: `${item.instanceId}:${item.taskId}`,
                logHandler: (level, ...args) =>
                    this.log(
                        level === 'error' ? 'error' : 'information',
                        `[${item.name}] ${args.map(String).join(' ')}`,
                    ),
                options: { trigger: { type: 'activityTrigger', name: 'input' }, extraInputs: [], extraOutputs: [] },
            });
            try {
                const result = await handler(JSON.parse(item.input) as unknown, ctx);
                completion = event(EventType.TaskCompleted, new Date(this.clock()), {
                    TaskScheduledId: item.taskId,
                    Result: toJson(result),
                });
            } catch (e: unknown) {
                const message = e instanceof Error ? e.message : String(e);
                const type = e instanceof Error ? e.name : 'Error';
                completion = event(EventType.TaskFailed, new Date(this.clock()), {
                    TaskScheduledId: item.taskId,
                    Reason: `Activity function '${item.name}' failed: ${message}`,
                    Details: `${type}: ${message}`,
                });
            }
        }
        if (this.stopping) return; // the work item stays in the store and runs again after restart
        // Deleting the work item and recording its result in one transaction: a result is recorded once.
        const recorded = await this.commit(() => {
            if (!this.store.deleteWork(item.id)) return false;
            this.store.insertMessage({
                target: item.instanceId,
                executionId: item.executionId,
                dueAt: completion.Timestamp ? Date.parse(completion.Timestamp) : this.clock(),
                body: JSON.stringify(completion),
            });
            return true;
        });
        if (recorded) this.notify(item.instanceId);
    }

    // ---- entities ----

    private entityRegistration(entityId: string): { name: string; key: string; handler: EntityHandler } {
        const at = entityId.indexOf('@', 1);
        if (!entityId.startsWith('@') || at < 0) throw new ClientError(400, `'${entityId}' is not an entity id.`);
        const name = entityId.slice(1, at);
        const handler = this.registrations.entities.get(name);
        if (!handler) throw new ClientError(404, `The entity function '${name}' doesn't exist.`);
        return { name, key: entityId.slice(at + 1), handler };
    }

    private async processEntity(entityId: string): Promise<void> {
        const now = this.clock();
        const messages = this.store.dueMessages(entityId, now, 100);
        if (!messages.length) return;
        let reg: ReturnType<DurableEngine['entityRegistration']>;
        try {
            reg = this.entityRegistration(entityId);
        } catch (e: unknown) {
            this.log('error', `durable host: dropping ${messages.length} operation(s) for ${entityId}: ${describe(e)}`);
            await this.commit(() => messages.forEach((m) => this.store.deleteMessage(m.id)));
            return;
        }
        const row = this.store.getEntity(entityId);
        let exists = row !== undefined;
        let state = row?.state ?? undefined;
        const out: NewMessage[] = [];
        for (const m of messages) {
            const op = JSON.parse(m.body) as EntityMessage;
            const binding: EntityBinding = {
                self: { name: reg.name, key: reg.key },
                exists,
                state,
                batch: [{ id: op.requestId, name: op.operation, signal: op.signal, input: op.input }],
            };
            const ctx = new InvocationContext({
                functionName: reg.name,
                invocationId: op.requestId,
                logHandler: (level, ...args) =>
                    this.log(
                        level === 'error' ? 'error' : 'information',
                        `[${reg.name}] ${args.map(String).join(' ')}`,
                    ),
                options: { trigger: { type: 'entityTrigger', name: 'context' }, extraInputs: [], extraOutputs: [] },
            });
            let result: { isError: boolean; result?: string };
            try {
                const res = (await reg.handler(binding, ctx)) as EntityState;
                result = res.results[0] ?? { isError: false };
                if (!result.isError) {
                    // Like the .NET extension, a failed operation's state changes are rolled back.
                    exists = res.entityExists;
                    state = res.entityExists ? res.entityState : undefined;
                    for (const s of res.signals ?? []) {
                        const signal: EntityMessage = {
                            requestId: randomUUID(),
                            operation: s.name,
                            signal: true,
                            input: s.input,
                        };
                        out.push({
                            target: `@${s.target.name.toLowerCase()}@${s.target.key}`,
                            executionId: null,
                            dueAt: now,
                            body: JSON.stringify(signal),
                        });
                    }
                }
            } catch (e: unknown) {
                result = { isError: true, result: JSON.stringify(describe(e)) };
            }
            if (!op.signal && op.parentInstanceId) {
                const response = { result: result.result, exceptionType: result.isError ? 'Error' : undefined };
                out.push({
                    target: op.parentInstanceId,
                    executionId: op.parentExecutionId ?? null,
                    dueAt: now,
                    body: JSON.stringify(
                        event(EventType.EventRaised, new Date(now), {
                            Name: op.requestId,
                            Input: JSON.stringify(response),
                        }),
                    ),
                });
            }
        }
        await this.commit(() => {
            messages.forEach((m) => this.store.deleteMessage(m.id));
            this.store.saveEntity(entityId, state ?? null, exists, now);
            out.forEach((m) => this.store.insertMessage(m));
        });
        for (const m of out) this.notify(m.target);
        if (messages.length >= 100) this.notify(entityId);
    }
}

function startedEvent(
    name: string,
    instanceId: string,
    executionId: string,
    input: unknown,
    parent: { instanceId: string; executionId: string; taskId: number } | null,
    at: Date,
): HistoryEvent {
    return event(EventType.ExecutionStarted, at, {
        Name: name,
        Input: toJson(input),
        OrchestrationInstance: { InstanceId: instanceId, ExecutionId: executionId },
        ParentInstance: parent
            ? { InstanceId: parent.instanceId, ExecutionId: parent.executionId, TaskScheduledId: parent.taskId }
            : null,
    });
}

/** Drops a completion whose task already has one in history (defence in depth: at-least-once delivery). */
function dedupeCompletions(past: readonly HistoryEvent[], incoming: HistoryEvent[]): HistoryEvent[] {
    const done = new Set<string>();
    const key = (e: HistoryEvent): string | undefined => {
        switch (e.EventType) {
            case EventType.TaskCompleted:
            case EventType.TaskFailed:
            case EventType.SubOrchestrationInstanceCompleted:
            case EventType.SubOrchestrationInstanceFailed:
                return `t${e.TaskScheduledId}`;
            case EventType.TimerFired:
                return `t${e.TimerId}`;
            default:
                return undefined;
        }
    };
    for (const e of past) {
        const k = key(e);
        if (k) done.add(k);
    }
    const out: HistoryEvent[] = [];
    for (const e of incoming) {
        const k = key(e);
        if (k && done.has(k)) continue;
        if (k) done.add(k);
        // A second ExecutionStarted can only be a duplicate delivery.
        if (
            e.EventType === EventType.ExecutionStarted &&
            (past.some((p) => p.EventType === EventType.ExecutionStarted) ||
                out.some((p) => p.EventType === EventType.ExecutionStarted))
        )
            continue;
        out.push(e);
    }
    return out;
}

function missingOrchestrator(name: string, at: Date, incoming: HistoryEvent[]) {
    const error = `The orchestrator function '${name}' doesn't exist.`;
    return {
        outcome: { status: 'failed' as const, error },
        appended: [
            event(EventType.OrchestratorStarted, at),
            ...incoming,
            event(EventType.ExecutionCompleted, at, { OrchestrationStatus: 'Failed', Result: toJson(error) }),
        ],
        work: [] as Work[],
        cancelledTimers: [] as number[],
        customStatus: undefined,
    };
}

function toStatus(row: InstanceRow, showInput: boolean): InstanceStatus {
    return {
        name: row.name,
        instanceId: row.id,
        createdTime: new Date(row.createdAt).toISOString(),
        lastUpdatedTime: new Date(row.updatedAt).toISOString(),
        input: showInput ? (JSON.parse(row.input) as unknown) : null,
        output: row.output === null ? null : (JSON.parse(row.output) as unknown),
        runtimeStatus: row.status,
        customStatus: row.customStatus === null ? null : (JSON.parse(row.customStatus) as unknown),
    };
}

/** The history item shape of the Durable HTTP API (showHistory=true). */
function toHistoryItem(e: HistoryEvent): Record<string, unknown> {
    const item: Record<string, unknown> = {
        EventType: EventType[e.EventType],
        EventId: e.EventId,
        Timestamp: e.Timestamp,
    };
    if (e.Name !== undefined) item.Name = e.Name;
    if (e.TaskScheduledId !== undefined) item.TaskScheduledId = e.TaskScheduledId;
    if (e.TimerId !== undefined) item.TimerId = e.TimerId;
    if (e.FireAt !== undefined) item.FireAt = e.FireAt;
    if (e.Result !== undefined) item.Result = safeParse(e.Result);
    if (e.Input !== undefined) item.Input = safeParse(e.Input);
    if (e.Reason !== undefined) item.Reason = e.Reason;
    if (e.OrchestrationStatus !== undefined) item.OrchestrationStatus = e.OrchestrationStatus;
    return item;
}

function safeParse(s: string): unknown {
    try {
        return JSON.parse(s) as unknown;
    } catch {
        return s;
    }
}

const INSTANCE_ID = /^[^@/\\#?\s][^/\\#?\s]{0,255}$/;

function validateInstanceId(id: string): void {
    if (!INSTANCE_ID.test(id))
        throw new ClientError(
            400,
            `Invalid instance id '${id.slice(0, 64)}': 1–256 characters, no '/', '\\', '#', '?', whitespace, and not starting with '@'.`,
        );
}

function describe(e: unknown): string {
    return e instanceof Error ? e.message : String(e);
}
