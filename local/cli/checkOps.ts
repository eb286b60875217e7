/**
 * `npm run check:ops [-- --root <dir>] [--only helm,schemas,...]`: runs the infrastructure checks (local/ops) and
 * prints one line per check, `ok <name>: <what was checked>` or `FAIL <name>: ...` followed by its findings
 * (file:line: message). Exits 1 when any check fails, 2 on a usage error.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { type CheckName, CHECKS, runChecks } from '../ops/checkOps';
import { where } from '../ops/types';
import type { CliOutput } from './token';

export async function main(argv: readonly string[], out: CliOutput): Promise<number> {
    let root: string;
    let only: CheckName[] | undefined;
    try {
        const { values } = parseArgs({
            args: [...argv],
            strict: true,
            options: { root: { type: 'string' }, only: { type: 'string' } },
        });
        root = resolve(values.root ?? '.');
        if (values.only !== undefined) {
            only = values.only.split(',').map((s) => s.trim()) as CheckName[];
            const bad = only.filter((n) => !(CHECKS as readonly string[]).includes(n));
            if (bad.length > 0) throw new Error(`unknown check ${bad.join(', ')} (checks: ${CHECKS.join(', ')})`);
        }
    } catch (e: unknown) {
        out.stderr.write(
            `error: ${e instanceof Error ? e.message : String(e)}\n` +
                `usage: npm run check:ops -- [--root <dir>] [--only ${CHECKS.join(',')}]\n`,
        );
        return 2;
    }
    const results = await runChecks({ root }, only);
    for (const r of results) {
        out.stdout.write(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name}: ${r.summary}\n`);
        for (const f of r.findings) out.stdout.write(`     ${where(f)}\n`);
    }
    const failed = results.filter((r) => !r.ok).length;
    out.stdout.write(
        failed === 0
            ? `check:ops: all ${results.length} checks passed\n`
            : `check:ops: ${failed} of ${results.length} checks failed\n`,
    );
    return failed === 0 ? 0 : 1;
}

if (require.main === module) {
    void main(process.argv.slice(2), process).then((code) => {
        process.exitCode = code;
    });
}
