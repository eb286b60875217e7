/**
 * The embedded host's durable state: one SQLite database in WAL mode under MESH_DATA_DIR. Every episode,
 * activity completion and entity batch commits in one transaction (history append + consumed messages
 * deleted + new messages/work inserted), so a kill -9 at any instant leaves either all of it or none.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { HistoryEvent } from './history';

export type RuntimeStatus =
    'Pending' | 'Running' | 'Completed' | 'ContinuedAsNew' | 'Failed' | 'Terminated' | 'Suspended';
export const TERMINAL_STATUSES: ReadonlySet<RuntimeStatus> = new Set(['Completed', 'Failed', 'Terminated']);

export interface InstanceRow {
    id: string;
    name: string;
    executionId: string;
    status: RuntimeStatus;
    input: string;
    output: string | null;
    customStatus: string | null;
    createdAt: number;
    updatedAt: number;
    parentInstanceId: string | null;
    parentExecutionId: string | null;
    parentTaskId: number | null;
}

/** A message to an orchestration instance (a history event) or to an entity (an operation). */
export interface MessageRow {
    id: number;
    target: string;
    executionId: string | null;
    dueAt: number;
    timerId: number | null;
    body: string;
}

export interface WorkItemRow {
    id: number;
    instanceId: string;
    executionId: string;
    taskId: number;
    name: string;
    input: string;
}

export interface EntityRow {
    id: string;
    state: string | null;
}

export interface NewMessage {
    target: string;
    executionId: string | null;
    dueAt: number;
    timerId?: number | null;
    body: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, execution_id TEXT NOT NULL, status TEXT NOT NULL,
    input TEXT NOT NULL, output TEXT, custom_status TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    parent_instance_id TEXT, parent_execution_id TEXT, parent_task_id INTEGER
);
CREATE INDEX IF NOT EXISTS instances_by_status ON instances(status, created_at);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL, execution_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, execution_id TEXT, due_at INTEGER NOT NULL,
    timer_id INTEGER, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_target ON messages(target, id);
