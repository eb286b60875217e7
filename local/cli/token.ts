/**
 * `npm run token`: prints a bearer token the local host accepts, signed by the local identity provider's key
 * (see local/identity.ts). Only the token goes to stdout, so `TOKEN=$(npm run -s token -- ...)` works.
 */
import { parseArgs } from 'node:util';

import { isRole, ROLES } from '../../domain/principal';
import { keysDirFrom, loadOrCreateSigningKey, mintToken } from '../identity';

/** Where the command writes; `process` fits, tests pass collectors. */
export interface CliOutput {
    stdout: { write(chunk: string): unknown };
    stderr: { write(chunk: string): unknown };
}

const USAGE = `usage: npm run token -- --sub <id> [--roles <r1,r2>] [--teams <t1,t2>] [--name <display name>]
                         [--ttl <seconds>] [--expired] [--foreign]
  --sub      user id (becomes sub and oid)
  --roles    comma-separated app roles: ${ROLES.join(', ')}
  --teams    comma-separated teams (groups and team claims)
  --ttl      lifetime in seconds (default 3600)
  --expired  mint a token that expired an hour ago
  --foreign  sign with a key the host does not trust
The signing key lives in MESH_KEYS_DIR (default ./.mesh-data/keys).
`;

class UsageError extends Error {}

/** Runs the command; resolves to the process exit code (0 ok, 1 failure, 2 bad arguments). */
export async function main(
    argv: readonly string[],
    env: Readonly<Record<string, string | undefined>>,
    out: CliOutput,
): Promise<number> {
    let opts: ReturnType<typeof parse>;
    try {
        opts = parse(argv);
    } catch (e: unknown) {
        out.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
        return 2;
    }
    if (opts === 'help') {
        out.stdout.write(USAGE);
        return 0;
    }
    try {
        const key = await loadOrCreateSigningKey(keysDirFrom(env));
        out.stdout.write(`${await mintToken(key, opts)}\n`);
        return 0;
    } catch (e: unknown) {
        out.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
        return 1;
    }
}

function parse(argv: readonly string[]) {
    // parseArgs throws a TypeError on unknown options or missing values; both are usage errors.
    const { values } = parseArgs({
        args: [...argv],
        strict: true,
        allowPositionals: false,
        options: {
            sub: { type: 'string' },
            roles: { type: 'string' },
            teams: { type: 'string' },
            name: { type: 'string' },
            ttl: { type: 'string' },
            expired: { type: 'boolean' },
            foreign: { type: 'boolean' },
            help: { type: 'boolean', short: 'h' },
        },
    });
    if (values.help) return 'help' as const;
    const sub = values.sub?.trim();
    if (!sub) throw new UsageError('--sub is required');
    const roles = list(values.roles);
    const unknown = roles.filter((r) => !isRole(r));
    if (unknown.length > 0) {
        throw new UsageError(`unknown role(s): ${unknown.join(', ')}; valid roles: ${ROLES.join(', ')}`);
    }
    const ttl = values.ttl ?? '3600';
    if (!/^[1-9][0-9]{0,8}$/.test(ttl)) throw new UsageError('--ttl must be a positive whole number of seconds');
    return {
        sub,
        roles,
        teams: list(values.teams),
        ttlSeconds: Number(ttl),
        expired: values.expired ?? false,
        foreign: values.foreign ?? false,
        ...(values.name !== undefined && { name: values.name }),
    };
}

function list(csv: string | undefined): string[] {
    return [
        ...new Set(
            (csv ?? '')
                .split(',')
                .map((s) => s.trim())
                .filter((s) => s.length > 0),
        ),
    ];
}

if (require.main === module) {
    void main(process.argv.slice(2), process.env, process).then((code) => {
        process.exitCode = code;
    });
}
