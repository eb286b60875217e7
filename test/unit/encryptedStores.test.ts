import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { parseCryptoConfig } from '../../adapters/crypto/config';
import { encryptedAuditLog, encryptedRunStore, openAuditDetails } from '../../adapters/crypto/encryptedStores';
import { FieldCipher, FieldCipherError, isSealed, type SealedValue } from '../../adapters/crypto/fieldCipher';
import {
    cachedCipher,
    DATA_KEY_FILE,
    type KeyRingDoc,
    keyRingOf,
    keyRingSource,
    loadOrCreateDataKeyFile,
    newKid,
    parseKeyRing,
    rotateKeyRing,
} from '../../adapters/crypto/keyRing';
import { type EmbeddedStores, openEmbeddedStores } from '../../adapters/embedded/sqliteStores';
import { LocalSettingsSecretStore } from '../../adapters/secrets/localSettingsSecretStore';
import { type AuditRecord, maskPiiText, verifyChain } from '../../domain/audit';
import type { AuditLog, RunStore } from '../../domain/ports';
import type { CheckpointDecisionRecord, RunDoc } from '../../domain/run';
import { collect, describeStoreContract, makeEvent, makeRun } from '../contract/storeContract';
import { TEST_KEYS } from '../support/chainKeys';
import { openCheckpoint } from '../support/linkFixtures';

const INPUT = { prompt: 'PLAINTEXT-INPUT launch plan for project nightingale' };
const OUTPUT = { answer: 'PLAINTEXT-OUTPUT the plan is approved' };
const STAGE_OUTPUT = { output: { draft: 'PLAINTEXT-STAGE draft one' }, continue: true };
const DECISION_COMMENT = 'PLAINTEXT-DECISION looks good, ship it';
const AUDIT_COMMENT = 'PLAINTEXT-AUDIT call me on +1 425-555-0100 or ava@example.com';
const CP = 'run-a.1.taste.before.0';

function ringDoc(...kids: string[]): KeyRingDoc {
    return {
        current: kids[kids.length - 1]!,
        keys: Object.fromEntries(kids.map((k) => [k, randomBytes(32).toString('base64')])),
    };
}

const dirs: string[] = [];
function tempDir(prefix = 'mesh-enc-'): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
}
afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The raw rows, read straight from the SQLite file. */
function rawRows(dir: string): { runs: string[]; outputs: string[]; audit: string[] } {
    const db = new Database(join(dir, 'app.sqlite'), { readonly: true });
    try {
        const col = <T>(sql: string, name: keyof T & string) =>
            db
                .prepare<[], T>(sql)
                .all()
                .map((r) => String(r[name]));
        return {
            runs: col<{ doc: string }>('SELECT doc FROM runs', 'doc'),
            outputs: col<{ value: string }>('SELECT value FROM run_outputs', 'value'),
            audit: col<{ record: string }>('SELECT record FROM audit ORDER BY run_id, seq', 'record'),
        };
    } finally {
        db.close();
    }
}

function decision(over: Partial<CheckpointDecisionRecord> = {}): CheckpointDecisionRecord {
    return {
        actorId: 'ava',
        decision: 'approve',
        comment: DECISION_COMMENT,
        channel: 'api',
        at: '2025-03-01T11:00:00.000Z',
        ...over,
    };
}

function decidedRun(run: RunDoc): RunDoc {
    return {
        ...run,
        status: 'Completed',
        output: OUTPUT,
        checkpoints: [openCheckpoint({ checkpointId: CP, status: 'Approved', decisions: [decision()] })],
    };
}

