/**
 * The Azure secret store: Azure Key Vault through `@azure/keyvault-secrets`, authenticated with
 * `DefaultAzureCredential` (the app's managed identity on Azure, a developer login locally). Selected when
 * `KEY_VAULT_URL` is set (adapters/deps.ts).
 *
 * Values are cached for a TTL (`KEY_VAULT_CACHE_TTL_SECONDS`, default 5 minutes), so a rotated secret reaches every
 * instance within that time; a missing secret (404) is cached for a shorter time. Concurrent reads of one name share
 * one request. Any other failure propagates as the SDK's error, which never carries a secret value; failures are not
 * cached.
 *
 * The SDKs are loaded and the client built on the first read, so nothing contacts Azure (or even loads MSAL) when
 * this module is imported or the store constructed.
 */
import type { SecretStore } from '../../domain/ports';
import type { SecretsConfig } from '../config';

/** What the store needs of `SecretClient`; tests pass a fake. */
export interface SecretClientLike {
    getSecret(name: string): Promise<{ value?: string }>;
}

export interface KeyVaultSecretStoreOptions {
    /** How long a value is used before it is read again (default 5 minutes). */
    ttlMs?: number;
    /** How long "no such secret" is remembered (default the smaller of `ttlMs` and 30 seconds). */
    negativeTtlMs?: number;
    /** The clock, in epoch milliseconds. */
    now?: () => number;
}

export const DEFAULT_TTL_MS = 5 * 60_000;
const MAX_NEGATIVE_TTL_MS = 30_000;
/** Key Vault secret names: 1-127 characters of [0-9a-zA-Z-]. */
const MAX_NAME_CHARS = 127;

/**
 * The Key Vault spelling of a secret name: any character Key Vault does not allow becomes `-`, so the environment
 * spelling (`MESH_LINK_KEYS`) and the Key Vault one (`mesh-link-keys`) name the same secret (Key Vault names are
 * case-insensitive).
 */
export function keyVaultSecretName(name: string): string {
    const mapped = name.replace(/[^0-9A-Za-z-]/g, '-');
    if (mapped === '' || mapped.length > MAX_NAME_CHARS)
        throw new Error(`'${name}' cannot be a Key Vault secret name (1-${MAX_NAME_CHARS} characters of 0-9a-zA-Z-).`);
    return mapped;
}

interface Cached {
    value: string | undefined;
    expires: number;
}

export class KeyVaultSecretStore implements SecretStore {
    private client: Promise<SecretClientLike> | undefined;
    private readonly cache = new Map<string, Cached>();
    private readonly inFlight = new Map<string, Promise<string | undefined>>();
    private readonly ttlMs: number;
    private readonly negativeTtlMs: number;
    private readonly now: () => number;

    /** `client` is a client, or a factory called on the first read (once, unless it fails). */
    constructor(
        private readonly clientSource: SecretClientLike | (() => SecretClientLike | Promise<SecretClientLike>),
        opts: KeyVaultSecretStoreOptions = {},
    ) {
        this.ttlMs = opts.ttlMs ?? DEFAULT_TTL_MS;
        this.negativeTtlMs = opts.negativeTtlMs ?? Math.min(this.ttlMs, MAX_NEGATIVE_TTL_MS);
        this.now = opts.now ?? Date.now;
    }

    async get(name: string): Promise<string | undefined> {
        const vaultName = keyVaultSecretName(name);
        const key = vaultName.toLowerCase();
        const cached = this.cache.get(key);
        if (cached && this.now() < cached.expires) return cached.value;
        const pending = this.inFlight.get(key);
        if (pending) return pending;
        const read = this.read(vaultName).then(
            (value) => {
                this.inFlight.delete(key);
                const ttl = value === undefined ? this.negativeTtlMs : this.ttlMs;
                this.cache.set(key, { value, expires: this.now() + ttl });
                return value;
            },
            (e: unknown) => {
                this.inFlight.delete(key);
                throw e;
            },
        );
        this.inFlight.set(key, read);
        return read;
    }

    private async read(name: string): Promise<string | undefined> {
        const client = await this.clientOnce();
        try {
            const secret = await client.getSecret(name);
            const value = secret.value;
            return value === undefined || value.trim() === '' ? undefined : value;
        } catch (e: unknown) {
            if (isNotFound(e)) return undefined;
            throw e;
        }
    }

    private clientOnce(): Promise<SecretClientLike> {
        if (!this.client) {
            const source = this.clientSource;
            const building = Promise.resolve().then(() => (typeof source === 'function' ? source() : source));
            building.catch(() => {
                if (this.client === building) this.client = undefined;
            });
            this.client = building;
        }
        return this.client;
    }
}

/** A `RestError` (or anything shaped like one) with status 404: the secret does not exist. */
function isNotFound(e: unknown): boolean {
    return typeof e === 'object' && e !== null && (e as { statusCode?: unknown }).statusCode === 404;
}

/** The store for `KEY_VAULT_URL`: `SecretClient` with `DefaultAzureCredential`, both built on the first read. */
export function keyVaultSecretStore(
    cfg: Pick<SecretsConfig, 'keyVaultUrl' | 'cacheTtlSeconds'>,
    opts: Omit<KeyVaultSecretStoreOptions, 'ttlMs'> = {},
): KeyVaultSecretStore {
    const url = cfg.keyVaultUrl;
    if (!url) throw new Error('KEY_VAULT_URL is not set.');
    return new KeyVaultSecretStore(
        async () => {
            const [{ SecretClient }, { DefaultAzureCredential }] = await Promise.all([
                import('@azure/keyvault-secrets'),
                import('@azure/identity'),
            ]);
            return new SecretClient(url, new DefaultAzureCredential());
        },
        { ...opts, ttlMs: cfg.cacheTtlSeconds * 1000 },
    );
}
