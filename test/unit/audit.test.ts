import { createHash } from 'node:crypto';

import { chainKeyRingOf, newAuditKeyRingText } from '../../adapters/audit/chainKeys';
import { parseKeyRing } from '../../adapters/crypto/keyRing';
import {
    AuditRecord,
    canonicalJson,
    chainNext,
    GENESIS_HASH,
    hashRecord,
    isSecretKey,
    maskPii,
    maskPiiText,
    NewAuditEvent,
    REDACTED,
    verifyChain,
} from '../../domain/audit';
import { TEST_KEYS } from '../support/chainKeys';

const event = (n: number, over: Partial<NewAuditEvent> = {}): NewAuditEvent => ({
    eventId: `ev-${n}`,
    runId: 'run-1',
    type: 'stage.started',
    at: `2025-01-01T00:00:0${n % 10}.000Z`,
    actor: 'system',
    correlationID: 'corr-1',
    stage: 'generation',
    ...over,
});

function chainOf(n: number): AuditRecord[] {
    const out: AuditRecord[] = [];
    for (let i = 1; i <= n; i++)
        out.push(chainNext(out[out.length - 1], event(i, { details: { i } }), TEST_KEYS.current));
    return out;
}

describe('canonicalJson (RFC 8785)', () => {
    it('sorts keys at every depth and drops whitespace', () => {
        expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe(
            '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
        );
    });

    it('matches the RFC 8785 §3.2.2 example', () => {
        const input = JSON.parse(
            '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
                '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
        );
        expect(canonicalJson(input)).toBe(
            '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
                '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
        );
    });

    it('orders keys by UTF-16 code units (RFC 8785 §3.2.3)', () => {
        const keys = ['\u20ac', '\r', '\ufb33', '1', '\ud83d\ude00', '\u0080', '\u00f6'];
        // Compared as text: JSON.parse would put the integer-like key '1' first again.
        expect(canonicalJson(Object.fromEntries(keys.map((k) => [k, 0])))).toBe(
            '{"\\r":0,"1":0,"\u0080":0,"\u00f6":0,"\u20ac":0,"\ud83d\ude00":0,"\ufb33":0}',
        );
    });

    it('leaves out undefined properties, so absent and undefined fields hash alike', () => {
        expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
    });

    it('refuses values JSON cannot hold', () => {
        expect(() => canonicalJson(undefined)).toThrow(TypeError);
        expect(() => canonicalJson({ n: NaN })).toThrow();
        expect(() => canonicalJson({ n: Infinity })).toThrow();
    });
});

describe('hashRecord', () => {
    const [first] = chainOf(1) as [AuditRecord];

    it("is the key's MAC of the canonical JSON without hash, kid included", () => {
        const { hash, ...rest } = first;
        expect(hash).toMatch(/^[0-9a-f]{64}$/);
        expect(rest.kid).toBe(TEST_KEYS.current.kid);
        expect(hashRecord(rest, TEST_KEYS.current)).toBe(TEST_KEYS.current.mac(canonicalJson(rest)));
        expect(hashRecord(first, TEST_KEYS.current)).toBe(hash);
        // Not the plain SHA-256 anyone could compute.
        expect(hash).not.toBe(createHash('sha256').update(canonicalJson(rest)).digest('hex'));
    });

    it('is stable across key order', () => {
        const reversed = Object.fromEntries(Object.entries(first).reverse()) as unknown as AuditRecord;
        expect(JSON.stringify(reversed)).not.toBe(JSON.stringify(first));
        expect(hashRecord(reversed, TEST_KEYS.current)).toBe(first.hash);
        const shuffled = { ...first, details: { z: 1, a: { y: 2, b: 3 } } };
        const reordered = { ...first, details: { a: { b: 3, y: 2 }, z: 1 } };
        expect(hashRecord(shuffled, TEST_KEYS.current)).toBe(hashRecord(reordered, TEST_KEYS.current));
    });

    it('covers kid, seq and prevHash', () => {
        expect(hashRecord({ ...first, kid: 'other' }, TEST_KEYS.current)).not.toBe(first.hash);
        expect(hashRecord({ ...first, seq: 2 }, TEST_KEYS.current)).not.toBe(first.hash);
        expect(hashRecord({ ...first, prevHash: 'f'.repeat(64) }, TEST_KEYS.current)).not.toBe(first.hash);
    });
});

