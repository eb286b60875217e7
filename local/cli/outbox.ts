/**
 * `npm run outbox`: prints the local notification outbox (`<MESH_DATA_DIR>/outbox.jsonl`, default ./.mesh-data),
 * newest first, one JSON object per line: `channel`, `to`, `subject`, `runId`, `checkpointId`, `links[]` of
 * {`decision`, `url`}, `status` and when it was sent. `--limit <n>` prints the newest n only.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { outboxPath, readOutbox } from '../../adapters/notify/outbox';
import type { CliOutput } from './token';

export function main(
    argv: readonly string[],
    env: Readonly<Record<string, string | undefined>>,
    out: CliOutput,
): number {
    let limit = Infinity;
    try {
        const { values } = parseArgs({ args: [...argv], strict: true, options: { limit: { type: 'string' } } });
        if (values.limit !== undefined) {
            limit = Number(values.limit);
            if (!Number.isInteger(limit) || limit < 0) throw new Error('--limit takes a whole number');
        }
    } catch (e: unknown) {
        out.stderr.write(
            `error: ${e instanceof Error ? e.message : String(e)}\nusage: npm run outbox -- [--limit <n>]\n`,
        );
        return 2;
    }
    const file = outboxPath(resolve(env.MESH_DATA_DIR?.trim() || '.mesh-data'));
    try {
        const records = readOutbox(file).reverse().slice(0, limit);
        for (const { key: _key, ...record } of records) out.stdout.write(`${JSON.stringify(record)}\n`);
        return 0;
    } catch (e: unknown) {
        out.stderr.write(`error: cannot read ${file}: ${e instanceof Error ? e.message : String(e)}\n`);
        return 1;
    }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2), process.env, process);
