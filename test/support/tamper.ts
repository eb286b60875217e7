/** Edits a stored audit record behind the store's back, as an attacker with write access to the database would. */
import { cosmosClientOf } from './cosmosServer';
import type { HostProcess } from './hostProcess';
import type { StoreKind } from './stores';

type Edit = (record: Record<string, unknown>) => Record<string, unknown>;

/**
 * The running host's app database, opened as an attacker would: waiting for the host's locks, and with the append-only
 * trigger dropped first (the keyed chain and the anchors are what must catch the change).
 */
function openAppDatabase(host: HostProcess): import('better-sqlite3').Database {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Database = require('better-sqlite3') as typeof import('better-sqlite3');
    const db = new Database(`${host.dataDir}/app.sqlite`, { timeout: 10_000 });
    db.exec('DROP TRIGGER IF EXISTS audit_is_append_only');
    return db;
}

export async function tamperAuditRecord(
    store: StoreKind,
    host: HostProcess,
    runId: string,
    seq: number,
    edit: Edit,
): Promise<void> {
    if (store === 'embedded') {
        const db = openAppDatabase(host);
        try {
            const row = db.prepare('SELECT record FROM audit WHERE run_id = ? AND seq = ?').get(runId, seq) as {
                record: string;
            };
            const record = JSON.parse(row.record) as Record<string, unknown>;
            db.prepare('UPDATE audit SET record = ? WHERE run_id = ? AND seq = ?').run(
                JSON.stringify(edit(record)),
                runId,
                seq,
            );
        } finally {
            db.close();
        }
        return;
    }
    const cosmos = host.cosmos;
    if (!cosmos) throw new Error('tamperAuditRecord: the Cosmos server is needed');
    const client = cosmosClientOf(cosmos);
    try {
        const { resources: dbs } = await client.databases.readAll().fetchAll();
        for (const d of dbs) {
            const audit = client.database(d.id).container('audit');
            const { resources } = await audit.items
                .query<Record<string, unknown>>({
                    query: 'SELECT * FROM c WHERE c.runId = @runId AND c.seq = @seq',
                    parameters: [
                        { name: '@runId', value: runId },
                        { name: '@seq', value: seq },
                    ],
                })
                .fetchAll()
                .catch(() => ({ resources: [] as Record<string, unknown>[] }));
            for (const item of resources) await audit.item(item.id as string, runId).replace(edit(item));
        }
    } finally {
        client.dispose();
    }
}

/**
 * Rewrites a run's whole stored trail behind the store's back: `edit` gets the records as stored, in order, and
 * returns what the trail is to hold (records removed, added, reordered or rewritten). On the embedded store the i-th
 * record returned is stored at row seq i + 1 (the order the store reads back); on Cosmos, where the store orders by the
 * records' own `seq`, each item keeps the `seq` its record carries.
 */
export async function rewriteAuditTrail(
    store: StoreKind,
    host: HostProcess,
    runId: string,
    edit: (records: Record<string, unknown>[]) => Record<string, unknown>[],
): Promise<void> {
    if (store === 'embedded') {
        const db = openAppDatabase(host);
        try {
            // IMMEDIATE: take the write lock before reading, so the running host's commits cannot stale this snapshot
            // (a deferred transaction that reads, then writes after another commit, fails at once with SQLITE_BUSY).
            db.transaction(() => {
                const rows = db.prepare('SELECT record FROM audit WHERE run_id = ? ORDER BY seq').all(runId) as {
                    record: string;
                }[];
                const next = edit(rows.map((r) => JSON.parse(r.record) as Record<string, unknown>));
                db.prepare('DELETE FROM outbox WHERE run_id = ?').run(runId);
                db.prepare('DELETE FROM audit WHERE run_id = ?').run(runId);
                const insert = db.prepare(
                    'INSERT INTO audit (run_id, seq, event_id, at, record) VALUES (?, ?, ?, ?, ?)',
                );
                next.forEach((r, i) =>
                    insert.run(runId, i + 1, `${String(r.eventId)}#${i}`, String(r.at), JSON.stringify(r)),
                );
            }).immediate();
        } finally {
            db.close();
        }
        return;
    }
    const cosmos = host.cosmos;
    if (!cosmos) throw new Error('rewriteAuditTrail: the Cosmos server is needed');
    const client = cosmosClientOf(cosmos);
    try {
        const { resources: dbs } = await client.databases.readAll().fetchAll();
        for (const d of dbs) {
            const audit = client.database(d.id).container('audit');
            const { resources } = await audit.items
                .query<Record<string, unknown>>({
                    query: 'SELECT * FROM c WHERE c.runId = @runId ORDER BY c.seq',
                    parameters: [{ name: '@runId', value: runId }],
                })
                .fetchAll()
                .catch(() => ({ resources: [] as Record<string, unknown>[] }));
            if (!resources.length) continue;
            const strip = (item: Record<string, unknown>): Record<string, unknown> =>
                Object.fromEntries(Object.entries(item).filter(([k]) => k !== 'id' && !k.startsWith('_')));
            const next = edit(resources.map(strip));
            for (const item of resources) await audit.item(item.id as string, runId).delete();
            for (const [i, r] of next.entries())
                await audit.items.create({ ...r, id: `t${String(i).padStart(6, '0')}`, _pos: i + 1 });
        }
    } finally {
        client.dispose();
    }
}
