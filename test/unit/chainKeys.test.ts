import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
    AUDIT_KEY_FILE,
    cachedChainKeys,
    chainKeySource,
    newAuditKeyRingText,
    ringFor,
} from '../../adapters/audit/chainKeys';
import { parseAuditChainConfig } from '../../adapters/audit/config';
import { rotateKeyRing } from '../../adapters/crypto/keyRing';
import { chainNext, verifyChain } from '../../domain/audit';
import type { SecretStore } from '../../domain/ports';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'mesh-chain-keys-'));
    dirs.push(d);
    return d;
};
const secrets = (values: Record<string, string>): SecretStore => ({ get: (name) => Promise.resolve(values[name]) });
const event = {
    eventId: 'e1',
    runId: 'r1',
    type: 'pipeline.queued',
    at: '2024-01-01T00:00:00Z',
    actor: 'a',
    correlationID: 'c',
} as const;

describe('audit chain keys', () => {
    it('creates a private key file in MESH_KEYS_DIR when no secret holds the ring, and reads the same one again', async () => {
        const dir = join(tempDir(), 'keys');
        const source = chainKeySource(secrets({}), { keysSecret: 'mesh-audit-keys', keysDir: dir });
        const a = await source();
        const b = await source();
        expect(statSync(join(dir, AUDIT_KEY_FILE)).mode & 0o777).toBe(0o600);
        expect(a.current.kid).toMatch(/^ak-\d{8}-[0-9a-f]{8}$/);
        expect(b.current.mac('x')).toBe(a.current.mac('x'));
        expect(readFileSync(join(dir, AUDIT_KEY_FILE), 'utf8')).not.toContain(a.current.mac('x'));
    });

    it('prefers the secret, and fails loudly without secret or key directory', async () => {
        const text = newAuditKeyRingText();
        const kid = (JSON.parse(text) as { current: string }).current;
        const ring = await chainKeySource(secrets({ 'mesh-audit-keys': text }), {
            keysSecret: 'mesh-audit-keys',
            keysDir: tempDir(),
        })();
        expect(ring.current.kid).toBe(kid);
        await expect(
            chainKeySource(secrets({}), { keysSecret: 'mesh-audit-keys', keysDir: undefined })(),
        ).rejects.toThrow("No audit chain keys: set the secret 'mesh-audit-keys'.");
        await expect(
            chainKeySource(secrets({ 'mesh-audit-keys': 'nope' }), {
                keysSecret: 'mesh-audit-keys',
                keysDir: undefined,
            })(),
        ).rejects.toThrow(/secret 'mesh-audit-keys'/);
    });

    it('rotates: records keyed before verify with the rotated ring, which a verifier reads again for an unknown kid', async () => {
        let stored = JSON.parse(newAuditKeyRingText()) as { current: string; keys: Record<string, string> };
        let reads = 0;
        let t = 0;
        const keys = cachedChainKeys(
            () => {
                reads++;
                return chainKeySource(secrets({ k: JSON.stringify(stored) }), {
                    keysSecret: 'k',
                    keysDir: undefined,
                })();
            },
            { now: () => t },
        );
        const old = chainNext(undefined, event, (await keys()).current);
        stored = rotateKeyRing(stored, { kid: 'ak-rotated' });
        // Another instance keyed with the new key; this one still caches the old ring.
        const rotated = await chainKeySource(secrets({ k: JSON.stringify(stored) }), {
            keysSecret: 'k',
            keysDir: undefined,
        })();
        const next = chainNext(old, { ...event, eventId: 'e2' }, rotated.current);
        t = 31_000;
        const ring = await ringFor(keys, [old.kid, next.kid]);
        expect(reads).toBe(2);
        expect(verifyChain([old, next], ring)).toEqual({ verified: true, head: next.hash });
    });

    it('anchors locally in MESH_KEYS_DIR by default, on a blob container when configured', () => {
        expect(parseAuditChainConfig({ MESH_KEYS_DIR: '/k' }, '/w').anchor).toEqual({ kind: 'file', dir: '/k' });
        expect(parseAuditChainConfig({ MESH_KEYS_DIR: '/k', MESH_AUDIT_ANCHOR_DIR: 'a' }, '/w').anchor).toEqual({
            kind: 'file',
            dir: '/w/a',
        });
        expect(
            parseAuditChainConfig({ MESH_AUDIT_ANCHOR_CONTAINER_URL: 'https://x.blob.core.windows.net/audit-anchors' })
                .anchor,
        ).toEqual({ kind: 'blob', containerUrl: 'https://x.blob.core.windows.net/audit-anchors' });
        expect(() => parseAuditChainConfig({ MESH_AUDIT_ANCHOR_CONTAINER_URL: 'http://x.example/c' })).toThrow(/https/);
        expect(parseAuditChainConfig({ MESH_STORE: 'cosmos', COSMOS_ENDPOINT: 'https://c' }).anchor).toEqual({
            kind: 'none',
        });
        expect(parseAuditChainConfig({}).keysSecret).toBe('mesh-audit-keys');
        expect(parseAuditChainConfig({ MESH_AUDIT_KEYS_SECRET: 'other' }).keysSecret).toBe('other');
    });
});
