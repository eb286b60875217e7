/**
 * Encryption at rest of sensitive fields: whether it is on and where the data key ring comes from. This module is the
 * only reader of `MESH_ENCRYPTION` and `MESH_DATA_KEYS_SECRET`; the key directory is the approval-link keys' one
 * (`MESH_KEYS_DIR`, else `.mesh-data/keys` with the embedded store), as adapters/config.ts parses it.
 */
import { parseLinkConfig } from '../config';

type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_DATA_KEYS_SECRET = 'mesh-data-keys';

export interface CryptoConfig {
    /** `MESH_ENCRYPTION`: `on` (the default) or `off` (benchmarks comparing the cost; nothing is sealed then). */
    readonly enabled: boolean;
    /**
     * The secret holding the ring (`MESH_DATA_KEYS_SECRET`, default `mesh-data-keys`: Key Vault's spelling, found in
     * the environment as `MESH_DATA_KEYS`): JSON `{ "current": "<kid>", "keys": { "<kid>": "<base64 32 bytes>" } }`.
     */
    readonly keysSecret: string;
    /** Local operation only: the directory of `data-keys.json`, created when no secret holds the ring. */
    readonly keysDir: string | undefined;
}

/** Parses the settings without caching; an `MESH_ENCRYPTION` other than on/off is a configuration error. */
export function parseCryptoConfig(env: Env, cwd = process.cwd()): CryptoConfig {
    const mode = (env.MESH_ENCRYPTION?.trim() || 'on').toLowerCase();
    if (mode !== 'on' && mode !== 'off') throw new Error(`MESH_ENCRYPTION must be 'on' or 'off', got '${mode}'.`);
    return Object.freeze({
        enabled: mode === 'on',
        keysSecret: env.MESH_DATA_KEYS_SECRET?.trim() || DEFAULT_DATA_KEYS_SECRET,
        keysDir: parseLinkConfig(env, cwd).keysDir,
    });
}

let cached: CryptoConfig | undefined;

/** The settings of this process, read from `process.env` on first use and cached. */
export function cryptoConfig(): CryptoConfig {
    cached ??= parseCryptoConfig(process.env);
    return cached;
}

/** Forgets the cached settings so a test can change the environment and read them again. */
export function resetCryptoConfigForTests(): void {
    cached = undefined;
}
