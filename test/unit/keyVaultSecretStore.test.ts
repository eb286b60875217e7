import { parseLinkConfig, parseSecretsConfig, resetConfigForTests, secretsConfig } from '../../adapters/config';
import {
    DEFAULT_TTL_MS,
    keyVaultSecretName,
    KeyVaultSecretStore,
    keyVaultSecretStore,
    type SecretClientLike,
} from '../../adapters/keyvault/keyVaultSecretStore';
import {
    generateLinkKey,
    JoseLinkSigner,
    type LinkKeySet,
    linkKeySource,
    rotateLinkKeySet,
} from '../../adapters/links/joseLinkSigner';
import type { LinkClaims } from '../../domain/links';

/** A fake `SecretClient`: secrets by name, every call recorded, optional gate to hold responses. */
class FakeClient implements SecretClientLike {
    readonly calls: string[] = [];
    readonly secrets = new Map<string, string>();
    failWith: Error | undefined;
    private gate: Promise<void> | undefined;
    private open: (() => void) | undefined;

    hold(): void {
        this.gate = new Promise((resolve) => (this.open = resolve));
    }

    release(): void {
        this.open?.();
        this.gate = undefined;
    }

    async getSecret(name: string): Promise<{ value?: string }> {
        this.calls.push(name);
        if (this.gate) await this.gate;
        if (this.failWith !== undefined) throw this.failWith;
        const value = this.secrets.get(name);
        if (value === undefined) throw Object.assign(new Error(`Secret not found: ${name}`), { statusCode: 404 });
        return { value };
    }
}

function setup(opts: { ttlMs?: number; negativeTtlMs?: number } = {}) {
    const client = new FakeClient();
    let t = 1_000_000;
    const store = new KeyVaultSecretStore(client, { ...opts, now: () => t });
    return { client, store, advance: (ms: number) => (t += ms) };
}