describe('chainNext', () => {
    it('starts a chain at seq 1 from the genesis hash', () => {
        const r = chainNext(undefined, event(1), TEST_KEYS.current);
        expect(r).toMatchObject({ seq: 1, prevHash: GENESIS_HASH, eventId: 'ev-1', runId: 'run-1' });
        expect(r.hash).toBe(hashRecord(r, TEST_KEYS.current));
    });

    it('links each record to the one before', () => {
        const [a, b] = chainOf(2) as [AuditRecord, AuditRecord];
        expect(b.seq).toBe(2);
        expect(b.prevHash).toBe(a.hash);
    });

    it('takes only the event fields, leaving out undefined optionals', () => {
        const r = chainNext(
            undefined,
            { ...event(1, { reason: undefined }), extra: 'x' } as NewAuditEvent,
            TEST_KEYS.current,
        );
        expect(r).not.toHaveProperty('extra');
        expect(r).not.toHaveProperty('reason');
    });

    it('refuses to link records of different runs', () => {
        const [a] = chainOf(1) as [AuditRecord];
        expect(() => chainNext(a, event(2, { runId: 'run-2' }), TEST_KEYS.current)).toThrow(/run-2/);
    });
});

describe('verifyChain', () => {
    it('verifies an intact chain of 5 and reports its head', () => {
        const records = chainOf(5);
        expect(verifyChain(records, TEST_KEYS)).toEqual({ verified: true, head: records[4]!.hash });
    });

    it('verifies an empty chain with the genesis head', () => {
        expect(verifyChain([], TEST_KEYS)).toEqual({ verified: true, head: GENESIS_HASH });
    });

    it('names the tampered middle record', () => {
        const records = chainOf(5);
        records[2] = { ...records[2]!, reason: 'edited later' };
        expect(verifyChain(records, TEST_KEYS)).toMatchObject({
            verified: false,
            brokenAt: { seq: 3, reason: 'hash mismatch' },
        });
    });

    it('names the next record when the tampered one was re-hashed', () => {
        const records = chainOf(5);
        const edited = { ...records[2]!, details: { i: 99 } };
        records[2] = { ...edited, hash: hashRecord(edited, TEST_KEYS.current) };
        expect(verifyChain(records, TEST_KEYS).brokenAt).toEqual({
            seq: 4,
            reason: 'prevHash does not match the previous record',
        });
    });

    it('reports a deleted record as a seq gap', () => {
        const records = chainOf(5);
        records.splice(3, 1);
        expect(verifyChain(records, TEST_KEYS).brokenAt).toEqual({ seq: 5, reason: 'seq gap: expected 4' });
    });

    it('reports a chain that does not start at 1', () => {
        expect(verifyChain(chainOf(3).slice(1), TEST_KEYS).brokenAt).toEqual({ seq: 2, reason: 'seq gap: expected 1' });
    });

    it('reports records out of order', () => {
        const records = chainOf(3);
        const swapped = [records[0]!, records[2]!, records[1]!];
        expect(verifyChain(swapped, TEST_KEYS).brokenAt).toEqual({ seq: 3, reason: 'seq gap: expected 2' });
        expect(verifyChain([records[0]!, records[0]!], TEST_KEYS).brokenAt).toEqual({
            seq: 1,
            reason: 'seq out of order: expected 2',
        });
    });

    it('reports a record of another run', () => {
        const records = chainOf(3);
        records[1] = { ...records[1]!, runId: 'run-2' };
        expect(verifyChain(records, TEST_KEYS).brokenAt).toMatchObject({ seq: 2 });
    });
});

