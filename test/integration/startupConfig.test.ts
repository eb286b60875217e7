/**
 * Configuration at start-up (issue 10). A host on the Cosmos DB store with no Key Vault and no MESH_KEYS_DIR used to
 * answer its first request 500 (`No data encryption keys`); the embedded host is local operation, so it now uses local
 * keys (created under `<cwd>/.mesh-data/keys`, as with the embedded store) and a run goes through. A host with bad or
 * inconsistent settings exits non-zero at start with a message naming each setting, and never says it listens.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { Api, runAwaitingApproval, USERS } from '../support/api';
import { HostProcess, ROOT, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(120_000);

describe('MESH_STORE=cosmos without Key Vault on the embedded host', () => {
    let host: HostProcess | undefined;
    afterAll(async () => {
        await host?.stop();
    });

    it('uses local keys: a run is submitted, sealed and read back, no 500', async () => {
        // A fresh working directory: no local.settings.json, and the default keys dir is its own.
        const cwd = tempDataDir('mesh-cwd-');
        host = await startHostProcess({
            store: 'cosmos',
            cwd,
            env: { MESH_ENGINE_LATENCY_MS: '0', MESH_KEYS_DIR: '', KEY_VAULT_URL: '' },
        });
        // Tokens are signed by the key the host uses: the default keys dir of its working directory.
        const api = new Api({ ...host, dataDir: join(cwd, '.mesh-data') });
        const { id } = await runAwaitingApproval(api, USERS.dana, 'Cosmos with local keys');
        const status = await api.call('GET', `/pipeline/status/${id}`, { user: USERS.dana });
        expect(status.status).toBe(200);
        expect(status.body.data).toMatchObject({ orchestrationID: id, status: 'AwaitingApproval', team: 'alpha' });
        const logs = await api.call('GET', `/pipeline/logs/${id}`, { user: USERS.carl });
        expect(logs.status).toBe(200);
        expect(logs.body.data.chain.verified).toBe(true);
        expect(existsSync(join(cwd, '.mesh-data', 'keys', 'data-keys.json'))).toBe(true);
        expect(host.output()).not.toMatch(/No data encryption keys|No approval-link signing keys/);
    });
});

describe('a bad or inconsistent configuration', () => {
    it('stops the host at start, exit code 1, with every bad setting named', async () => {
        const dataDir = tempDataDir();
        const child = spawn(process.execPath, [join(ROOT, 'dist/local/main.js')], {
            cwd: ROOT,
            env: {
                ...process.env,
                PORT: '0',
                MESH_DATA_DIR: dataDir,
                MESH_KEYS_DIR: join(dataDir, 'keys'),
                MESH_STORE: 'cosmos', // without COSMOS_ENDPOINT
                COSMOS_ENDPOINT: '',
                MESH_ENCRYPTION: 'maybe',
                MESH_REMINDER_FRACTION: '2',
                KEY_VAULT_URL: 'http://vault.example.com',
            },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        try {
            // Poll for the exit: a host that starts anyway fails this wait instead of hanging the test.
            await waitUntil(
                () => Promise.resolve(child.exitCode !== null || child.signalCode !== null),
                'the host to exit',
                30_000,
            );
        } finally {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        }
        expect(child.exitCode).toBe(1);
        expect(out).toContain('Invalid configuration: the app cannot start');
        for (const setting of ['COSMOS_ENDPOINT', 'MESH_ENCRYPTION', 'MESH_REMINDER_FRACTION', 'KEY_VAULT_URL'])
            expect(out).toContain(setting);
        expect(out).not.toContain('listening on');
    });
});
