import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decodeProtectedHeader, importJWK, SignJWT } from 'jose';

import { parseLinkConfig } from '../../adapters/config';
import {
    generateLinkKey,
    JoseLinkSigner,
    LINK_KEY_FILE,
    type LinkKeySet,
    linkKeySource,
    loadOrCreateLinkKeyFile,
    parseLinkKeySet,
    rotateLinkKeySet,
} from '../../adapters/links/joseLinkSigner';
import { envNameOf, LocalSettingsSecretStore } from '../../adapters/secrets/localSettingsSecretStore';
import { LinkExpiredError, LinkInvalidError } from '../../domain/errors';
import { LINK_TYP, type LinkClaims } from '../../domain/links';

const NOW = new Date('2025-06-01T12:00:00.000Z');
const T = NOW.getTime() / 1000;

function claims(over: Partial<LinkClaims> = {}): LinkClaims {
    return {
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
        ...over,
    };
}

const signerOf = (set: LinkKeySet, now = NOW, cacheMs?: number) =>
    new JoseLinkSigner(() => Promise.resolve(set), { now: () => now, ...(cacheMs !== undefined ? { cacheMs } : {}) });

/** Replaces one segment of a compact JWS. */
function withSegment(token: string, index: number, value: string): string {
    const parts = token.split('.');
    parts[index] = value;
    return parts.join('.');
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const json = (segment: string) => JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));

async function expectInvalid(p: Promise<unknown>): Promise<void> {
    await expect(p).rejects.toBeInstanceOf(LinkInvalidError);
    await expect(p).rejects.toMatchObject({ code: 'LINK_INVALID', status: 400 });
}

let set: LinkKeySet;
let signer: JoseLinkSigner;
beforeAll(async () => {
    set = { current: await generateLinkKey() };
    signer = signerOf(set);
});

