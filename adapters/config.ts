/**
 * Typed, frozen configuration parsed once from the environment. This module is the only reader of
 * `process.env` for these keys, so a misconfigured host fails at startup with every missing key named.
 */
import { join, resolve } from 'node:path';

/** Where bearer tokens come from and how to read them. */
export interface AuthConfig {
    /** Expected `iss` (Entra: `https://login.microsoftonline.com/<tenant>/v2.0`). */
    readonly issuer: string;
    /** Expected `aud` (the app registration's Application ID URI or client id). */
    readonly audience: string;
    /** JWKS endpoint holding the issuer's signing keys. */
    readonly jwksUri: string;
    /** Claim holding the caller's teams (default `groups`); the `team` claim is always read too. */
    readonly teamsClaim: string;
}

type Env = Readonly<Record<string, string | undefined>>;

let cachedAuth: AuthConfig | undefined;

/** Parses the `AUTH_*` settings from `env` without caching; throws one Error naming every missing key. */
export function parseAuthConfig(env: Env): AuthConfig {
    const missing = ['AUTH_ISSUER', 'AUTH_AUDIENCE', 'AUTH_JWKS_URI'].filter((k) => !env[k]?.trim());
    if (missing.length > 0) throw new Error(`Missing required configuration: ${missing.join(', ')}`);
    return Object.freeze({
        issuer: env.AUTH_ISSUER!.trim(),
        audience: env.AUTH_AUDIENCE!.trim(),
        jwksUri: env.AUTH_JWKS_URI!.trim(),
        teamsClaim: env.AUTH_TEAMS_CLAIM?.trim() || 'groups',
    });
}

/** The auth settings of this process, read from `process.env` on first use and cached. */
export function authConfig(): AuthConfig {
    cachedAuth ??= parseAuthConfig(process.env);
    return cachedAuth;
}

/** Forgets the cached configuration so a test can change the environment and read it again. */
export function resetConfigForTests(): void {
    cachedAuth = undefined;
    cachedStore = undefined;
    cachedLinks = undefined;
}

/** Where runs, audit and policies are kept. */
export interface StoreConfig {
    /** `embedded` (SQLite under MESH_DATA_DIR, the default) or `cosmos`. */
    readonly kind: 'embedded' | 'cosmos';
    readonly dataDir: string;
}

let cachedStore: StoreConfig | undefined;

export function parseStoreConfig(env: Env): StoreConfig {
    const kind = (env.MESH_STORE?.trim() || 'embedded').toLowerCase();
    if (kind !== 'embedded' && kind !== 'cosmos')
        throw new Error(`MESH_STORE must be 'embedded' or 'cosmos', got '${kind}'.`);
    return Object.freeze({ kind, dataDir: env.MESH_DATA_DIR?.trim() || '.mesh-data' });
}

export function storeConfig(): StoreConfig {
    cachedStore ??= parseStoreConfig(process.env);
    return cachedStore;
}

/** Where approval-link signing keys come from. */
export interface LinkConfig {
    /** The secret holding the key set: JSON `{ "current": <private JWK>, "previous"?: <private JWK> }`. */
    readonly keysSecret: string;
    /**
     * Local operation only: the directory of `link-keys.json`, which the host creates when no secret holds the
     * keys (`MESH_KEYS_DIR`, else `.mesh-data/keys` with the embedded store). Undefined on Azure: the secret is
     * required there.
     */
    readonly keysDir: string | undefined;
    /** `local.settings.json`, whose `Values` the local secret store reads after the environment. */
    readonly settingsFile: string;
}

let cachedLinks: LinkConfig | undefined;

export function parseLinkConfig(env: Env, cwd = process.cwd()): LinkConfig {
    const dir = env.MESH_KEYS_DIR?.trim();
    const local = parseStoreConfig(env).kind === 'embedded';
    return Object.freeze({
        keysSecret: env.MESH_LINK_KEYS_SECRET?.trim() || 'mesh-link-keys',
        keysDir: dir ? resolve(cwd, dir) : local ? join(cwd, '.mesh-data', 'keys') : undefined,
        settingsFile: join(cwd, 'local.settings.json'),
    });
}

export function linkConfig(): LinkConfig {
    cachedLinks ??= parseLinkConfig(process.env);
    return cachedLinks;
}

/**
 * The environment, as the local secret store reads it (live, not a copy: on Azure, Key Vault references in app
 * settings arrive here too).
 */
export function secretEnvironment(): Env {
    return process.env;
}