describe('encrypted stores over embedded SQLite', () => {
    let dir: string;
    let stores: EmbeddedStores;
    let cipher: FieldCipher;
    let runs: RunStore;
    let audit: AuditLog;

    beforeEach(() => {
        dir = tempDir();
        stores = openEmbeddedStores(dir);
        cipher = new FieldCipher(keyRingOf(ringDoc('k1'), 'test ring'));
        runs = encryptedRunStore(stores.runs, cipher);
        audit = encryptedAuditLog(stores.audit, cipher);
    });
    afterEach(() => stores.close());

    async function writeEverything(): Promise<void> {
        const created = await runs.create(makeRun('run-a', { input: INPUT }));
        expect(created.run.input).toEqual(INPUT);
        await runs.putOutput('run-a', '1.generation', STAGE_OUTPUT);
        await runs.update('run-a', decidedRun);
        await audit.append(makeEvent('run-a', 1));
        await audit.append(
            makeEvent('run-a', 2, {
                type: 'checkpoint.decided',
                actor: 'ava',
                checkpointId: CP,
                details: { decision: 'approve', comment: AUDIT_COMMENT },
            }),
        );
        await audit.append(makeEvent('run-a', 3, { type: 'pipeline.completed' }));
    }

    it('stores no plaintext of the input, outputs or comments', async () => {
        await writeEverything();
        const raw = rawRows(dir);
        expect(raw.runs).toHaveLength(1);
        expect(raw.outputs).toHaveLength(1);
        expect(raw.audit).toHaveLength(3);
        const everything = [...raw.runs, ...raw.outputs, ...raw.audit].join('\n');
        for (const secret of ['PLAINTEXT', 'nightingale', 'ship it', '425-555', 'example.com'])
            expect(everything).not.toContain(secret);
        const doc = JSON.parse(raw.runs[0]!) as RunDoc;
        expect(isSealed(doc.input)).toBe(true);
        expect(isSealed(doc.output)).toBe(true);
        expect(isSealed(doc.checkpoints[0]!.decisions[0]!.comment)).toBe(true);
        expect(isSealed(JSON.parse(raw.outputs[0]!))).toBe(true);
        const decided = JSON.parse(raw.audit[1]!) as AuditRecord;
        expect(isSealed(decided.details!.comment)).toBe(true);
        // Only the comment is sealed; the rest of the record stays readable (and queryable).
        expect(decided.details!.decision).toBe('approve');
        expect(doc.metadata.team).toBe('alpha');
    });

    it('reads plaintext back through every read', async () => {
        await writeEverything();
        const expected = decidedRun(makeRun('run-a', { input: INPUT }));
        const got = await runs.get('run-a');
        expect(got).toMatchObject({ input: INPUT, output: OUTPUT, checkpoints: expected.checkpoints });
        expect((await runs.list({}, 10)).items[0]).toMatchObject({ input: INPUT, output: OUTPUT });
        expect((await runs.changesSince(undefined, 10)).runs[0]).toMatchObject({ input: INPUT, output: OUTPUT });
        expect(await runs.getOutput('run-a', '1.generation')).toEqual(STAGE_OUTPUT);
        expect(await runs.getOutput('run-a', 'missing')).toBeUndefined();
        const updated = await runs.update('run-a', (r) => ({ ...r, updatedAt: '2025-03-02T00:00:00.000Z' }));
        expect(updated).toMatchObject({ input: INPUT, output: OUTPUT, checkpoints: expected.checkpoints });
    });

    it('hands mutate plaintext, and keeps the sealed form of what it left unchanged', async () => {
        await writeEverything();
        const before = JSON.parse(rawRows(dir).runs[0]!) as RunDoc;
        let seen: RunDoc | undefined;
        await runs.update('run-a', (r) => {
            seen = r;
            return { ...r, output: { answer: 'revised' } };
        });
        expect(seen).toMatchObject({ input: INPUT, output: OUTPUT });
        const after = JSON.parse(rawRows(dir).runs[0]!) as RunDoc;
        expect(after.input).toEqual(before.input);
        expect(after.checkpoints).toEqual(before.checkpoints);
        expect(after.output).not.toEqual(before.output);
        expect(isSealed(after.output)).toBe(true);
        expect((await runs.get('run-a'))!.output).toEqual({ answer: 'revised' });
        // mutate returning undefined changes nothing and still answers with plaintext.
        expect(await runs.update('run-a', () => undefined)).toMatchObject({ input: INPUT });
    });

    it('verifies the audit chain as stored, with no key, and opens the comment for display only', async () => {
        await writeEverything();
        const stored = await collect(audit.all('run-a'));
        expect(verifyChain(stored, TEST_KEYS)).toMatchObject({ verified: true });
        // The same records straight from the file verify too: verification needs neither key nor decorator.
        expect(
            verifyChain(
                rawRows(dir).audit.map((r) => JSON.parse(r) as AuditRecord),
                TEST_KEYS,
            ),
        ).toMatchObject({
            verified: true,
        });
        expect(isSealed(stored[1]!.details!.comment)).toBe(true);
        expect((await audit.latest('run-a', 1))[0]!.seq).toBe(3);
        expect((await audit.list('run-a', 10)).items).toEqual(stored);

        const shown = await openAuditDetails(stored[1]!, cipher);
        // PII is masked before sealing, as the store masks every detail it is given.
        expect(shown.details).toEqual({ decision: 'approve', comment: maskPiiText(AUDIT_COMMENT) });
        expect(shown.details!.comment).toContain('a***@example.com');
        expect(stored[1]!.details!.comment).not.toEqual(shown.details!.comment);
        expect(await openAuditDetails(stored[0]!, cipher)).toBe(stored[0]);
        // The display copy is not what was hashed.
        expect(verifyChain([stored[0]!, shown, stored[2]!], TEST_KEYS).verified).toBe(false);
    });

    it('seals what a person typed as a reason (a decision, rejection, pause, resume or abort), and no other reason', async () => {
        const words = 'too risky, ring me on +44 20 7946 0958';
        await audit.append(makeEvent('run-r', 1, { type: 'checkpoint.decided', checkpointId: CP, reason: words }));
        await audit.append(makeEvent('run-r', 2, { type: 'pipeline.rejected', checkpointId: CP, reason: words }));
        await audit.append(makeEvent('run-r', 3, { type: 'pipeline.paused', reason: 'maintenance window' }));
        await audit.append(makeEvent('run-r', 4, { type: 'pipeline.resumed', reason: 'window closed' }));
        await audit.append(makeEvent('run-r', 5, { type: 'pipeline.aborted', reason: 'runaway costs' }));
        await audit.append(makeEvent('run-r', 6, { type: 'pipeline.failed', reason: 'engine unreachable' }));
        const raw = rawRows(dir).audit.join('\n');
        for (const typed of ['too risky', 'maintenance window', 'window closed', 'runaway costs'])
            expect(raw).not.toContain(typed);
        expect(raw).toContain('engine unreachable');
        const stored = await collect(audit.all('run-r'));
        expect(verifyChain(stored, TEST_KEYS).verified).toBe(true);
        expect(stored.slice(0, 5).map((r) => r.reason)).toEqual(Array(5).fill(expect.stringMatching(/^sealed:/)));
        const shown = await Promise.all(stored.map((r) => openAuditDetails(r, cipher)));
        expect(shown.map((r) => r.reason)).toEqual([
            words,
            words,
            'maintenance window',
            'window closed',
            'runaway costs',
            'engine unreachable',
        ]);
        // Bound to its record: the sealed reason of one record does not open as another's.
        const moved = { ...stored[1]!, reason: stored[0]!.reason };
        await expect(openAuditDetails(moved, cipher)).rejects.toThrow(/authentication/);
    });

    it('seals info requests and their answers (issue 11) in the run and the answer in the audit, and reads them back', async () => {
        const asked = 'PLAINTEXT-ASK which dataset is this?';
        const answered = 'PLAINTEXT-ANSWER the anonymised Q3 export';
        await runs.create(makeRun('run-i'));
        const checkpoint = openCheckpoint({
            checkpointId: CP.replace('run-a', 'run-i'),
            decisions: [decision({ decision: 'request_info', comment: asked })],
            infoRequest: { by: 'ava', at: '2025-03-01T11:00:00.000Z', comment: asked },
            infoAnswers: [{ by: 'dana', at: '2025-03-01T12:00:00.000Z', comment: answered }],
        });
        const written = await runs.update('run-i', (r) => ({ ...r, checkpoints: [checkpoint] }));
        expect(written.checkpoints[0]).toEqual(checkpoint);
        await audit.append(
            makeEvent('run-i', 1, {
                type: 'checkpoint.info_provided',
                checkpointId: checkpoint.checkpointId,
                reason: answered,
            }),
        );
        const raw = rawRows(dir);
        expect([...raw.runs, ...raw.audit].join('\n')).not.toContain('PLAINTEXT');
        const doc = JSON.parse(raw.runs[0]!) as RunDoc;
        expect(isSealed(doc.checkpoints[0]!.infoRequest!.comment)).toBe(true);
        expect(isSealed(doc.checkpoints[0]!.infoAnswers![0]!.comment)).toBe(true);
        expect((await runs.get('run-i'))!.checkpoints[0]).toEqual(checkpoint);
        const stored = await collect(audit.all('run-i'));
        expect(verifyChain(stored, TEST_KEYS).verified).toBe(true);
        expect((await openAuditDetails(stored[0]!, cipher)).reason).toBe(answered);
        // Bound to its place: an answer's sealed words do not open as the request's.
        const moved = {
            ...doc.checkpoints[0]!,
            infoRequest: { ...doc.checkpoints[0]!.infoRequest!, comment: doc.checkpoints[0]!.infoAnswers![0]!.comment },
        };
        await expect(
            (async () => {
                await stores.runs.update('run-i', (r) => ({ ...r, checkpoints: [moved] }));
                return runs.get('run-i');
            })(),
        ).rejects.toThrow(/authentication/);
    });

    it("seals a paused run's pause reason, and reads it back", async () => {
        await runs.create(makeRun('run-p'));
        const pause = {
            pauseId: 'p1',
            actor: 'olly',
            reason: 'hold: call olly@example.com',
            at: 'now',
            correlationID: 'c',
        };
        const paused = await runs.update('run-p', (r) => ({ ...r, status: 'Paused', pause }));
        expect(paused.pause).toEqual(pause);
        expect(rawRows(dir).runs.join('\n')).not.toContain('hold:');
        const doc = JSON.parse(rawRows(dir).runs[0]!) as RunDoc;
        expect(isSealed(doc.pause!.reason)).toBe(true);
        expect((await runs.get('run-p'))!.pause).toEqual(pause);
    });

    it('appends idempotently by eventId: a retry returns the stored record', async () => {
        const event = makeEvent('run-a', 1, { details: { comment: 'first words' } });
        const first = await audit.append(event);
        const again = await audit.append(event);
        expect(again).toEqual(first);
        expect(rawRows(dir).audit).toHaveLength(1);
        expect((await openAuditDetails(again, cipher)).details!.comment).toBe('first words');
    });

    it('never stores an audit comment in a form the PII masking of the store would alter', async () => {
        // parseKeyRing refuses such kids; a ring built around it shows why: the sealed comment could not open again.
        const key = keyRingOf(ringDoc('k1'), 'r').keys.get('k1')!;
        const phoneKid = new FieldCipher({ current: '425-555-0100', keys: new Map([['425-555-0100', key]]) });
        const log = encryptedAuditLog(stores.audit, phoneKid);
        await expect(log.append(makeEvent('run-a', 1, { details: { comment: 'c' } }))).rejects.toThrow(
            /in a form PII masking leaves intact/,
        );
        expect(rawRows(dir).audit).toHaveLength(0);
    });

    it('refuses a value moved to another run or record', async () => {
        await writeEverything();
        const raw = JSON.parse(rawRows(dir).runs[0]!) as RunDoc;
        await stores.runs.create(makeRun('run-b', { input: raw.input }));
        const e = await runs.get('run-b').catch((x: unknown) => x);
        expect(e).toBeInstanceOf(FieldCipherError);
        expect((e as FieldCipherError).code).toBe('AUTH_FAILED');
        expect(() => cipher.open(raw.input as SealedValue, { runId: 'run-b', field: 'input' })).toThrow(
            FieldCipherError,
        );
        // A stage output moved to another key of the same run fails too.
        await stores.runs.putOutput('run-a', '1.filtering', await stores.runs.getOutput('run-a', '1.generation'));
        await expect(runs.getOutput('run-a', '1.filtering')).rejects.toThrow(/authentication failed/);
        // So does an audit comment copied into another record.
        const [, decided] = await collect(audit.all('run-a'));
        await stores.audit.append(makeEvent('run-b', 1, { details: { comment: decided!.details!.comment } }));
        const [moved] = await collect(audit.all('run-b'));
        await expect(openAuditDetails(moved!, cipher)).rejects.toThrow(FieldCipherError);
    });

    it('reads plaintext written before encryption was on, and seals it on the next write', async () => {
        await stores.runs.create(decidedRun(makeRun('legacy', { input: INPUT })));
        await stores.runs.putOutput('legacy', '1.generation', STAGE_OUTPUT);
        await stores.audit.append(makeEvent('legacy', 1, { details: { comment: 'old comment' } }));
        expect(await runs.get('legacy')).toMatchObject({ input: INPUT, output: OUTPUT });
        expect(await runs.getOutput('legacy', '1.generation')).toEqual(STAGE_OUTPUT);
        const [record] = await collect(audit.all('legacy'));
        expect(await openAuditDetails(record!, cipher)).toBe(record);
        await runs.update('legacy', (r) => ({ ...r, updatedAt: '2025-03-02T00:00:00.000Z' }));
        const doc = JSON.parse(rawRows(dir).runs[0]!) as RunDoc;
        expect(isSealed(doc.input)).toBe(true);
        expect(isSealed(doc.checkpoints[0]!.decisions[0]!.comment)).toBe(true);
    });

    it('passes values already sealed for their place through, and seals look-alikes as data', async () => {
        const sealed = cipher.seal(INPUT, { runId: 'run-s', field: 'input' });
        await runs.create(makeRun('run-s', { input: sealed }));
        expect((JSON.parse(rawRows(dir).runs[0]!) as RunDoc).input).toEqual(sealed);
        expect((await runs.get('run-s'))!.input).toEqual(INPUT);
        // User input shaped like a sealed value (or one sealed for elsewhere) is sealed like any other input.
        const lookalike = { ...cipher.seal('x', { runId: 'other', field: 'input' }) };
        await runs.create(makeRun('run-l', { input: lookalike }));
        expect((await runs.get('run-l'))!.input).toEqual(lookalike);
    });

    it('reads the ring again once when a value names a kid it lacks (another instance rotated first)', async () => {
        const old = ringDoc('k1');
        const rotated = rotateKeyRing(old, { kid: 'k2' });
        let current = old;
        let loads = 0;
        let clock = 0;
        const loader = cachedCipher(
            () => {
                loads++;
                return Promise.resolve(keyRingOf(current, 'ring'));
            },
            { now: () => clock },
        );
        const stale = encryptedRunStore(stores.runs, loader);
        await stale.create(makeRun('run-0'));
        expect(loads).toBe(1);
        const writer = encryptedRunStore(stores.runs, new FieldCipher(keyRingOf(rotated, 'ring')));
        await writer.create(makeRun('run-r', { input: INPUT }));
        current = rotated;
        clock = 31_000;
        expect((await stale.get('run-r'))!.input).toEqual(INPUT);
        expect(loads).toBe(2);
        // Refreshes are rate-limited: an unknown kid within 30 s of the last load fails without another read.
        current = old;
        clock = 400_000; // past the cache time: the next read loads the (old) ring again
        await expect(stale.get('run-r')).rejects.toThrow(/key id 'k2'/);
        expect(loads).toBe(3);
    });
});

