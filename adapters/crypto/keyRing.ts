/**
 * The key ring of field encryption's key-encryption keys (KEKs): JSON `{ "current": "<kid>", "keys": { "<kid>": "<base64 of 32 bytes>", … } }`
 * from the secret `mesh-data-keys` (Key Vault on Azure; the environment as `MESH_DATA_KEYS` or local.settings.json
 * locally). On the embedded host without that secret it comes from `<MESH_KEYS_DIR>/data-keys.json`, created on
 * first use, as the approval-link keys come from `link-keys.json` (adapters/links/joseLinkSigner.ts).
 *
 * Rotation: `rotateKeyRing` adds a new key and makes it current; the old keys stay so what they sealed still opens.
 * With several instances, an instance still holding the old ring (for up to the cache time, plus Key Vault's) cannot
 * open values another instance sealed under the new key until it reads the ring again; a value naming an unknown kid
 * makes `cachedCipher` read it again (at most every 30 seconds). To avoid that window entirely, first publish a ring
 * holding the new key but not yet current, then make it current once every instance has read it.
 */
import { createSecretKey, randomBytes } from 'node:crypto';
import { join } from 'node:path';

import { maskPiiText } from '../../domain/audit';
import type { SecretStore } from '../../domain/ports';
import { loadOrCreateKeyFile } from '../secrets/keyFile';
import type { CryptoConfig } from './config';
import { FieldCipher, type KeyRing } from './fieldCipher';

export const DATA_KEY_FILE = 'data-keys.json';

/** A key ring as stored (secret or key file). */
export interface KeyRingDoc {
    current: string;
    /** kid -> base64 of 32 random bytes. */
    keys: Record<string, string>;
}

const KEY_BYTES = 32;
/**
 * Key ids go into every sealed value: short, and of a charset that survives JSON, URLs and PII masking. At most 40
 * characters, so a key (43+ characters of base64) can never pass for one and be quoted in an error.
 */
const KID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/;
/** base64 (or base64url) of 32 bytes: 43 characters and optional padding. */
const KEY_TEXT = /^[A-Za-z0-9+/_-]{43}=?$/;
/** How long a loaded ring is used before it is read again (a rotation reaches every instance within this). */
const DEFAULT_CACHE_MS = 5 * 60_000;
/** A value naming a kid we do not hold makes us read the ring again, at most this often. */
const UNKNOWN_KID_REFRESH_MS = 30_000;

/**
 * Parses and checks a stored ring: `current` is one of `keys`, every kid is well formed, every key is exactly 32
 * bytes. The error names `source` and every problem (by kid), never key material.
 */
export function parseKeyRing(text: string, source: string): KeyRing {
    let parsed: unknown;
    try {
        parsed = JSON.parse(text);
    } catch {
        parsed = undefined;
    }
    return keyRingOf(parsed, source);
}

/** `parseKeyRing` for a ring already parsed (or built in code). */
export function keyRingOf(doc: unknown, source: string): KeyRing {
    const shape = `${source} is not a data key ring: {"current": "<kid>", "keys": {"<kid>": "<base64 of 32 bytes>"}}`;
    const d = doc as Partial<KeyRingDoc> | null | undefined;
    if (typeof d !== 'object' || d === null || typeof d.keys !== 'object' || d.keys === null || Array.isArray(d.keys))
        throw new Error(shape);
    const problems: string[] = [];
    const keys = new Map<string, ReturnType<typeof createSecretKey>>();
    for (const [i, [kid, value]] of Object.entries(d.keys as Record<string, unknown>).entries()) {
        // An ill-formed kid is not quoted: it may be a key pasted into the wrong place.
        if (!KID.test(kid) || maskPiiText(kid) !== kid) {
            problems.push(`key #${i + 1}'s id is not 1-40 characters of A-Z a-z 0-9 . _ - (starting alphanumeric)`);
            continue;
        }
        const bytes = typeof value === 'string' && KEY_TEXT.test(value) ? Buffer.from(value, 'base64') : undefined;
        if (bytes?.length !== KEY_BYTES) {
            problems.push(`key '${kid}' is not the base64 of exactly ${KEY_BYTES} bytes`);
            continue;
        }
        keys.set(kid, createSecretKey(bytes));
        bytes.fill(0);
    }
    if (typeof d.current !== 'string' || d.current === '') problems.push('"current" names no key id');
    else if (!(d.current in d.keys)) problems.push('"current" names a key id the ring does not hold');
    if (Object.keys(d.keys).length === 0) problems.push('it holds no keys');
    if (problems.length) throw new Error(`${shape}: ${problems.join('; ')}.`);
    return { current: d.current!, keys };
}

/** A fresh key id: `dk-<yyyymmdd>-<8 hex>` (the date helps operators; the random part keeps it unique). */
export function newKid(now: Date = new Date()): string {
    const day = now.toISOString().slice(0, 10).replace(/-/g, '');
    return `dk-${day}-${randomBytes(4).toString('hex')}`;
}

