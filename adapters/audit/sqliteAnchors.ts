/**
 * The local anchor store: each run's chain heads in `<dir>/audit-anchors.sqlite` (`MESH_AUDIT_ANCHOR_DIR`, default
 * `MESH_KEYS_DIR`), a database of its own outside `MESH_DATA_DIR`, so whoever rewrites or truncates the audit table in
 * `app.sqlite` does not also move the heads. One row per (run, seq); the head is the highest seq. Rows are only ever
 * inserted (a trigger refuses UPDATE and DELETE), and the first hash anchored for a seq stays.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import type { AnchoredHead } from '../../domain/audit';
import type { ChainAnchors } from '../../domain/ports';

export const ANCHOR_DB_FILE = 'audit-anchors.sqlite';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS anchors (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS anchors_no_update BEFORE UPDATE ON anchors
BEGIN
    SELECT RAISE(ABORT, 'anchors are append-only');
END;
CREATE TRIGGER IF NOT EXISTS anchors_no_delete BEFORE DELETE ON anchors
BEGIN
    SELECT RAISE(ABORT, 'anchors are append-only');
END;
`;

export class SqliteChainAnchors implements ChainAnchors {
    private readonly db: Database.Database;
    private readonly stmt;

    constructor(dir: string) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        this.db = new Database(join(dir, ANCHOR_DB_FILE));
        try {
            this.db.pragma('journal_mode = WAL');
            this.db.pragma('synchronous = NORMAL');
            this.db.pragma('busy_timeout = 5000');
            this.db.exec(SCHEMA);
        } catch (e: unknown) {
            this.db.close();
            throw e;
        }
        this.stmt = {
            insert: this.db.prepare('INSERT OR IGNORE INTO anchors (run_id, seq, hash) VALUES (?, ?, ?)'),
            head: this.db.prepare<[string], { seq: number; hash: string }>(
                'SELECT seq, hash FROM anchors WHERE run_id = ? ORDER BY seq DESC LIMIT 1',
            ),
        };
    }

    record(runId: string, seq: number, hash: string): Promise<void> {
        return new Promise((resolve) => {
            this.stmt.insert.run(runId, seq, hash);
            resolve();
        });
    }

    head(runId: string): Promise<AnchoredHead | undefined> {
        return new Promise((resolve) => {
            const row = this.stmt.head.get(runId);
            resolve(row ? { seq: row.seq, hash: row.hash } : undefined);
        });
    }

    close(): void {
        this.db.close();
    }
}
