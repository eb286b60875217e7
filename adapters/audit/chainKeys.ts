/**
 * The audit chain's MAC keys: a ring `{ "current": "<kid>", "keys": { "<kid>": "<base64 of 32 bytes>", … } }` from the
 * secret `mesh-audit-keys` (`MESH_AUDIT_KEYS_SECRET`; Key Vault on Azure, the environment as `MESH_AUDIT_KEYS` or
 * local.settings.json locally). On the embedded host without that secret it comes from
 * `<MESH_KEYS_DIR>/audit-keys.json`, created on first use (mode 0600), as the data keys come from `data-keys.json`
 * (adapters/crypto/keyRing.ts) and the approval-link keys from `link-keys.json`. The keys never enter a store: a
 * record's `hash` is the HMAC-SHA256 under the key its `kid` names (domain/audit.ts).
 *
 * Rotation: a new key made current (`rotateKeyRing`, same format as the data keys) keys new records; the old keys
 * stay in the ring so the records they keyed still verify. A record naming a kid the loaded ring lacks makes the
 * verifier read the ring again (at most every 30 seconds), so a rotation made on another instance verifies at once.
 */
import { createHmac, type KeyObject, randomBytes } from 'node:crypto';
import { join } from 'node:path';

import type { ChainKey, ChainKeyRing } from '../../domain/audit';
import type { SecretStore } from '../../domain/ports';
import type { KeyRing } from '../crypto/fieldCipher';
import { cachedRing, loadOrCreateRingFile, parseKeyRing, type RingLoader, ringSource } from '../crypto/keyRing';
import type { AuditChainConfig } from './config';

export const AUDIT_KEY_FILE = 'audit-keys.json';

/** The domain's view of a loaded ring: HMAC-SHA256 (hex) under each key. */
export function chainKeyRingOf(ring: KeyRing): ChainKeyRing {
    const keyOf = (kid: string, key: KeyObject): ChainKey => ({
        kid,
        mac: (text) => createHmac('sha256', key).update(text, 'utf8').digest('hex'),
    });
    const keys = new Map([...ring.keys].map(([kid, key]) => [kid, keyOf(kid, key)]));
    return { current: keys.get(ring.current)!, get: (kid) => keys.get(kid) };
}

/** A fresh ring of one key, in its stored form: kid `ak-<yyyymmdd>-<8 hex>`. */
export function newAuditKeyRingText(now: Date = new Date()): string {
    const kid = `ak-${now.toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(4).toString('hex')}`;
    return `${JSON.stringify({ current: kid, keys: { [kid]: randomBytes(32).toString('base64') } }, null, 2)}\n`;
}

/** Loads `<keysDir>/audit-keys.json`, creating it (one fresh key, mode 0600, directory 0700) if absent. */
export function loadOrCreateAuditKeyFile(keysDir: string): Promise<KeyRing> {
    return loadOrCreateRingFile(join(keysDir, AUDIT_KEY_FILE), () => newAuditKeyRingText());
}

/**
 * Where the ring comes from: the secret `cfg.keysSecret` when it is set, else (local operation) the key file in
 * `cfg.keysDir`. Without either, the first append or verification fails loudly (a configuration error).
 */
export function chainKeySource(
    secrets: SecretStore,
    cfg: Pick<AuditChainConfig, 'keysSecret' | 'keysDir'>,
): () => Promise<ChainKeyRing> {
    const ring = ringSource(secrets, cfg, AUDIT_KEY_FILE, 'audit chain keys', () => newAuditKeyRingText());
    return async () => chainKeyRingOf(await ring());
}

/**
 * What the audit stores and the verifier call for the ring: loaded on first use, again once `cacheMs` old, and again
 * on `{ refresh: true }` (a record named a kid the ring lacks) if the last load is over 30 seconds old.
 */
export type ChainKeyLoader = RingLoader<ChainKeyRing>;

export function cachedChainKeys(
    source: () => Promise<ChainKeyRing>,
    opts: { cacheMs?: number; now?: () => number } = {},
): ChainKeyLoader {
    return cachedRing(source, opts);
}

/**
 * The ring to verify `kids` with: the cached one, read again once if it lacks one of them (a rotation another
 * instance made).
 */
export async function ringFor(keys: ChainKeyLoader, kids: Iterable<string | undefined>): Promise<ChainKeyRing> {
    const ring = await keys();
    for (const kid of kids) if (kid !== undefined && !ring.get(kid)) return keys({ refresh: true });
    return ring;
}

let ephemeral: ChainKeyRing | undefined;

/**
 * A ring of one random key that lives only in this process: the default of stores opened without a key source
 * (tests and tools). What it keys never verifies in another process; the composition root (adapters/deps.ts) always
 * passes the configured ring.
 */
export function ephemeralChainKeyRing(): ChainKeyRing {
    ephemeral ??= chainKeyRingOf(parseKeyRing(newAuditKeyRingText(), 'the ephemeral audit key ring'));
    return ephemeral;
}

/** `ephemeralChainKeyRing` as a loader. */
export function ephemeralChainKeys(): ChainKeyLoader {
    const ring = ephemeralChainKeyRing();
    return () => Promise.resolve(ring);
}