describe('JoseLinkSigner', () => {
    it('round-trips the claims in an ES256 compact JWS of type mesh-approval+jwt, naming the key', async () => {
        const token = await signer.sign(claims());
        expect(token.split('.')).toHaveLength(3);
        expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', typ: LINK_TYP, kid: set.current.kid });
        await expect(signer.verify(token)).resolves.toEqual(claims());
    });

    it('refuses to sign malformed claims', async () => {
        await expect(signer.sign(claims({ run: 'other-run' }))).rejects.toBeInstanceOf(LinkInvalidError);
    });

    it('refuses a tampered payload', async () => {
        const token = await signer.sign(claims());
        const payload = json(token.split('.')[1]!);
        await expectInvalid(signer.verify(withSegment(token, 1, b64({ ...payload, d: 'reject' }))));
        await expectInvalid(signer.verify(withSegment(token, 1, b64({ ...payload, exp: payload.exp + 86_400 }))));
        await expectInvalid(signer.verify(withSegment(token, 1, b64({ ...payload, roles: ['Mesh.Admin'] }))));
    });

    it('refuses a tampered signature', async () => {
        const token = await signer.sign(claims());
        const sig = token.split('.')[2]!;
        const flipped = (sig[5] === 'A' ? 'B' : 'A') + '';
        await expectInvalid(signer.verify(withSegment(token, 2, sig.slice(0, 5) + flipped + sig.slice(6))));
        await expectInvalid(signer.verify(withSegment(token, 2, '')));
    });

    it('refuses a tampered header (another alg, another type, no kid)', async () => {
        const token = await signer.sign(claims());
        const header = json(token.split('.')[0]!);
        await expectInvalid(signer.verify(withSegment(token, 0, b64({ ...header, alg: 'none' }))));
        await expectInvalid(signer.verify(withSegment(token, 0, b64({ ...header, alg: 'HS256' }))));
        await expectInvalid(signer.verify(withSegment(token, 0, b64({ ...header, typ: 'JWT' }))));
        await expectInvalid(signer.verify(withSegment(token, 0, b64({ alg: header.alg, typ: header.typ }))));
    });

    it.each([
        ['empty', ''],
        ['one segment', 'abc'],
        ['two segments', 'abc.def'],
        ['not base64url', 'a+b.c/d.e=f'],
        ['garbage segments', 'aaaa.bbbb.cccc'],
        ['far too long', `${'a'.repeat(5000)}.b.c`],
    ])('refuses a malformed token (%s)', async (_what, token) => {
        await expectInvalid(signer.verify(token));
    });

    it('reports a genuine link past its exp as LINK_EXPIRED', async () => {
        const token = await signer.sign(claims({ iat: T - 7200, exp: T - 1 }));
        await expect(signer.verify(token)).rejects.toBeInstanceOf(LinkExpiredError);
        await expect(signer.verify(token)).rejects.toMatchObject({ code: 'LINK_EXPIRED', status: 410 });
        // exp is exclusive: at exp the link is expired.
        await expect(signerOf(set, new Date((T + 3600) * 1000)).verify(await signer.sign(claims()))).rejects.toThrow(
            LinkExpiredError,
        );
    });

    it('reports an expired link whose payload was tampered with as LINK_INVALID (signature first)', async () => {
        const token = await signer.sign(claims({ iat: T - 7200, exp: T - 1 }));
        const payload = json(token.split('.')[1]!);
        await expectInvalid(signer.verify(withSegment(token, 1, b64({ ...payload, d: 'reject' }))));
    });

    it('refuses a link signed by a key not in the set', async () => {
        const foreign = signerOf({ current: await generateLinkKey() });
        await expectInvalid(signer.verify(await foreign.sign(claims())));
    });

    it('refuses a link signed by another key that claims our kid', async () => {
        const other = await generateLinkKey();
        const forged = await new SignJWT({ ...claims() })
            .setProtectedHeader({ alg: 'ES256', typ: LINK_TYP, kid: set.current.kid! })
            .sign(await importJWK(other, 'ES256'));
        await expectInvalid(signer.verify(forged));
    });

    it('refuses a well-signed token whose claims are not a link', async () => {
        const key = await importJWK(set.current, 'ES256');
        const sign = (payload: Record<string, unknown>) =>
            new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: LINK_TYP, kid: set.current.kid! }).sign(key);
        await expectInvalid(signer.verify(await sign({ ...claims(), run: 'other' })));
        await expectInvalid(signer.verify(await sign({ ...claims(), d: 'maybe' })));
        const { jti: _jti, ...noJti } = claims();
        await expectInvalid(signer.verify(await sign(noJti)));
        const { exp: _exp, ...noExp } = claims();
        await expectInvalid(signer.verify(await sign(noExp)));
    });

    it('rotation: a link signed with the previous key verifies until it expires; an older key does not', async () => {
        const before = await signer.sign(claims());
        const rotated = await rotateLinkKeySet(set);
        expect(rotated.previous).toEqual(set.current);
        expect(rotated.current.kid).not.toBe(set.current.kid);
        const after = signerOf(rotated);
        await expect(after.verify(before)).resolves.toEqual(claims());
        const fresh = await after.sign(claims());
        expect(decodeProtectedHeader(fresh).kid).toBe(rotated.current.kid);
        await expectInvalid(signer.verify(fresh)); // the old instance does not know the new key...
        const twice = await rotateLinkKeySet(rotated);
        await expectInvalid(signerOf(twice).verify(before)); // ...and two rotations later the first key is gone
        await expect(signerOf(twice).verify(fresh)).resolves.toEqual(claims());
        await expect(signerOf(rotated, new Date((T + 3600) * 1000)).verify(before)).rejects.toThrow(LinkExpiredError);
    });

    it('reads the key set again after cacheMs, so a rotation reaches a running signer', async () => {
        let current = set;
        const live = new JoseLinkSigner(() => Promise.resolve(current), { now: () => NOW, cacheMs: 0 });
        const rotated = await rotateLinkKeySet(set);
        const token = await signerOf(rotated).sign(claims());
        await live.verify(await live.sign(claims()));
        current = rotated;
        await new Promise((r) => setTimeout(r, 2));
        await expect(live.verify(token)).resolves.toEqual(claims());
        expect(decodeProtectedHeader(await live.sign(claims())).kid).toBe(rotated.current.kid);
    });

    it('does not keep a failed key read: the next call tries again', async () => {
        let fail = true;
        const flaky = new JoseLinkSigner(
            () => (fail ? Promise.reject(new Error('vault down')) : Promise.resolve(set)),
            {
                now: () => NOW,
            },
        );
        await expect(flaky.sign(claims())).rejects.toThrow('vault down');
        fail = false;
        await expect(flaky.verify(await flaky.sign(claims()))).resolves.toEqual(claims());
    });
});

