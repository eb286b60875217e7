import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';

import { main } from '../../local/cli/token';
import { loadOrCreateSigningKey, LOCAL_AUDIENCE, LOCAL_ISSUER, publicJwks } from '../../local/identity';

let dir: string;
beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mesh-cli-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]) {
    let stdout = '';
    let stderr = '';
    const code = await main(
        argv,
        { MESH_KEYS_DIR: dir },
        {
            stdout: { write: (s: string) => (stdout += s) },
            stderr: { write: (s: string) => (stderr += s) },
        },
    );
    return { code, stdout, stderr };
}

describe('token CLI', () => {
    it('prints only a token the local key verifies, followed by a newline', async () => {
        const r = await run(
            '--sub',
            'alice',
            '--roles',
            'Mesh.Developer,Mesh.Approver',
            '--teams',
            'alpha',
            '--name',
            'Alice A',
        );
        expect(r.code).toBe(0);
        expect(r.stderr).toBe('');
        expect(r.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
        const key = await loadOrCreateSigningKey(dir);
        const { payload } = await jwtVerify(r.stdout.trim(), createLocalJWKSet(publicJwks(key)), {
            issuer: LOCAL_ISSUER,
            audience: LOCAL_AUDIENCE,
        });
        expect(payload).toMatchObject({
            sub: 'alice',
            name: 'Alice A',
            roles: ['Mesh.Developer', 'Mesh.Approver'],
            team: ['alpha'],
        });
    });

    it('honours --ttl', async () => {
        const { exp, iat } = decodeJwt((await run('--sub', 'a', '--ttl', '60')).stdout.trim());
        expect(exp! - iat!).toBe(60);
    });

    it('mints expired and foreign tokens on request', async () => {
        const key = await loadOrCreateSigningKey(dir);
        const jwks = createLocalJWKSet(publicJwks(key));
        const expired = await run('--sub', 'a', '--expired');
        expect(expired.code).toBe(0);
        await expect(jwtVerify(expired.stdout.trim(), jwks)).rejects.toThrow(/exp/);
        const foreign = await run('--sub', 'a', '--foreign');
        expect(foreign.code).toBe(0);
        await expect(jwtVerify(foreign.stdout.trim(), jwks)).rejects.toThrow();
    });

    it('prints usage on --help', async () => {
        const r = await run('--help');
        expect(r.code).toBe(0);
        expect(r.stdout).toContain('usage:');
    });

    it.each([
        ['no --sub', ['--roles', 'Mesh.Developer'], '--sub is required'],
        ['unknown option', ['--sub', 'a', '--bogus'], 'bogus'],
        ['positional', ['--sub', 'a', 'extra'], 'extra'],
        ['missing value', ['--sub'], 'sub'],
        ['bad ttl', ['--sub', 'a', '--ttl', '1h'], '--ttl'],
        ['zero ttl', ['--sub', 'a', '--ttl', '0'], '--ttl'],
    ])('exits 2 with usage on stderr for %s', async (_name, argv, mention) => {
        const r = await run(...argv);
        expect(r.code).toBe(2);
        expect(r.stdout).toBe('');
        expect(r.stderr).toContain(mention);
        expect(r.stderr).toContain('usage:');
    });

    it('exits 2 on unknown roles and lists the valid ones', async () => {
        const r = await run('--sub', 'a', '--roles', 'Mesh.Developer,Mesh.God');
        expect(r.code).toBe(2);
        expect(r.stdout).toBe('');
        expect(r.stderr).toContain('Mesh.God');
        for (const role of [
            'Mesh.Developer',
            'Mesh.DataScientist',
            'Mesh.Operator',
            'Mesh.Approver',
            'Mesh.Compliance',
            'Mesh.Admin',
        ]) {
            expect(r.stderr).toContain(role);
        }
    });
});
