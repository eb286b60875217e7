import { randomBytes } from 'node:crypto';

import {
    FieldCipher,
    FieldCipherError,
    isSealed,
    SEALED_ALG,
    type SealedValue,
} from '../../adapters/crypto/fieldCipher';
import { type KeyRingDoc, keyRingOf, rotateKeyRing } from '../../adapters/crypto/keyRing';

const CTX = { runId: 'run-1', field: 'input' };

function ringDoc(...kids: string[]): KeyRingDoc {
    return {
        current: kids[kids.length - 1]!,
        keys: Object.fromEntries(kids.map((k) => [k, randomBytes(32).toString('base64')])),
    };
}

function cipherOf(doc: KeyRingDoc): FieldCipher {
    return new FieldCipher(keyRingOf(doc, 'test ring'));
}

/** The thrown error, for assertions on its code and message. */
function thrown(work: () => unknown): FieldCipherError {
    try {
        work();
    } catch (e: unknown) {
        expect(e).toBeInstanceOf(FieldCipherError);
        return e as FieldCipherError;
    }
    throw new Error('expected a throw');
}

/** A base64url string with one bit of its first byte flipped. */
function flip(b64u: string): string {
    const bytes = Buffer.from(b64u, 'base64url');
    bytes[0] = bytes[0]! ^ 1;
    return bytes.toString('base64url');
}

describe('FieldCipher', () => {
    const doc = ringDoc('k1');
    const cipher = cipherOf(doc);

    it.each([
        ['an object', { prompt: 'plan the launch', tags: ['a', 'b'], n: 3, nested: { ok: true, none: null } }],
        ['a string', 'the approver says: ship it'],
        ['null', null],
        ['a number', 42],
        ['an empty string', ''],
        ['unicode', { text: 'Zürich — 東京 — 🚀' }],
    ])('round-trips %s', (_name, value) => {
        const sealed = cipher.seal(value, CTX);
        expect(isSealed(sealed)).toBe(true);
        expect(cipher.open(sealed, CTX)).toEqual(value);
    });

    it('produces a JSON-safe sealed form that names its kid and holds no plaintext', () => {
        const sealed = cipher.seal({ secret: 'top secret plan' }, CTX);
        expect(Object.keys(sealed).sort()).toEqual(['$enc', 'ct', 'iv', 'kid', 'tag', 'wk']);
        expect(sealed).toMatchObject({ $enc: SEALED_ALG, kid: 'k1' });
        for (const k of ['wk', 'iv', 'ct', 'tag'] as const) expect(sealed[k]).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(Buffer.from(sealed.iv, 'base64url')).toHaveLength(12);
        expect(Buffer.from(sealed.tag, 'base64url')).toHaveLength(16);
        expect(Buffer.from(sealed.wk, 'base64url')).toHaveLength(12 + 16 + 32);
        const text = JSON.stringify(sealed);
        expect(text).not.toContain('top secret');
        expect(cipher.open(JSON.parse(text) as SealedValue, CTX)).toEqual({ secret: 'top secret plan' });
    });

    it('draws a fresh IV and data key for every value', () => {
        const seals = Array.from({ length: 20 }, () => cipher.seal('same value', CTX));
        for (const k of ['iv', 'wk', 'ct', 'tag'] as const) expect(new Set(seals.map((s) => s[k])).size).toBe(20);
        // The wrapped DEK differs in its ciphertext part too, not only in its wrap IV.
        expect(new Set(seals.map((s) => Buffer.from(s.wk, 'base64url').subarray(28).toString('hex'))).size).toBe(20);
    });

    it.each([
        ['ct', (s: SealedValue) => ({ ...s, ct: flip(s.ct) })],
        ['tag', (s: SealedValue) => ({ ...s, tag: flip(s.tag) })],
        ['iv', (s: SealedValue) => ({ ...s, iv: flip(s.iv) })],
        ['wrapped key', (s: SealedValue) => ({ ...s, wk: flip(s.wk) })],
    ])('refuses a value whose %s was altered', (_part, tamper) => {
        const e = thrown(() => cipher.open(tamper(cipher.seal({ a: 1 }, CTX)), CTX));
        expect(e.code).toBe('AUTH_FAILED');
        expect(e.message).toMatch(/authentication failed/);
    });

    it('refuses a value relabelled with another kid of the ring', () => {
        const two = cipherOf({ current: 'k1', keys: { ...doc.keys, k2: doc.keys.k1! } });
        const sealed = two.seal('x', CTX);
        expect(thrown(() => two.open({ ...sealed, kid: 'k2' }, CTX)).code).toBe('AUTH_FAILED');
    });

    it('refuses a malformed value', () => {
        const sealed = cipher.seal('x', CTX);
        expect(thrown(() => cipher.open({ ...sealed, iv: sealed.iv.slice(2) }, CTX)).code).toBe('MALFORMED');
        expect(thrown(() => cipher.open({ ...sealed, $enc: 'other' } as unknown as SealedValue, CTX)).code).toBe(
            'MALFORMED',
        );
    });

    it('binds a value to its run and field (additional authenticated data)', () => {
        const sealed = cipher.seal({ prompt: 'p' }, CTX);
        const otherRun = thrown(() => cipher.open(sealed, { runId: 'run-2', field: 'input' }));
        expect(otherRun.code).toBe('AUTH_FAILED');
        expect(otherRun.message).toContain('run run-2, input');
        expect(thrown(() => cipher.open(sealed, { runId: 'run-1', field: 'output' })).code).toBe('AUTH_FAILED');
    });

    it('names an unknown kid, and never key material', () => {
        const sealed = cipherOf(ringDoc('gone')).seal('x', CTX);
        const e = thrown(() => cipher.open(sealed, CTX));
        expect(e.code).toBe('UNKNOWN_KID');
        expect(e.message).toContain("'gone'");
        expect(e.message).toContain('k1');
        const key = Buffer.from(doc.keys.k1!, 'base64');
        for (const form of [doc.keys.k1!, key.toString('hex'), key.toString('base64url')])
            expect(e.message).not.toContain(form);
    });

    it('opens values sealed under a rotated-out key while the ring keeps it; new values use the new key', () => {
        const v1 = cipherOf(doc);
        const old = v1.seal({ secret: 'sealed under k1' }, CTX);
        const rotated = rotateKeyRing(doc, { kid: 'k2' });
        expect(rotated.current).toBe('k2');
        expect(rotated.keys.k1).toBe(doc.keys.k1);
        const v2 = cipherOf(rotated);
        expect(v2.open(old, CTX)).toEqual({ secret: 'sealed under k1' });
        const fresh = v2.seal('new', CTX);
        expect(fresh.kid).toBe('k2');
        expect(v2.open(fresh, CTX)).toBe('new');
        // The old ring cannot open what the new key sealed: it names the kid it lacks.
        expect(thrown(() => v1.open(fresh, CTX)).code).toBe('UNKNOWN_KID');
    });

    it('refuses to seal what JSON cannot hold', () => {
        expect(() => cipher.seal(undefined, CTX)).toThrow(/has no JSON form/);
    });

    it('isSealed recognises only the complete sealed shape', () => {
        const sealed = cipher.seal('x', CTX);
        expect(isSealed(sealed)).toBe(true);
        expect(isSealed({ ...sealed, ct: 'not base64url!' })).toBe(false);
        expect(isSealed({ ...sealed, tag: undefined })).toBe(false);
        expect(isSealed({ ...sealed, $enc: 'A128GCM' })).toBe(false);
        for (const v of [null, undefined, 'x', 1, [sealed], { prompt: 'p' }]) expect(isSealed(v)).toBe(false);
    });
});
