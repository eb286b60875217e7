/** Edits a stored audit record behind the store's back, as an attacker with write access to the database would. */
import { cosmosClientOf } from './cosmosServer';
import type { HostProcess } from './hostProcess';
import type { StoreKind } from './stores';

type Edit = (record: Record<string, unknown>) => Record<string, unknown>;

export async function tamperAuditRecord(
    store: StoreKind,
    host: HostProcess,
    runId: string,
    seq: number,
    edit: Edit,
): Promise<void> {
    if (store === 'embedded') {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const Database = require('better-sqlite3') as typeof import('better-sqlite3');
        const db = new Database(`${host.dataDir}/app.sqlite`);
        try {
            // The append-only trigger is dropped first: the hash chain is what catches the edit.
            db.exec('DROP TRIGGER IF EXISTS audit_is_append_only');
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
