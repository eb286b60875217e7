/**
 * Envelope encryption of single fields (run input and output, stage outputs, decision comments) with node:crypto.
 *
 * Each value gets its own random 256-bit data key (DEK) and 96-bit IV and is sealed with AES-256-GCM over its JSON
 * text; the DEK is wrapped (AES-256-GCM, its own IV) with the key ring's current key-encryption key (KEK), whose
 * `kid` travels with the value. Opening looks the KEK up by that `kid`, so values sealed under a rotated-out key
 * still open while the ring keeps it. The field's context (run id and field name) is GCM additional authenticated
 * data: a sealed value copied to another run or field fails to open, as does any edited byte.
 *
 * The sealed form is plain JSON, so every store keeps it as it keeps any other value:
 * `{ "$enc": "A256GCM.v1", "kid": "…", "wk": b64u(wrapIv|wrapTag|wrappedDek), "iv": b64u, "ct": b64u, "tag": b64u }`.
 */
import { createCipheriv, createDecipheriv, type KeyObject, randomBytes } from 'node:crypto';

export const SEALED_ALG = 'A256GCM.v1';

/** A sealed value as stored. */
export interface SealedValue {
    $enc: typeof SEALED_ALG;
    /** The KEK that wrapped the data key. */
    kid: string;
    /** base64url(wrap IV (12) | wrap tag (16) | wrapped DEK (32)). */
    wk: string;
    iv: string;
    ct: string;
    tag: string;
}

/** What a sealed value is bound to: opening it under any other context fails. */
export interface SealContext {
    runId: string;
    /** The field within the run, e.g. `input`, `output/1.generation`, `audit/<eventId>/details.comment`. */
    field: string;
}

/** The key-encryption keys (each 32 bytes) by `kid`, and the one new values are sealed with. */
export interface KeyRing {
    readonly current: string;
    readonly keys: ReadonlyMap<string, KeyObject>;
}

export type FieldCipherErrorCode = 'UNKNOWN_KID' | 'AUTH_FAILED' | 'MALFORMED';

/** Why a value did not open. Messages name the kid and the context, never key material or plaintext. */
export class FieldCipherError extends Error {
    override readonly name = 'FieldCipherError';

    constructor(
        readonly code: FieldCipherErrorCode,
        message: string,
    ) {
        super(message);
    }
}

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const WRAPPED_BYTES = IV_BYTES + TAG_BYTES + KEY_BYTES;
const B64URL = /^[A-Za-z0-9_-]*$/;

/** Whether `x` has the shape of a sealed value (whether it opens is another matter). */
export function isSealed(x: unknown): x is SealedValue {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
    const s = x as Record<string, unknown>;
    return (
        s.$enc === SEALED_ALG &&
        typeof s.kid === 'string' &&
        (['wk', 'iv', 'ct', 'tag'] as const).every((k) => typeof s[k] === 'string' && B64URL.test(s[k]))
    );
}

export class FieldCipher {
    private readonly current: KeyObject;

    constructor(private readonly ring: KeyRing) {
        const current = ring.keys.get(ring.current);
        if (!current) throw new Error(`The key ring's current key '${ring.current}' is not in the ring.`);
        if (current.symmetricKeySize !== KEY_BYTES)
            throw new Error(`The key ring's key '${ring.current}' is not ${KEY_BYTES} bytes.`);
        this.current = current;
    }

    /** The kid new values are sealed under. */
    get currentKid(): string {
        return this.ring.current;
    }

    /** Whether the ring holds `kid` (values sealed under it open). */
    has(kid: string): boolean {
        return this.ring.keys.has(kid);
    }

    /** Seals `value`'s JSON form. Throws for a value JSON cannot hold (undefined, a function). */
    seal(value: unknown, ctx: SealContext): SealedValue {
        const json = JSON.stringify(value) as string | undefined;
        if (json === undefined) throw new TypeError(`Cannot seal ${ctx.field}: the value has no JSON form.`);
        return this.sealJson(json, ctx);
    }

