import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { keyMatches, loadOrCreateHostKeys } from '../../local/hostKeys';

const dir = (): string => mkdtempSync(join(tmpdir(), 'mesh-hostkeys-'));

it('creates one pair of keys (0600), the same for concurrent callers', async () => {
    const keysDir = join(dir(), 'keys');
    const all = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateHostKeys(keysDir)));
    expect(new Set(all.map((k) => `${k.functionKey}/${k.masterKey}`)).size).toBe(1);
    expect(all[0]!.functionKey).not.toBe(all[0]!.masterKey);
    expect(statSync(join(keysDir, 'host-keys.json')).mode & 0o777).toBe(0o600);
    expect(await loadOrCreateHostKeys(keysDir)).toEqual(all[0]);
});

it('takes over an old data-dir file: keeps its function key, adds a master key, deletes it', async () => {
    const dataDir = dir();
    const old = 'A'.repeat(43);
    writeFileSync(join(dataDir, 'host-keys.json'), JSON.stringify({ functionKey: old }));
    const keys = await loadOrCreateHostKeys(join(dataDir, 'keys'), dataDir);
    expect(keys.functionKey).toBe(old);
    expect(keys.masterKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(() => statSync(join(dataDir, 'host-keys.json'))).toThrow();
});

it('refuses a broken key file instead of replacing it', async () => {
    const keysDir = dir();
    writeFileSync(join(keysDir, 'host-keys.json'), '{"functionKey":"short"}');
    await expect(loadOrCreateHostKeys(keysDir)).rejects.toThrow(/delete it to create new keys/);
});

it('compares keys exactly', () => {
    expect(keyMatches('abc', 'abc')).toBe(true);
    expect(keyMatches('abc', 'abd')).toBe(false);
    expect(keyMatches('abc', 'abcd')).toBe(false);
    expect(keyMatches('abc', '')).toBe(false);
    expect(keyMatches('abc', null)).toBe(false);
});
