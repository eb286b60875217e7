/**
 * The local outbox (SPEC "Local operation"): every notification the embedded host sends, or fails to send for good,
 * is one JSON line in `<MESH_DATA_DIR>/outbox.jsonl`, oldest first in the file (`npm run outbox` prints it newest
 * first). It is also the notifications record that makes delivery idempotent per (event, person, channel).
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import type { NotificationLog, NotificationRecord } from '../../domain/ports';

export const OUTBOX_FILE = 'outbox.jsonl';

export function outboxPath(dataDir: string): string {
    return join(dataDir, OUTBOX_FILE);
}

/** The outbox's records, oldest first; a torn last line (a crash mid-append) is skipped. */
export function readOutbox(file: string): NotificationRecord[] {
    let text: string;
    try {
        text = readFileSync(file, 'utf8');
    } catch (e: unknown) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw e;
    }
    const records: NotificationRecord[] = [];
    for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        try {
            records.push(JSON.parse(line) as NotificationRecord);
        } catch {
            // a line cut short by a crash: not a record
        }
    }
    return records;
}

export class OutboxFile implements NotificationLog {
    private keys: Set<string> | undefined;

    constructor(readonly file: string) {}

    has(key: string): Promise<boolean> {
        this.keys ??= new Set(readOutbox(this.file).map((r) => r.key));
        return Promise.resolve(this.keys.has(key));
    }

    record(entry: NotificationRecord): Promise<void> {
        mkdirSync(dirname(this.file), { recursive: true });
        // One write of one line with O_APPEND: lines of concurrent writers never interleave.
        appendFileSync(this.file, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
        this.keys?.add(entry.key);
        return Promise.resolve();
    }
}

/** Off the embedded host there is no outbox; the record lives as long as the process (and the log line). */
export class MemoryNotificationLog implements NotificationLog {
    private readonly keys = new Set<string>();

    has(key: string): Promise<boolean> {
        return Promise.resolve(this.keys.has(key));
    }

    record(entry: NotificationRecord): Promise<void> {
        this.keys.add(entry.key);
        return Promise.resolve();
    }
}