    /** Seals JSON text as is (the caller serialized it). */
    sealJson(json: string, ctx: SealContext): SealedValue {
        const random = randomBytes(KEY_BYTES + 2 * IV_BYTES);
        const dek = random.subarray(0, KEY_BYTES);
        const iv = random.subarray(KEY_BYTES, KEY_BYTES + IV_BYTES);
        const wrapIv = random.subarray(KEY_BYTES + IV_BYTES);
        try {
            const kid = this.ring.current;
            const data = createCipheriv('aes-256-gcm', dek, iv, { authTagLength: TAG_BYTES });
            data.setAAD(aadOf(ctx));
            const ct = Buffer.concat([data.update(json, 'utf8'), data.final()]);
            const wrap = createCipheriv('aes-256-gcm', this.current, wrapIv, { authTagLength: TAG_BYTES });
            wrap.setAAD(wrapAadOf(kid));
            const wrapped = Buffer.concat([wrap.update(dek), wrap.final()]);
            return {
                $enc: SEALED_ALG,
                kid,
                wk: Buffer.concat([wrapIv, wrap.getAuthTag(), wrapped]).toString('base64url'),
                iv: iv.toString('base64url'),
                ct: ct.toString('base64url'),
                tag: data.getAuthTag().toString('base64url'),
            };
        } finally {
            random.fill(0);
        }
    }

    /** The value `sealed` holds. Throws `FieldCipherError` for an unknown kid, a malformed value or any tampering. */
    open(sealed: SealedValue, ctx: SealContext): unknown {
        return JSON.parse(this.openJson(sealed, ctx));
    }

    /** The JSON text `sealed` holds. */
    openJson(sealed: SealedValue, ctx: SealContext): string {
        const where = `run ${ctx.runId}, ${ctx.field}`;
        if (!isSealed(sealed)) throw new FieldCipherError('MALFORMED', `Cannot open ${where}: not a sealed value.`);
        const kek = this.ring.keys.get(sealed.kid);
        if (!kek) {
            const known = [...this.ring.keys.keys()].join(', ');
            throw new FieldCipherError(
                'UNKNOWN_KID',
                `Cannot open ${where}: it was sealed under key id '${sealed.kid}', which the key ring does not hold (it holds: ${known}).`,
            );
        }
        const wk = Buffer.from(sealed.wk, 'base64url');
        const iv = Buffer.from(sealed.iv, 'base64url');
        const tag = Buffer.from(sealed.tag, 'base64url');
        if (wk.length !== WRAPPED_BYTES || iv.length !== IV_BYTES || tag.length !== TAG_BYTES)
            throw new FieldCipherError('MALFORMED', `Cannot open ${where}: the sealed value is malformed.`);
        let dek: Buffer | undefined;
        try {
            const unwrap = createDecipheriv('aes-256-gcm', kek, wk.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
            unwrap.setAAD(wrapAadOf(sealed.kid));
            unwrap.setAuthTag(wk.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
            dek = Buffer.concat([unwrap.update(wk.subarray(IV_BYTES + TAG_BYTES)), unwrap.final()]);
            const data = createDecipheriv('aes-256-gcm', dek, iv, { authTagLength: TAG_BYTES });
            data.setAAD(aadOf(ctx));
            data.setAuthTag(tag);
            const ct = Buffer.from(sealed.ct, 'base64url');
            return Buffer.concat([data.update(ct), data.final()]).toString('utf8');
        } catch (_e: unknown) {
            // GCM says only "unable to authenticate"; which of tampering or a foreign context it was, it cannot tell.
            throw new FieldCipherError(
                'AUTH_FAILED',
                `Cannot open ${where}: authentication failed (the value was altered, or sealed for another run or field).`,
            );
        } finally {
            dek?.fill(0);
        }
    }
}

/** The data's AAD: algorithm, run and field, as an unambiguous JSON array. */
function aadOf(ctx: SealContext): Buffer {
    return Buffer.from(JSON.stringify([SEALED_ALG, ctx.runId, ctx.field]), 'utf8');
}

/** The wrapped DEK is bound to its kid, so relabelling a value with another kid of the ring fails too. */
function wrapAadOf(kid: string): Buffer {
    return Buffer.from(JSON.stringify([SEALED_ALG, 'dek', kid]), 'utf8');
}
