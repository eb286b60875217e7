/**
 * The start-up check of the whole configuration (adapters/configCheck.ts): every bad setting is named in one error,
 * and the inconsistent combination of issue 10 (Cosmos DB, encryption on, neither Key Vault nor local keys) names
 * KEY_VAULT_URL, while local operation (MESH_KEYS_DIR) and the embedded store get local keys.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { assertValidConfiguration, ConfigurationError, configurationProblems } from '../../adapters/configCheck';

/** A sound Azure configuration on Cosmos DB with Key Vault. */
const AZURE: Record<string, string> = {
    AUTH_ISSUER: 'https://login.microsoftonline.com/t/v2.0',
    AUTH_AUDIENCE: 'api://mesh',
    AUTH_JWKS_URI: 'https://login.microsoftonline.com/t/discovery/v2.0/keys',
    ENGINE_URL_GENERATION: 'https://gen.example.com',
    ENGINE_URL_FILTERING: 'https://fil.example.com',
    ENGINE_URL_CREATIVITY: 'https://cre.example.com',
    ENGINE_URL_TASTE: 'https://tas.example.com',
    ENGINE_URL_IMPROVEMENT: 'https://imp.example.com',
    MESH_STORE: 'cosmos',
    COSMOS_ENDPOINT: 'https://acct.documents.azure.com:443/',
    KEY_VAULT_URL: 'https://vault.vault.azure.net',
    PUBLIC_BASE_URL: 'https://mesh.example.com',
    MESH_AUDIT_ANCHOR_CONTAINER_URL: 'https://anchors.blob.core.windows.net/audit-anchors',
};

/** The four key rings as app settings (Key Vault references on Azure). */
const KEYS_AS_SETTINGS = {
    MESH_DATA_KEYS: '{…}',
    MESH_LINK_KEYS: '{…}',
    MESH_AUDIT_KEYS: '{…}',
    MESH_DECISION_KEYS: '{…}',
};

/** A directory without local.settings.json, so only the environment counts. */
const cwd = mkdtempSync(join(tmpdir(), 'mesh-config-'));

function without(env: Record<string, string>, ...keys: string[]): Record<string, string> {
    const copy = { ...env };
    for (const k of keys) delete copy[k];
    return copy;
}