CREATE INDEX IF NOT EXISTS messages_by_due ON messages(due_at);
CREATE TABLE IF NOT EXISTS work_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL, name TEXT NOT NULL, input TEXT NOT NULL,
    UNIQUE (instance_id, execution_id, task_id)
);
CREATE TABLE IF NOT EXISTS entities (id TEXT PRIMARY KEY, state TEXT, updated_at INTEGER NOT NULL);
`;

export class DurableStore {
    readonly db: Database.Database;
    private readonly stmt;

    constructor(dataDir: string, sync: 'NORMAL' | 'FULL' = 'NORMAL') {
        mkdirSync(dataDir, { recursive: true });
        this.db = new Database(join(dataDir, 'durable.sqlite'));
        this.db.pragma('journal_mode = WAL');
        // NORMAL in WAL mode survives any process crash (kill -9); FULL also survives power loss.
        this.db.pragma(`synchronous = ${sync}`);
        this.db.pragma('busy_timeout = 5000');
        this.db.exec(SCHEMA);
        const db = this.db;
        this.stmt = {
            getInstance: db.prepare('SELECT * FROM instances WHERE id = ?'),
            insertInstance: db.prepare(
                `INSERT INTO instances (id, name, execution_id, status, input, output, custom_status, created_at, updated_at,
                 parent_instance_id, parent_execution_id, parent_task_id)
                 VALUES (@id, @name, @executionId, @status, @input, NULL, NULL, @createdAt, @updatedAt, @parentInstanceId, @parentExecutionId, @parentTaskId)`,
            ),
            deleteInstance: db.prepare('DELETE FROM instances WHERE id = ?'),
            updateInstance: db.prepare(
                'UPDATE instances SET status = @status, output = @output, custom_status = @customStatus, updated_at = @updatedAt WHERE id = @id',
            ),
            restartInstance: db.prepare(
                'UPDATE instances SET execution_id = @executionId, status = @status, input = @input, output = NULL, updated_at = @updatedAt WHERE id = @id',
            ),
            history: db.prepare('SELECT event FROM history WHERE instance_id = ? AND execution_id = ? ORDER BY seq'),
            historyLength: db.prepare('SELECT COALESCE(MAX(seq), -1) + 1 AS n FROM history WHERE instance_id = ?'),
            appendHistory: db.prepare(
                'INSERT INTO history (instance_id, execution_id, seq, event) VALUES (?, ?, ?, ?)',
            ),
            deleteHistory: db.prepare('DELETE FROM history WHERE instance_id = ?'),
            // Per target, by arrival: never let the planner walk the due-time index across every target.
            dueMessages: db.prepare(
                'SELECT * FROM messages INDEXED BY messages_by_target WHERE target = ? AND due_at <= ? ORDER BY id LIMIT ?',
            ),
            insertMessage: db.prepare(
                'INSERT INTO messages (target, execution_id, due_at, timer_id, body) VALUES (?, ?, ?, ?, ?)',
            ),
            deleteMessage: db.prepare('DELETE FROM messages WHERE id = ?'),
            deleteTimer: db.prepare('DELETE FROM messages WHERE target = ? AND execution_id = ? AND timer_id = ?'),
            deleteMessagesFor: db.prepare('DELETE FROM messages WHERE target = ?'),
            readyTargets: db.prepare('SELECT DISTINCT target FROM messages WHERE due_at <= ?'),
            futureMessages: db.prepare(
                'SELECT target, MIN(due_at) AS dueAt FROM messages WHERE due_at > ? GROUP BY target',
            ),
            insertWork: db.prepare(
                'INSERT OR IGNORE INTO work_items (instance_id, execution_id, task_id, name, input) VALUES (?, ?, ?, ?, ?)',
            ),
            deleteWork: db.prepare('DELETE FROM work_items WHERE id = ?'),
            deleteWorkFor: db.prepare('DELETE FROM work_items WHERE instance_id = ?'),
            allWork: db.prepare(
                'SELECT id, instance_id AS instanceId, execution_id AS executionId, task_id AS taskId, name, input FROM work_items ORDER BY id',
            ),
            getEntity: db.prepare('SELECT id, state FROM entities WHERE id = ?'),
            upsertEntity: db.prepare(
                'INSERT INTO entities (id, state, updated_at) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at',
            ),
            deleteEntity: db.prepare('DELETE FROM entities WHERE id = ?'),
        };
    }

    /** Runs fn in one IMMEDIATE transaction: all of its writes commit together or not at all. */
    tx<T>(fn: () => T): T {
        return this.db.transaction(fn).immediate();
    }

    ping(): boolean {
        return (this.db.prepare('SELECT 1 AS ok').get() as { ok: number }).ok === 1;
    }

    getInstance(id: string): InstanceRow | undefined {
        const r = this.stmt.getInstance.get(id) as Record<string, unknown> | undefined;
        return r ? toInstance(r) : undefined;
    }

    insertInstance(row: Omit<InstanceRow, 'output' | 'customStatus'>): void {
        this.stmt.deleteHistory.run(row.id);
        this.stmt.deleteInstance.run(row.id);
        this.stmt.insertInstance.run(row);
    }

    updateInstance(
        id: string,
        status: RuntimeStatus,
        output: string | null,
        customStatus: string | null,
        at: number,
    ): void {
        this.stmt.updateInstance.run({ id, status, output, customStatus, updatedAt: at });
    }

    restartInstance(id: string, executionId: string, input: string, at: number): void {
        this.stmt.deleteHistory.run(id);
        this.stmt.restartInstance.run({ id, executionId, status: 'Running', input, updatedAt: at });
    }

    history(id: string, executionId: string): HistoryEvent[] {
        return (this.stmt.history.all(id, executionId) as { event: string }[]).map(
            (r) => JSON.parse(r.event) as HistoryEvent,
        );
    }

    appendHistory(id: string, executionId: string, events: readonly HistoryEvent[]): void {
        let seq = (this.stmt.historyLength.get(id) as { n: number }).n;
        for (const e of events) this.stmt.appendHistory.run(id, executionId, seq++, JSON.stringify(e));
    }

    dueMessages(target: string, now: number, limit = 500): MessageRow[] {
        return (this.stmt.dueMessages.all(target, now, limit) as Record<string, unknown>[]).map(toMessage);
    }

    insertMessage(m: NewMessage): void {
        this.stmt.insertMessage.run(m.target, m.executionId, m.dueAt, m.timerId ?? null, m.body);
    }

    deleteMessage(id: number): void {
        this.stmt.deleteMessage.run(id);
    }

    deleteTimer(target: string, executionId: string, timerId: number): void {
        this.stmt.deleteTimer.run(target, executionId, timerId);
    }

    readyTargets(now: number): string[] {
        return (this.stmt.readyTargets.all(now) as { target: string }[]).map((r) => r.target);
    }

    futureMessages(now: number): { target: string; dueAt: number }[] {
        return this.stmt.futureMessages.all(now) as { target: string; dueAt: number }[];
    }

    insertWork(
        instanceId: string,
        executionId: string,
        taskId: number,
        name: string,
        input: string,
    ): number | undefined {
        const r = this.stmt.insertWork.run(instanceId, executionId, taskId, name, input);
        return r.changes === 1 ? Number(r.lastInsertRowid) : undefined;
    }

    /** Deletes a work item; false when it was already gone (instance terminated, purged or restarted). */
    deleteWork(id: number): boolean {
        return this.stmt.deleteWork.run(id).changes === 1;
    }

    allWork(): WorkItemRow[] {
        return this.stmt.allWork.all() as WorkItemRow[];
    }

    getEntity(id: string): EntityRow | undefined {
        return this.stmt.getEntity.get(id) as EntityRow | undefined;
    }

    saveEntity(id: string, state: string | null, exists: boolean, at: number): void {
        if (exists) this.stmt.upsertEntity.run(id, state, at);
        else this.stmt.deleteEntity.run(id);
    }

    /** Removes an instance and everything addressed to it. */
    purge(id: string): boolean {
        this.stmt.deleteHistory.run(id);
        this.stmt.deleteWorkFor.run(id);
        this.stmt.deleteMessagesFor.run(id);
        return this.stmt.deleteInstance.run(id).changes === 1;
    }

    dropPendingWork(id: string): void {
        this.stmt.deleteWorkFor.run(id);
    }

    queryInstances(filter: InstanceQuery): { rows: InstanceRow[]; continuation?: string } {
        const where: string[] = [];
        const args: unknown[] = [];
        if (filter.statuses?.length) {
            where.push(`status IN (${filter.statuses.map(() => '?').join(',')})`);
            args.push(...filter.statuses);
        }
        if (filter.createdFrom !== undefined) {
            where.push('created_at >= ?');
            args.push(filter.createdFrom);
        }
        if (filter.createdTo !== undefined) {
            where.push('created_at <= ?');
            args.push(filter.createdTo);
        }
        if (filter.prefix) {
            where.push('id >= ? AND id < ?');
            args.push(filter.prefix, filter.prefix + '\uffff');
        }
        if (filter.after) {
            where.push('id > ?');
            args.push(filter.after);
        }
        const limit = Math.min(filter.top ?? 1000, 1000);
        const sql = `SELECT * FROM instances ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id LIMIT ${limit + 1}`;
        const rows = (this.db.prepare(sql).all(...args) as Record<string, unknown>[]).map(toInstance);
        if (rows.length <= limit) return { rows };
        rows.length = limit;
        return { rows, continuation: rows[rows.length - 1]!.id };
    }

    close(): void {
        this.db.close();
    }
}

export interface InstanceQuery {
    statuses?: RuntimeStatus[];
    createdFrom?: number;
    createdTo?: number;
    prefix?: string;
    after?: string;
    top?: number;
}

function toInstance(r: Record<string, unknown>): InstanceRow {
    return {
        id: r.id as string,
        name: r.name as string,
        executionId: r.execution_id as string,
        status: r.status as RuntimeStatus,
        input: r.input as string,
        output: (r.output as string | null) ?? null,
        customStatus: (r.custom_status as string | null) ?? null,
        createdAt: r.created_at as number,
        updatedAt: r.updated_at as number,
        parentInstanceId: (r.parent_instance_id as string | null) ?? null,
        parentExecutionId: (r.parent_execution_id as string | null) ?? null,
        parentTaskId: (r.parent_task_id as number | null) ?? null,
    };
}

function toMessage(r: Record<string, unknown>): MessageRow {
    return {
        id: r.id as number,
        target: r.target as string,
        executionId: (r.execution_id as string | null) ?? null,
        dueAt: r.due_at as number,
        timerId: (r.timer_id as number | null) ?? null,
        body: r.body as string,
    };
}