/** A fresh 256-bit key in its stored form (base64). */
export function newDataKey(): string {
    return randomBytes(KEY_BYTES).toString('base64');
}

/** A ring of one fresh key. */
export function newKeyRingDoc(now?: Date): KeyRingDoc {
    const kid = newKid(now);
    return { current: kid, keys: { [kid]: newDataKey() } };
}

/**
 * Rotation: a new ring whose current key is a fresh one (`kid` if given, else `newKid`), with every old key kept so
 * values sealed under them still open. Drop an old key only once nothing sealed under it remains.
 */
export function rotateKeyRing(doc: KeyRingDoc, opts: { kid?: string; now?: Date } = {}): KeyRingDoc {
    keyRingOf(doc, 'the ring to rotate');
    const kid = opts.kid ?? newKid(opts.now);
    if (kid in doc.keys) throw new Error(`The ring already holds key id '${kid}'.`);
    const rotated: KeyRingDoc = { current: kid, keys: { ...doc.keys, [kid]: newDataKey() } };
    keyRingOf(rotated, 'the rotated ring');
    return rotated;
}

/** Loads `<keysDir>/data-keys.json`, creating it (one fresh key, mode 0600) if absent. */
export function loadOrCreateDataKeyFile(keysDir: string): Promise<KeyRing> {
    return loadOrCreateRingFile(join(keysDir, DATA_KEY_FILE));
}

/** Loads a key ring file, creating it (one fresh key, mode 0600) if absent. */
export function loadOrCreateRingFile(file: string, create: () => string = newKeyRingText): Promise<KeyRing> {
    return loadOrCreateKeyFile(file, create, parseKeyRing);
}

function newKeyRingText(): string {
    return `${JSON.stringify(newKeyRingDoc(), null, 2)}\n`;
}

/**
 * Where a ring comes from, for every ring of the app (data keys, audit chain keys, decision attestation keys): the
 * secret `cfg.keysSecret` when it is set, else (local operation) `file` in `cfg.keysDir`, created on first use.
 * Without either, the first use fails loudly naming the secret (a configuration error the start-up check also names).
 */
export function ringSource(
    secrets: SecretStore,
    cfg: { keysSecret: string; keysDir: string | undefined },
    file: string,
    what: string,
    create?: () => string,
): () => Promise<KeyRing> {
    return async () => {
        const secret = await secrets.get(cfg.keysSecret);
        if (secret !== undefined) return parseKeyRing(secret, `secret '${cfg.keysSecret}'`);
        if (cfg.keysDir !== undefined) return loadOrCreateRingFile(join(cfg.keysDir, file), create);
        throw new Error(`No ${what}: set the secret '${cfg.keysSecret}'.`);
    };
}

/**
 * A loaded ring (or what is made of it) as every key user reads it: loaded on first use, again once `cacheMs` old, and
 * again on `{ refresh: true }` (a value named a kid the ring lacks, a rotation made on another instance) if the last
 * load is over 30 seconds old. A failed load is not kept.
 */
export type RingLoader<T> = (opts?: { refresh?: boolean }) => Promise<T>;

export function cachedRing<T>(
    source: () => Promise<T>,
    opts: { cacheMs?: number; now?: () => number } = {},
): RingLoader<T> {
    const maxAge = opts.cacheMs ?? DEFAULT_CACHE_MS;
    const now = opts.now ?? Date.now;
    let loaded: Promise<T> | undefined;
    let loadedAt = 0;
    return (o = {}) => {
        const age = now() - loadedAt;
        if (!loaded || age > maxAge || (o.refresh && age > UNKNOWN_KID_REFRESH_MS)) {
            loadedAt = now();
            const loading = source();
            loading.catch(() => {
                if (loaded === loading) loaded = undefined;
            });
            loaded = loading;
        }
        return loaded;
    };
}

/**
 * Where the ring comes from: the secret `cfg.keysSecret` when it is set, else (local operation) the key file in
 * `cfg.keysDir`. Without either, the first seal or open fails loudly (a configuration error).
 */
export function keyRingSource(
    secrets: SecretStore,
    cfg: Pick<CryptoConfig, 'keysSecret' | 'keysDir'>,
): () => Promise<KeyRing> {
    return ringSource(secrets, cfg, DATA_KEY_FILE, 'data encryption keys');
}

/**
 * What the encrypted stores call for their cipher: loads the ring on first use, again once it is `cacheMs` old, and
 * again on `{ refresh: true }` (a value named a kid this ring lacks) if the last load is over 30 seconds old. A
 * failed load is not kept.
 */
export type CipherLoader = RingLoader<FieldCipher>;

export function cachedCipher(
    source: () => Promise<KeyRing>,
    opts: { cacheMs?: number; now?: () => number } = {},
): CipherLoader {
    return cachedRing(() => source().then((ring) => new FieldCipher(ring)), opts);
}
