/**
 * Local key files (the local identity provider's signing key, approval-link keys, data keys): created once, race-safe
 * across processes, private to the user, never replaced when broken.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, promises as fsp, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Reads `file` with `parse`, or, if it does not exist, creates it (mode 0600, its directory 0700) holding
 * `create()`'s text. Creation is race-safe across processes: the text is written whole to a private temp file and
 * hard-linked to the final name, which fails if another process won; the loser reads the winner's file. A present
 * but broken file is an error (`parse` throws), never replaced.
 */
export async function loadOrCreateKeyFile<T>(
    file: string,
    create: () => string | Promise<string>,
    parse: (text: string, source: string) => T,
): Promise<T> {
    const read = (): T | undefined => {
        let text: string;
        try {
            text = readFileSync(file, 'utf8');
        } catch (e: unknown) {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
            throw e;
        }
        return parse(text, file);
    };
    const existing = read();
    if (existing !== undefined) return existing;
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const text = await create();
    const created = parse(text, file);
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await fsp.writeFile(tmp, text, { mode: 0o600, flag: 'wx' });
    try {
        await fsp.link(tmp, file);
        return created;
    } catch (e: unknown) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const winner = read();
        if (winner === undefined) throw new Error(`${file} vanished while being created`);
        return winner;
    } finally {
        await fsp.unlink(tmp).catch(() => undefined);
    }
}