describe('configuration check at start-up', () => {
    it('accepts a sound Azure configuration', async () => {
        expect(await configurationProblems(AZURE, cwd)).toEqual([]);
        await expect(assertValidConfiguration(AZURE, cwd)).resolves.toBeUndefined();
    });

    it('cosmos with encryption on and no Key Vault, on Azure: a start-up error naming KEY_VAULT_URL', async () => {
        const err = await assertValidConfiguration(without(AZURE, 'KEY_VAULT_URL'), cwd).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ConfigurationError);
        const message = (err as Error).message;
        expect(message).toMatch(
            /KEY_VAULT_URL is required: MESH_STORE=cosmos needs the data key ring 'mesh-data-keys'/,
        );
        expect(message).toContain("approval-link signing keys 'mesh-link-keys'");
        expect(message).toContain("audit chain keys 'mesh-audit-keys'");
        expect(message).toContain("decision attestation keys 'mesh-decision-keys'");
        expect(message).toContain('MESH_KEYS_DIR');
        expect((err as ConfigurationError).problems).toHaveLength(1);
    });

    it('local operation (MESH_KEYS_DIR) gets local keys whatever the store', async () => {
        expect(await configurationProblems({ ...without(AZURE, 'KEY_VAULT_URL'), MESH_KEYS_DIR: '/k' }, cwd)).toEqual(
            [],
        );
    });

    it('the embedded store implies local keys, as before', async () => {
        const env = without(AZURE, 'KEY_VAULT_URL', 'COSMOS_ENDPOINT');
        expect(await configurationProblems({ ...env, MESH_STORE: 'embedded' }, cwd)).toEqual([]);
    });

    it('keys given as app settings (Key Vault references) satisfy it; encryption off needs no data keys', async () => {
        const env = without(AZURE, 'KEY_VAULT_URL');
        expect(await configurationProblems({ ...env, ...KEYS_AS_SETTINGS }, cwd)).toEqual([]);
        const off = await configurationProblems({ ...env, MESH_ENCRYPTION: 'off' }, cwd);
        expect(off).toHaveLength(1);
        expect(off[0]).toContain("'mesh-link-keys'");
        expect(off[0]).not.toContain('mesh-data-keys');
    });

    it('local.settings.json holding the secrets satisfies it (as the local secret store reads it)', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'mesh-config-'));
        writeFileSync(join(dir, 'local.settings.json'), JSON.stringify({ Values: KEYS_AS_SETTINGS }));
        expect(await configurationProblems(without(AZURE, 'KEY_VAULT_URL'), dir)).toEqual([]);
    });

    it('names every bad setting in one error, none of them quoted when secret', async () => {
        const env: Record<string, string> = {
            ...without(AZURE, 'AUTH_ISSUER', 'ENGINE_URL_TASTE', 'PUBLIC_BASE_URL', 'COSMOS_ENDPOINT'),
            MESH_ENCRYPTION: 'maybe',
            KEY_VAULT_URL: 'http://vault',
            KEY_VAULT_CACHE_TTL_SECONDS: '-1',
            COSMOS_TTL_DAYS: 'abc',
            COSMOS_KEY: 'super-secret-key',
            SMTP_HOST: 'smtp.example.com',
            SMTP_PORT: '99999',
            MESH_REMINDER_FRACTION: '2',
            MESH_EVENT_WEBHOOK_URL: 'https://hook.example.com',
            MESH_RUN_CAPACITY: '0',
            MESH_RATE_LIMIT_USER: 'lots',
            ENGINE_TIMEOUT_MS: 'soon',
            EVENTGRID_ENDPOINT: 'not a url',
            MESH_DIRECTORY_GROUPS: '{',
        };
        const err = (await assertValidConfiguration(env, cwd).catch((e: unknown) => e)) as ConfigurationError;
        expect(err).toBeInstanceOf(ConfigurationError);
        for (const setting of [
            'AUTH_ISSUER',
            'COSMOS_ENDPOINT',
            'COSMOS_TTL_DAYS',
            'KEY_VAULT_URL',
            'KEY_VAULT_CACHE_TTL_SECONDS',
            'MESH_ENCRYPTION',
            'SMTP_PORT',
            'MESH_REMINDER_FRACTION',
            'MESH_EVENT_WEBHOOK_SECRET',
            'MESH_RUN_CAPACITY',
            'MESH_RATE_LIMIT_USER',
            'ENGINE_URL_TASTE',
            'EVENTGRID_ENDPOINT',
            'MESH_DIRECTORY_GROUPS',
            'PUBLIC_BASE_URL',
        ])
            expect([setting, err.problems.some((p) => p.includes(setting))]).toEqual([setting, true]);
        expect(err.message).toMatch(/^Invalid configuration: the app cannot start \(\d+ problems\):\n {2}- /);
        expect(err.message).not.toContain('super-secret-key');
    });

    it('an audit anchor store is required: the WORM container on Azure, local keys locally', async () => {
        const problems = await configurationProblems(without(AZURE, 'MESH_AUDIT_ANCHOR_CONTAINER_URL'), cwd);
        expect(problems).toEqual([expect.stringContaining('MESH_AUDIT_ANCHOR_CONTAINER_URL is required')]);
        const local = { ...without(AZURE, 'MESH_AUDIT_ANCHOR_CONTAINER_URL', 'KEY_VAULT_URL'), MESH_KEYS_DIR: '/k' };
        expect(await configurationProblems(local, cwd)).toEqual([]);
    });

    it('an unknown store is named', async () => {
        const problems = await configurationProblems({ ...AZURE, MESH_STORE: 'mongo' }, cwd);
        expect(problems).toEqual([expect.stringContaining("MESH_STORE must be 'embedded' or 'cosmos'")]);
    });
});

it('a loopback http Cosmos endpoint needs COSMOS_KEY (Entra ID tokens go over https only)', async () => {
    const env = { ...AZURE, COSMOS_ENDPOINT: 'http://127.0.0.1:8081/' };
    expect(await configurationProblems(env, cwd)).toEqual([expect.stringContaining('COSMOS_KEY is required')]);
    expect(await configurationProblems({ ...env, COSMOS_KEY: 'k' }, cwd)).toEqual([]);
});

it('a malformed OTLP endpoint is refused at start-up with what to set; a URL or none is fine', async () => {
    const problems = await configurationProblems({ ...AZURE, OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' }, cwd);
    expect(problems).toEqual([
        expect.stringContaining('OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL of an OTLP/HTTP collector'),
    ]);
    expect(
        await configurationProblems({ ...AZURE, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://collector/v1/traces' }, cwd),
    ).toEqual([expect.stringContaining('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http(s) URL')]);
    expect(await configurationProblems({ ...AZURE, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318' }, cwd)).toEqual([]);
    // The connection string is a secret: a problem elsewhere never quotes it.
    const secret = 'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://x';
    const withSecret = await configurationProblems(
        { ...AZURE, APPLICATIONINSIGHTS_CONNECTION_STRING: secret, OTEL_EXPORTER_OTLP_ENDPOINT: 'nope' },
        cwd,
    );
    expect(withSecret.join('\n')).not.toContain('InstrumentationKey');
});