describeStoreContract('encrypted decorators over embedded SQLite', () => {
    const s = openEmbeddedStores(tempDir());
    const cipher = new FieldCipher(keyRingOf(ringDoc('k1'), 'test ring'));
    return Promise.resolve({
        runs: encryptedRunStore(s.runs, cipher),
        audit: encryptedAuditLog(s.audit, cipher),
        policies: s.policies,
        close: () => s.close(),
    });
});

describe('data key ring', () => {
    let dir: string;
    beforeEach(() => {
        dir = tempDir('mesh-data-keys-');
    });

    it('creates <keysDir>/data-keys.json once (mode 0600), and concurrent loaders agree', async () => {
        const keysDir = join(dir, 'keys');
        const loaded = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateDataKeyFile(keysDir)));
        expect(new Set(loaded.map((r) => r.current)).size).toBe(1);
        const file = join(keysDir, DATA_KEY_FILE);
        expect(statSync(file).mode & 0o777).toBe(0o600);
        expect(statSync(keysDir).mode & 0o777).toBe(0o700);
        const doc = JSON.parse(readFileSync(file, 'utf8')) as KeyRingDoc;
        expect(doc.current).toBe(loaded[0]!.current);
        expect(Object.keys(doc.keys)).toEqual([doc.current]);
        const text = readFileSync(file, 'utf8');
        const again = await loadOrCreateDataKeyFile(keysDir);
        expect(again.current).toBe(doc.current);
        expect(readFileSync(file, 'utf8')).toBe(text);
        // What one load sealed, another opens: the key is the file's.
        const sealed = new FieldCipher(loaded[0]!).seal('x', { runId: 'r', field: 'input' });
        expect(new FieldCipher(again).open(sealed, { runId: 'r', field: 'input' })).toBe('x');
    });

    it('never replaces a broken key file', async () => {
        const file = join(dir, DATA_KEY_FILE);
        writeFileSync(file, '{"current": "k1", "keys": {}}');
        await expect(loadOrCreateDataKeyFile(dir)).rejects.toThrow(/is not a data key ring/);
        expect(readFileSync(file, 'utf8')).toBe('{"current": "k1", "keys": {}}');
    });

    it('checks a ring, names each problem and never quotes a key', () => {
        const good = ringDoc('k1', 'k2');
        expect(parseKeyRing(JSON.stringify(good), 'x').current).toBe('k2');
        const key = good.keys.k1!;
        const short = randomBytes(31).toString('base64');
        const long = randomBytes(33).toString('base64');
        const cases: [string, RegExp][] = [
            ['not json', /^secret is not a data key ring/],
            ['[]', /^secret is not a data key ring/],
            [JSON.stringify({ current: 'k1' }), /^secret is not a data key ring/],
            [JSON.stringify({ current: 'k1', keys: {} }), /holds no keys/],
            [JSON.stringify({ keys: { k1: key } }), /"current" names no key id/],
            [JSON.stringify({ current: 'k9', keys: { k1: key } }), /"current" names a key id the ring does not hold/],
            [JSON.stringify({ current: 'k1', keys: { k1: short } }), /key 'k1' is not the base64 of exactly 32 bytes/],
            [JSON.stringify({ current: 'k1', keys: { k1: long } }), /key 'k1' is not the base64 of exactly 32 bytes/],
            [JSON.stringify({ current: 'k1', keys: { k1: 42 } }), /key 'k1' is not the base64/],
            [JSON.stringify({ current: 'k1', keys: { k1: `${key}!` } }), /key 'k1' is not the base64/],
            // Key and kid swapped: the "kid" is key material, so it is not quoted.
            [JSON.stringify({ current: 'k1', keys: { k1: key, [key]: 'k2' } }), /key #2's id is not/],
            [JSON.stringify({ current: 'k1', keys: { k1: key, '425-555-0100': key } }), /key #2's id is not/],
            [JSON.stringify({ current: 'k1', keys: { k1: key, [key.replace(/=$/, '')]: key } }), /key #2's id/],
        ];
        for (const [text, message] of cases) {
            let error: Error | undefined;
            try {
                parseKeyRing(text, 'secret');
            } catch (e: unknown) {
                error = e as Error;
            }
            expect(error?.message).toMatch(message);
            for (const k of [key, short, long]) expect(error?.message).not.toContain(k);
        }
    });

    it('rotates: a new current key, every old key kept', () => {
        const doc = ringDoc('k1');
        const once = rotateKeyRing(doc);
        const twice = rotateKeyRing(once);
        expect(Object.keys(twice.keys)).toEqual(['k1', once.current, twice.current]);
        expect(twice.keys.k1).toBe(doc.keys.k1);
        expect(twice.keys[once.current]).toBe(once.keys[once.current]);
        expect(new Set(Object.values(twice.keys)).size).toBe(3);
        expect(() => rotateKeyRing(doc, { kid: 'k1' })).toThrow("The ring already holds key id 'k1'.");
        expect(newKid(new Date('2025-06-01T12:00:00Z'))).toMatch(/^dk-20250601-[0-9a-f]{8}$/);
    });

    it('takes the ring from the secret first, else from the key file; with neither it fails loudly', async () => {
        const doc = ringDoc('from-secret');
        const withSecret = new LocalSettingsSecretStore({ MESH_DATA_KEYS: JSON.stringify(doc) });
        const cfg = { keysSecret: 'mesh-data-keys', keysDir: dir };
        expect((await keyRingSource(withSecret, cfg)()).current).toBe('from-secret');
        const none = new LocalSettingsSecretStore({});
        const fromFile = await keyRingSource(none, cfg)();
        expect(fromFile.current).toBe(
            (JSON.parse(readFileSync(join(dir, DATA_KEY_FILE), 'utf8')) as KeyRingDoc).current,
        );
        await expect(keyRingSource(none, { ...cfg, keysDir: undefined })()).rejects.toThrow(
            "No data encryption keys: set the secret 'mesh-data-keys'.",
        );
        const broken = new LocalSettingsSecretStore({ MESH_DATA_KEYS: '{"current":"k1"}' });
        await expect(keyRingSource(broken, cfg)()).rejects.toThrow(/^secret 'mesh-data-keys' is not a data key ring/);
    });

    it('caches the cipher, reloading after the cache time; a failed load is not kept', async () => {
        let clock = 0;
        let fail = true;
        let loads = 0;
        const loader = cachedCipher(
            () => {
                loads++;
                return fail ? Promise.reject(new Error('vault down')) : Promise.resolve(keyRingOf(ringDoc('k1'), 'r'));
            },
            { now: () => clock, cacheMs: 1000 },
        );
        await expect(loader()).rejects.toThrow('vault down');
        fail = false;
        const first = await loader();
        expect(await loader()).toBe(first);
        expect(await loader({ refresh: true })).toBe(first); // within 30 s of the load: no re-read
        clock = 1001;
        expect(await loader()).not.toBe(first);
        expect(loads).toBe(3);
    });

    it('config: encryption on by default, off on request, the secret name and the local key dir', () => {
        expect(parseCryptoConfig({}, '/w')).toEqual({
            enabled: true,
            keysSecret: 'mesh-data-keys',
            keysDir: '/w/.mesh-data/keys',
        });
        expect(
            parseCryptoConfig(
                { MESH_ENCRYPTION: 'OFF', MESH_DATA_KEYS_SECRET: 'team-data-keys', MESH_KEYS_DIR: '/k' },
                '/w',
            ),
        ).toEqual({ enabled: false, keysSecret: 'team-data-keys', keysDir: '/k' });
        expect(parseCryptoConfig({ MESH_STORE: 'cosmos' }, '/w').keysDir).toBeUndefined();
        expect(() => parseCryptoConfig({ MESH_ENCRYPTION: 'maybe' })).toThrow(
            "MESH_ENCRYPTION must be 'on' or 'off', got 'maybe'.",
        );
    });
});
