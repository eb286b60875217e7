/**
 * The decision seals (domain/ports.ts `DecisionSeals`): a decision's comment sealed with the field cipher before it is
 * raised into the durable history, and the attestation of who decided, an HMAC-SHA256 over the claims with a host key
 * kept outside every store.
 *
 * Attestation: `v1.<kid>.<base64url(claims JSON)>.<base64url(HMAC-SHA256(key, "mesh-decision.v1.<kid>.<claims>"))>`.
 * The keys are a key ring in the data keys' format (`{ "current": "<kid>", "keys": { "<kid>": "<base64 32 bytes>" } }`,
 * adapters/crypto/keyRing.ts, rotated the same way with `rotateKeyRing`): the secret `mesh-decision-keys` (Key Vault
 * on Azure; `MESH_DECISION_KEYS` in the environment or local.settings.json locally; the name from
 * `MESH_DECISION_KEYS_SECRET`), else on the embedded host `<MESH_KEYS_DIR>/decision-keys.json` (0600), created on first
 * use. New attestations name the current kid; every kid in the ring verifies, so decisions in flight across a rotation
 * still count. A kid this instance does not hold makes it read the ring again (at most every 30 seconds).
 *
 * The comment is sealed as text (`sealed:` and the sealed value's JSON in base64url, as encryptedStores seals audit
 * reasons), bound to the run and checkpoint: the `record` activity opens it and the stores seal it again under their
 * own contexts, so it is never plaintext in history, store or log. With encryption off it travels as typed.
 */
import { createHmac, type KeyObject, timingSafeEqual } from 'node:crypto';

import type { DecisionClaims } from '../../domain/attestation';
import type { DecisionSeals, SecretStore } from '../../domain/ports';
import { ROLES } from '../../domain/principal';
import { DECISIONS } from '../../domain/quorum';
import { isSealed, type KeyRing, type SealContext, type SealedValue } from './fieldCipher';
import { cachedRing, type CipherLoader, ringSource } from './keyRing';

export const DECISION_KEY_FILE = 'decision-keys.json';
export const DEFAULT_DECISION_KEYS_SECRET = 'mesh-decision-keys';

const VERSION = 'v1';
const SEALED_TEXT_PREFIX = 'sealed:';
const MAX_ATTESTATION_CHARS = 8192;

/** Where the attestation keys come from: the secret when it is set, else (local operation) the key file. */
export function decisionKeySource(
    secrets: SecretStore,
    cfg: { keysSecret: string; keysDir: string | undefined },
): () => Promise<KeyRing> {
    return ringSource(secrets, cfg, DECISION_KEY_FILE, 'decision attestation keys');
}

/** The secret's name: `MESH_DECISION_KEYS_SECRET`, default `mesh-decision-keys`. */
export function decisionKeysSecret(env: Readonly<Record<string, string | undefined>>): string {
    return env.MESH_DECISION_KEYS_SECRET?.trim() || DEFAULT_DECISION_KEYS_SECRET;
}

export function decisionSeals(
    source: () => Promise<KeyRing>,
    cipher: CipherLoader | undefined,
    opts: { cacheMs?: number; now?: () => number } = {},
): DecisionSeals {
    const loader = cachedRing(source, opts);
    const ring = (refresh = false): Promise<KeyRing> => loader({ refresh });
    return {
        async sealComment(runId, checkpointId, comment) {
            if (!cipher) return comment;
            const sealed = (await cipher()).seal(comment, commentContext(runId, checkpointId));
            return SEALED_TEXT_PREFIX + Buffer.from(JSON.stringify(sealed), 'utf8').toString('base64url');
        },

        async openComment(runId, checkpointId, comment) {
            const sealed = sealedOfText(comment);
            if (sealed === undefined) return comment;
            if (!cipher) throw new Error('A sealed decision comment arrived while encryption is off.');
            const ctx = commentContext(runId, checkpointId);
            let c = await cipher();
            if (!c.has(sealed.kid)) c = await cipher({ refresh: true });
            return c.open(sealed, ctx) as string;
        },

        async attest(claims) {
            const keys = await ring();
            const key = keys.keys.get(keys.current)!;
            const payload = Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url');
            return `${VERSION}.${keys.current}.${payload}.${mac(key, keys.current, payload)}`;
        },

        async verify(attestation) {
            if (attestation === undefined || attestation === null)
                return { invalid: 'the decision carries no attestation' };
            if (typeof attestation !== 'string' || attestation.length > MAX_ATTESTATION_CHARS)
                return { invalid: 'the attestation is malformed' };
            const parts = attestation.split('.');
            if (parts.length !== 4 || parts[0] !== VERSION) return { invalid: 'the attestation is malformed' };
            const [, kid, payload, sig] = parts as [string, string, string, string];
            let keys = await ring();
            if (!keys.keys.has(kid)) keys = await ring(true);
            const key = keys.keys.get(kid);
            if (!key) return { invalid: 'the attestation names a key this host does not hold' };
            const expected = Buffer.from(mac(key, kid, payload), 'utf8');
            const given = Buffer.from(sig, 'utf8');
            if (expected.length !== given.length || !timingSafeEqual(expected, given))
                return { invalid: 'the attestation signature does not verify' };
            const claims = claimsOf(payload);
            return claims ? { claims } : { invalid: 'the attestation is malformed' };
        },
    };
}

function mac(key: KeyObject, kid: string, payload: string): string {
    return createHmac('sha256', key).update(`mesh-decision.${VERSION}.${kid}.${payload}`).digest('base64url');
}

function commentContext(runId: string, checkpointId: string): SealContext {
    return { runId, field: `decision[${checkpointId}].comment` };
}

function sealedOfText(text: string): SealedValue | undefined {
    if (!text.startsWith(SEALED_TEXT_PREFIX)) return undefined;
    try {
        const v = JSON.parse(
            Buffer.from(text.slice(SEALED_TEXT_PREFIX.length), 'base64url').toString('utf8'),
        ) as unknown;
        return isSealed(v) ? v : undefined;
    } catch {
        return undefined;
    }
}

const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 512;

/** The claims a verified payload holds, checked for shape (a signed payload is ours, but checked all the same). */
function claimsOf(payload: string): DecisionClaims | undefined {
    let c: Partial<DecisionClaims>;
    try {
        c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Partial<DecisionClaims>;
    } catch {
        return undefined;
    }
    if (typeof c !== 'object' || c === null) return undefined;
    const ok =
        c.v === 1 &&
        [c.run, c.cp, c.did, c.sub, c.iat].every(isText) &&
        (DECISIONS as readonly unknown[]).includes(c.d) &&
        (c.ch === 'api' || c.ch === 'link') &&
        Array.isArray(c.roles) &&
        c.roles.every((r) => (ROLES as readonly unknown[]).includes(r)) &&
        Array.isArray(c.teams) &&
        c.teams.every(isText) &&
        (c.cmt === undefined || isText(c.cmt));
    return ok ? (c as DecisionClaims) : undefined;
}