describe('maskPii', () => {
    it.each([
        ['alice@contoso.com', 'a***@contoso.com'],
        ['Mail Bob.Smith+tag@mail.contoso.co.uk now', 'Mail B***@mail.contoso.co.uk now'],
        ['+14255550100', '+*********00'],
        ['call +1 425-555-0100.', 'call +* ***-***-**00.'],
        ['(425) 555-0100', '(***) ***-**00'],
        ['425.555.0100', '***.***.**00'],
        ['+44 20 7946 0958', '+** ** **** **58'],
        ['030 1234567', '*** *****67'],
        ['Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345', `Authorization: Bearer ${REDACTED}`],
        ['token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz end', `token ${REDACTED} end`],
    ])('masks %j', (input, expected) => {
        expect(maskPiiText(input)).toBe(expected);
    });

    it.each([
        ['2025-01-15'],
        ['2025-01-15T10:30:00.000Z'],
        ['15.01.2025'],
        ['192.168.100.200'],
        ['3.14159265'],
        ['20240115'],
        ['run-20240115-123456'],
        ['550e8400-e29b-41d4-a716-446655440000'],
        ['4111 1111 1111 1111 1111'],
        ['the bearer of bad news'],
        ['mail.contoso.com'],
        ['orchestrators.meshPipeline.activities'],
        ['555-0100'],
    ])('leaves %j alone', (input) => {
        expect(maskPiiText(input)).toBe(input);
    });

    it('walks objects and arrays, keeping non-strings', () => {
        const details = {
            approver: { email: 'carol@contoso.com', phones: ['+4915112345678', 'none'] },
            count: 12345678901,
            ok: true,
            nothing: null,
            list: [{ note: 'ring 425-555-0100' }],
        };
        expect(maskPii(details)).toEqual({
            approver: { email: 'c***@contoso.com', phones: ['+***********78', 'none'] },
            count: 12345678901,
            ok: true,
            nothing: null,
            list: [{ note: 'ring ***-***-**00' }],
        });
        expect(details.approver.email).toBe('carol@contoso.com');
    });

    it('redacts whatever sits under secret-named keys', () => {
        const masked = maskPii({
            password: 'hunter2',
            clientSecret: { value: 'x' },
            access_token: 'abc',
            idToken: 'abc',
            token: 42,
            apiKey: 'k',
            'x-api-key': 'k',
            APIKey: 'k',
            Authorization: 'Basic dXNlcjpwYXNz',
            headers: { authorization: 'Bearer x', 'content-type': 'application/json' },
            connectionString: 'AccountKey=abc',
            maxTokens: 512,
            usage: { totalTokens: 10, tokenCount: 3 },
            secretary: 'Dana',
            emptySecret: null,
        });
        expect(masked).toEqual({
            password: REDACTED,
            clientSecret: REDACTED,
            access_token: REDACTED,
            idToken: REDACTED,
            token: REDACTED,
            apiKey: REDACTED,
            'x-api-key': REDACTED,
            APIKey: REDACTED,
            Authorization: REDACTED,
            headers: { authorization: REDACTED, 'content-type': 'application/json' },
            connectionString: REDACTED,
            maxTokens: 512,
            usage: { totalTokens: 10, tokenCount: 3 },
            secretary: 'Dana',
            emptySecret: null,
        });
    });

    it.each([['passwordHash'], ['refresh-token'], ['Set-Cookie'], ['credentials'], ['privateKey'], ['PASSWORD']])(
        'treats %j as a secret key',
        (key) => {
            expect(isSecretKey(key)).toBe(true);
        },
    );

    it('is idempotent', () => {
        const details = { who: 'alice@contoso.com', tel: '+1 (425) 555-0100', auth: 'Bearer abcdefghijklmnopqrstu' };
        const once = maskPii(details);
        expect(maskPii(once)).toEqual(once);
        expect(once).toEqual({ who: 'a***@contoso.com', tel: '+* (***) ***-**00', auth: `Bearer ${REDACTED}` });
    });
});