describe('KeyVaultSecretStore', () => {
    it('serves a value from the cache within the TTL', async () => {
        const { client, store, advance } = setup();
        client.secrets.set('mesh-link-keys', 'v1');
        expect(await store.get('mesh-link-keys')).toBe('v1');
        client.secrets.set('mesh-link-keys', 'v2');
        advance(DEFAULT_TTL_MS - 1);
        expect(await store.get('mesh-link-keys')).toBe('v1');
        expect(client.calls).toEqual(['mesh-link-keys']);
    });

    it('reads the secret again once the TTL has passed', async () => {
        const { client, store, advance } = setup({ ttlMs: 60_000 });
        client.secrets.set('mesh-link-keys', 'v1');
        expect(await store.get('mesh-link-keys')).toBe('v1');
        client.secrets.set('mesh-link-keys', 'v2');
        advance(60_000);
        expect(await store.get('mesh-link-keys')).toBe('v2');
        expect(client.calls).toHaveLength(2);
    });

    it('shares one request between concurrent reads of the same name', async () => {
        const { client, store } = setup();
        client.secrets.set('a', 'A');
        client.secrets.set('b', 'B');
        client.hold();
        const reads = [store.get('a'), store.get('a'), store.get('A'), store.get('b')];
        await new Promise((resolve) => setImmediate(resolve));
        client.release();
        expect(await Promise.all(reads)).toEqual(['A', 'A', 'A', 'B']);
        expect(client.calls).toEqual(['a', 'b']);
        expect(await store.get('a')).toBe('A');
        expect(client.calls).toHaveLength(2);
    });

    it('answers undefined for a missing secret (404) and remembers that for the shorter negative TTL', async () => {
        const { client, store, advance } = setup({ ttlMs: 300_000, negativeTtlMs: 10_000 });
        expect(await store.get('absent')).toBeUndefined();
        client.secrets.set('absent', 'now here');
        advance(9_999);
        expect(await store.get('absent')).toBeUndefined();
        expect(client.calls).toHaveLength(1);
        advance(1);
        expect(await store.get('absent')).toBe('now here');
        expect(client.calls).toHaveLength(2);
    });

    it('treats a blank value as no secret, like the local store', async () => {
        const { client, store } = setup();
        client.secrets.set('blank', '  ');
        expect(await store.get('blank')).toBeUndefined();
    });

    it('propagates other errors without the value, and does not cache them', async () => {
        const { client, store, advance } = setup({ ttlMs: 1_000 });
        const value = 'super-secret-value';
        client.secrets.set('s', value);
        expect(await store.get('s')).toBe(value);
        advance(1_000);
        const failure = Object.assign(new Error('Forbidden: caller lacks secrets/get'), { statusCode: 403 });
        client.failWith = failure;
        const read = store.get('s');
        await expect(read).rejects.toBe(failure);
        const message = await read.then(
            () => '',
            (e: unknown) => `${(e as Error).message} ${(e as Error).stack ?? ''}`,
        );
        expect(message).not.toContain(value);
        client.failWith = undefined;
        expect(await store.get('s')).toBe(value);
        expect(client.calls).toHaveLength(3);
    });

    it('retries building the client after the factory failed', async () => {
        const client = new FakeClient();
        client.secrets.set('x', 'X');
        let builds = 0;
        const store = new KeyVaultSecretStore(() => {
            builds += 1;
            if (builds === 1) throw new Error('no credential');
            return client;
        });
        await expect(store.get('x')).rejects.toThrow('no credential');
        expect(await store.get('x')).toBe('X');
        expect(builds).toBe(2);
    });

    it('maps names to the Key Vault alphabet', async () => {
        expect(keyVaultSecretName('mesh-link-keys')).toBe('mesh-link-keys');
        expect(keyVaultSecretName('MESH_LINK_KEYS')).toBe('MESH-LINK-KEYS');
        expect(() => keyVaultSecretName('')).toThrow();
        expect(() => keyVaultSecretName('x'.repeat(128))).toThrow();
        const { client, store } = setup();
        client.secrets.set('mesh-link-keys', 'v');
        expect(await store.get('mesh_link_keys')).toBe('v');
        expect(client.calls).toEqual(['mesh-link-keys']);
        await expect(store.get('')).rejects.toThrow('Key Vault secret name');
    });

    it('builds nothing Azure-side until the first read', () => {
        const store = keyVaultSecretStore({ keyVaultUrl: 'https://example.vault.azure.net', cacheTtlSeconds: 300 });
        expect(store).toBeInstanceOf(KeyVaultSecretStore);
        expect(() => keyVaultSecretStore({ keyVaultUrl: undefined, cacheTtlSeconds: 300 })).toThrow('KEY_VAULT_URL');
    });
});

describe('parseSecretsConfig', () => {
    it('selects Key Vault only when KEY_VAULT_URL is set', () => {
        expect(parseSecretsConfig({})).toEqual({ keyVaultUrl: undefined, cacheTtlSeconds: 300 });
        expect(
            parseSecretsConfig({ KEY_VAULT_URL: ' https://kv.vault.azure.net/ ', KEY_VAULT_CACHE_TTL_SECONDS: '60' }),
        ).toEqual({ keyVaultUrl: 'https://kv.vault.azure.net', cacheTtlSeconds: 60 });
    });

    it('rejects a URL that is not https and a bad TTL', () => {
        expect(() => parseSecretsConfig({ KEY_VAULT_URL: 'http://kv.vault.azure.net' })).toThrow('KEY_VAULT_URL');
        expect(() => parseSecretsConfig({ KEY_VAULT_URL: 'kv' })).toThrow('KEY_VAULT_URL');
        expect(() => parseSecretsConfig({ KEY_VAULT_CACHE_TTL_SECONDS: '-1' })).toThrow('KEY_VAULT_CACHE_TTL_SECONDS');
        expect(() => parseSecretsConfig({ KEY_VAULT_CACHE_TTL_SECONDS: 'soon' })).toThrow(
            'KEY_VAULT_CACHE_TTL_SECONDS',
        );
    });

    it('is read from process.env once, until resetConfigForTests', () => {
        const saved = process.env.KEY_VAULT_URL;
        try {
            process.env.KEY_VAULT_URL = 'https://one.vault.azure.net';
            resetConfigForTests();
            expect(secretsConfig().keyVaultUrl).toBe('https://one.vault.azure.net');
            process.env.KEY_VAULT_URL = 'https://two.vault.azure.net';
            expect(secretsConfig().keyVaultUrl).toBe('https://one.vault.azure.net');
            resetConfigForTests();
            expect(secretsConfig().keyVaultUrl).toBe('https://two.vault.azure.net');
        } finally {
            if (saved === undefined) delete process.env.KEY_VAULT_URL;
            else process.env.KEY_VAULT_URL = saved;
            resetConfigForTests();
        }
    });

    it('asks for a link key set name Key Vault accepts', () => {
        const { keysSecret } = parseLinkConfig({ MESH_STORE: 'cosmos' });
        expect(keysSecret).toBe('mesh-link-keys');
        expect(keyVaultSecretName(keysSecret)).toBe(keysSecret);
    });
});