describe('link key sets', () => {
    let dir: string;
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'mesh-link-keys-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('generates EC P-256 private keys whose kid is the public thumbprint', async () => {
        const k = await generateLinkKey();
        expect(k).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
        expect(typeof k.d).toBe('string');
        expect(k.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    });

    it('creates <keysDir>/link-keys.json once (mode 0600), and concurrent loaders agree', async () => {
        const keysDir = join(dir, 'keys');
        const loaded = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateLinkKeyFile(keysDir)));
        const kids = new Set(loaded.map((s) => s.current.kid));
        expect(kids.size).toBe(1);
        const file = join(keysDir, LINK_KEY_FILE);
        expect(statSync(file).mode & 0o777).toBe(0o600);
        expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(loaded[0]);
        expect((await loadOrCreateLinkKeyFile(keysDir)).current.kid).toBe(loaded[0]!.current.kid);
    });

    it('never replaces a broken key file', async () => {
        const file = join(dir, LINK_KEY_FILE);
        writeFileSync(file, '{"current": 1}');
        await expect(loadOrCreateLinkKeyFile(dir)).rejects.toThrow(/is not an approval-link key set/);
        expect(readFileSync(file, 'utf8')).toBe('{"current": 1}');
    });

    it('checks a key set and never quotes it', async () => {
        const k = await generateLinkKey();
        expect(parseLinkKeySet(JSON.stringify({ current: k }), 'x')).toEqual({ current: k });
        const bad = [
            'not json',
            '{}',
            JSON.stringify({ current: { ...k, kid: undefined } }),
            JSON.stringify({ current: { ...k, d: undefined } }),
            JSON.stringify({ current: { ...k, crv: 'P-384' } }),
            JSON.stringify({ current: k, previous: k }),
            JSON.stringify({ current: { kty: 'RSA', n: 'x', e: 'AQAB', d: 'y', kid: 'r' } }),
        ];
        for (const text of bad) {
            expect(() => parseLinkKeySet(text, 'secret')).toThrow(/^secret is not an approval-link key set/);
            try {
                parseLinkKeySet(text, 'secret');
            } catch (e: unknown) {
                expect((e as Error).message).not.toContain(k.d!);
            }
        }
    });

    it('takes the key set from the secret first, else from the key file; with neither it fails loudly', async () => {
        const secretSet: LinkKeySet = { current: await generateLinkKey() };
        const withSecret = new LocalSettingsSecretStore({ MESH_LINK_KEYS: JSON.stringify(secretSet) });
        await expect(linkKeySource(withSecret, { keysSecret: 'mesh-link-keys', keysDir: dir })()).resolves.toEqual(
            secretSet,
        );
        const none = new LocalSettingsSecretStore({});
        const fromFile = await linkKeySource(none, { keysSecret: 'mesh-link-keys', keysDir: dir })();
        expect(fromFile).toEqual(JSON.parse(readFileSync(join(dir, LINK_KEY_FILE), 'utf8')));
        await expect(linkKeySource(none, { keysSecret: 'mesh-link-keys', keysDir: undefined })()).rejects.toThrow(
            "No approval-link signing keys: set the secret 'mesh-link-keys'.",
        );
    });

    it('config: MESH_KEYS_DIR, else .mesh-data/keys on the embedded store, else none (Azure needs the secret)', () => {
        expect(parseLinkConfig({ MESH_KEYS_DIR: '/k' }, '/w')).toMatchObject({
            keysDir: '/k',
            keysSecret: 'mesh-link-keys',
            settingsFile: '/w/local.settings.json',
        });
        expect(parseLinkConfig({}, '/w').keysDir).toBe('/w/.mesh-data/keys');
        expect(parseLinkConfig({ MESH_STORE: 'cosmos' }, '/w').keysDir).toBeUndefined();
        expect(parseLinkConfig({ MESH_LINK_KEYS_SECRET: 'links-v2' }, '/w').keysSecret).toBe('links-v2');
    });
});

describe('LocalSettingsSecretStore', () => {
    let dir: string;
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'mesh-secrets-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('maps Key Vault secret names to environment names', () => {
        expect(envNameOf('mesh-link-keys')).toBe('MESH_LINK_KEYS');
    });

    it('reads the environment (exact name, then env spelling), then local.settings.json Values', async () => {
        const file = join(dir, 'local.settings.json');
        writeFileSync(file, JSON.stringify({ IsEncrypted: false, Values: { 'from-file': 'f', BLANK: 'x', N: 5 } }));
        const store = new LocalSettingsSecretStore({ 'exact-name': 'e', MESH_LINK_KEYS: 'm', BLANK: '  ' }, file);
        await expect(store.get('exact-name')).resolves.toBe('e');
        await expect(store.get('mesh-link-keys')).resolves.toBe('m');
        await expect(store.get('from-file')).resolves.toBe('f');
        await expect(store.get('BLANK')).resolves.toBe('x'); // a blank env value does not hide the file's
        await expect(store.get('N')).resolves.toBeUndefined(); // only strings are secrets
        await expect(store.get('nothing')).resolves.toBeUndefined();
    });

    it('treats a missing settings file as empty and a broken one as an error that quotes nothing', async () => {
        await expect(new LocalSettingsSecretStore({}, join(dir, 'absent.json')).get('x')).resolves.toBeUndefined();
        const file = join(dir, 'local.settings.json');
        writeFileSync(file, '{"Values": {"S": "hunter2"');
        await expect(new LocalSettingsSecretStore({}, file).get('S')).rejects.toThrow(/is not valid JSON$/);
    });
});