describe('verifyChain: keys and the anchored head', () => {
    const otherKeys = chainKeyRingOf(parseKeyRing(newAuditKeyRingText(), 'other'));
    const plain = (r: Omit<AuditRecord, 'hash'>): string => createHash('sha256').update(canonicalJson(r)).digest('hex');

    it('refuses a record appended with a correct plain SHA-256 (no kid)', () => {
        const records = chainOf(3);
        const { kid: _k, ...body } = { ...chainNext(records[2], event(4), TEST_KEYS.current), hash: undefined };
        records.push({ ...body, hash: plain(body) });
        expect(verifyChain(records, TEST_KEYS).brokenAt).toEqual({
            seq: 4,
            reason: 'record is not keyed (no kid): its hash proves nothing',
        });
    });

    it('refuses a record keyed with a key not in the ring, or with a wrong key under a known kid', () => {
        const records = chainOf(3);
        const forged = chainNext(records[2], event(4), otherKeys.current);
        expect(verifyChain([...records, forged], TEST_KEYS).brokenAt).toEqual({
            seq: 4,
            reason: 'record names a chain key id the key ring does not hold',
        });
        const body = { ...forged, kid: TEST_KEYS.current.kid };
        const wrong = { ...body, hash: hashRecord(body, otherKeys.current) };
        expect(verifyChain([...records, wrong], TEST_KEYS).brokenAt).toEqual({ seq: 4, reason: 'hash mismatch' });
    });

    it('refuses a chain rehashed whole with plain SHA-256 and recomputed prevHash, at its first record', () => {
        const rehashed: AuditRecord[] = [];
        for (const r of chainOf(4)) {
            const { hash: _h, kid: _k, ...rest } = r;
            const body = { ...rest, prevHash: rehashed.at(-1)?.hash ?? GENESIS_HASH, reason: 'rewritten' };
            rehashed.push({ ...body, hash: plain(body) });
        }
        expect(verifyChain(rehashed, TEST_KEYS).brokenAt).toEqual({
            seq: 1,
            reason: 'record is not keyed (no kid): its hash proves nothing',
        });
    });

    it('verifies records keyed under an older key still in the ring (rotation)', () => {
        const both = { current: otherKeys.current, get: (kid: string) => TEST_KEYS.get(kid) ?? otherKeys.get(kid) };
        const records = chainOf(2);
        records.push(chainNext(records[1], event(3), otherKeys.current));
        expect(verifyChain(records, both)).toEqual({ verified: true, head: records[2]!.hash });
        expect(records.map((r) => r.kid)).toEqual([
            TEST_KEYS.current.kid,
            TEST_KEYS.current.kid,
            otherKeys.current.kid,
        ]);
    });

    it('names the first missing seq when records were cut off the end', () => {
        const records = chainOf(5);
        const anchor = { seq: 5, hash: records[4]!.hash };
        expect(verifyChain(records, TEST_KEYS, anchor)).toEqual({ verified: true, head: records[4]!.hash });
        expect(verifyChain(records.slice(0, 3), TEST_KEYS, anchor)).toEqual({
            verified: false,
            head: records[2]!.hash,
            brokenAt: { seq: 4, reason: 'record missing: the anchored head is seq 5, the chain ends at seq 3' },
        });
        expect(verifyChain([], TEST_KEYS, anchor).brokenAt).toMatchObject({ seq: 1 });
    });

    it('names the anchored seq when the record there is not the one anchored', () => {
        const records = chainOf(4);
        const anchor = { seq: 3, hash: 'f'.repeat(64) };
        expect(verifyChain(records, TEST_KEYS, anchor).brokenAt).toEqual({
            seq: 3,
            reason: 'hash differs from the anchored head',
        });
    });

    it('accepts an anchor behind the chain (a crash before the anchor write), still checking the later records', () => {
        const records = chainOf(4);
        expect(verifyChain(records, TEST_KEYS, { seq: 3, hash: records[2]!.hash }).verified).toBe(true);
        records[3] = { ...records[3]!, actor: 'mallory' };
        expect(verifyChain(records, TEST_KEYS, { seq: 3, hash: records[2]!.hash }).brokenAt).toEqual({
            seq: 4,
            reason: 'hash mismatch',
        });
    });
});