describe('link keys from Key Vault', () => {
    const NOW = new Date('2025-06-01T12:00:00.000Z');
    const T = NOW.getTime() / 1000;
    const claims: LinkClaims = {
        jti: '0b7d1c9e-8f7a-4c1e-9a55-3e2f1d0c9b8a',
        sub: 'ava',
        name: 'Ava',
        cp: 'run-1.1.taste.before.0',
        run: 'run-1',
        d: 'approve',
        roles: ['Mesh.Approver'],
        teams: ['alpha'],
        iat: T - 60,
        exp: T + 3600,
    };

    it('verifies a link signed by the previous key after a rotation', async () => {
        const client = new FakeClient();
        let t = NOW.getTime();
        const store = new KeyVaultSecretStore(client, { ttlMs: 60_000, now: () => t });
        const cfg = { keysSecret: 'mesh-link-keys', keysDir: undefined };
        const before: LinkKeySet = { current: await generateLinkKey() };
        client.secrets.set('mesh-link-keys', JSON.stringify(before));

        const oldSigner = new JoseLinkSigner(linkKeySource(store, cfg), { now: () => NOW });
        const oldLink = await oldSigner.sign(claims);

        const after = await rotateLinkKeySet(before);
        client.secrets.set('mesh-link-keys', JSON.stringify(after));
        t += 60_000; // the store's cache has expired: the next read sees the rotated set
        const signer = new JoseLinkSigner(linkKeySource(store, cfg), { now: () => NOW });
        const newLink = await signer.sign(claims);

        const kidOf = (token: string) =>
            (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as { kid: string }).kid;
        expect(kidOf(oldLink)).toBe(before.current.kid);
        expect(kidOf(newLink)).toBe(after.current.kid);
        expect(await signer.verify(oldLink)).toEqual(claims);
        expect(await signer.verify(newLink)).toEqual(claims);
        expect(client.calls).toEqual(['mesh-link-keys', 'mesh-link-keys']);

        // A second rotation drops the oldest key: its links no longer verify.
        client.secrets.set('mesh-link-keys', JSON.stringify(await rotateLinkKeySet(after)));
        t += 60_000;
        const later = new JoseLinkSigner(linkKeySource(store, cfg), { now: () => NOW });
        await expect(later.verify(oldLink)).rejects.toMatchObject({ code: 'LINK_INVALID' });
        expect(await later.verify(newLink)).toEqual(claims);
    });

    it('fails, without quoting key material, when Key Vault has no key set and there is no key directory', async () => {
        const client = new FakeClient();
        const store = new KeyVaultSecretStore(client);
        const signer = new JoseLinkSigner(linkKeySource(store, { keysSecret: 'mesh-link-keys', keysDir: undefined }));
        await expect(signer.sign(claims)).rejects.toThrow("set the secret 'mesh-link-keys'");
    });
});
