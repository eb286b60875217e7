/**
 * Issue 10: the audit chain proves more than its own consistency. On a real run's stored records, each way of
 * tampering (edit, delete, reorder, truncate, append a forged record, rehash the whole chain) shows through the API as
 * `verified: false` with the right `brokenAt`, in the JSON answer and in the NDJSON verdict line alike.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { canonicalJson, GENESIS_HASH } from '../../domain/audit';
import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess, waitUntil } from '../support/hostProcess';
import { STORES } from '../support/stores';
import { rewriteAuditTrail, tamperAuditRecord } from '../support/tamper';

jest.setTimeout(120_000);

type Rec = Record<string, unknown>;
const plainHash = (body: Rec): string => createHash('sha256').update(canonicalJson(body)).digest('hex');
const wrongKey = randomBytes(32);
const wrongMac = (body: Rec): string => createHmac('sha256', wrongKey).update(canonicalJson(body)).digest('hex');
const NOT_KEYED = 'record is not keyed (no kid): its hash proves nothing';

/** The record's body (every field but hash), as the chain covers it. */
function bodyOf(r: Rec): Rec {
    const { hash: _h, ...body } = r;
    return body;
}

describe.each(STORES)('audit chain tampering on the %s store', (store) => {
    let host: HostProcess;
    let api: Api;

    beforeAll(async () => {
        host = await startHostProcess({ store, env: { MESH_ENGINE_LATENCY_MS: '0' } });
        api = new Api(host);
    });

    afterAll(async () => {
        await host?.stop();
    });

    /** A completed low-risk run and its record count. */
    async function completedRun(): Promise<{ id: string; n: number }> {
        const r = await api.call('POST', '/pipeline/run', {
            user: USERS.dana,
            body: {
                input: { prompt: 'tamper with me' },
                metadata: { team: 'alpha', riskLevel: 'low', complianceTags: [], title: 'tamper' },
            },
        });
        expect(r.status).toBe(202);
        const id = r.body.data.orchestrationID as string;
        await waitUntil(
            async () =>
                (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.dana })).body.data?.status ===
                'Completed',
            `run ${id} Completed`,
            30_000,
        );
        const l = await chainOf(id);
        expect(l.chain).toMatchObject({ verified: true });
        return { id, n: l.events.length };
    }

    async function chainOf(id: string): Promise<{ chain: any; events: any[] }> {
        const r = await api.call('GET', `/pipeline/logs/${id}?limit=1000`, { user: USERS.carl });
        expect(r.status).toBe(200);
        return r.body.data;
    }

    /** The verdict of the JSON answer, checked to equal the NDJSON stream's last line. */
    async function verdict(id: string): Promise<any> {
        const { chain } = await chainOf(id);
        const r = await fetch(`${host.origin}/pipeline/logs/${id}?format=ndjson`, {
            headers: { authorization: `Bearer ${await api.token(USERS.carl)}` },
        });
        expect(r.status).toBe(200);
        const lines = (await r.text())
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Rec);
        expect(lines.at(-1)).toEqual({ chain });
        return chain;
    }

    it('ends the NDJSON stream with the verdict line of an intact chain', async () => {
        const { id, n } = await completedRun();
        const r = await fetch(`${host.origin}/pipeline/logs/${id}?format=ndjson`, {
            headers: { authorization: `Bearer ${await api.token(USERS.dana)}` },
        });
        const lines = (await r.text())
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Rec);
        expect(lines).toHaveLength(n + 1);
        expect(lines.at(-2)).toMatchObject({ seq: n, type: 'pipeline.completed', kid: expect.any(String) });
        expect(lines.at(-1)).toEqual({ chain: { verified: true, head: lines.at(-2)!.hash } });
    });

    it('answers an unknown format with 400 VALIDATION_FAILED in the envelope', async () => {
        const { id } = await completedRun();
        const r = await api.call('GET', `/pipeline/logs/${id}?format=csv`, { user: USERS.carl });
        expect(r.status).toBe(400);
        expect(r.body).toMatchObject({ error_code: 'VALIDATION_FAILED', correlationID: expect.any(String) });
    });

    it('edit: names the edited record', async () => {
        const { id } = await completedRun();
        await tamperAuditRecord(store, host, id, 3, (r) => ({ ...r, actor: 'mallory' }));
        expect(await verdict(id)).toMatchObject({ verified: false, brokenAt: { seq: 3, reason: 'hash mismatch' } });
    });

    it('delete: names the record after the gap', async () => {
        const { id } = await completedRun();
        await rewriteAuditTrail(store, host, id, (rs) => rs.filter((r) => r.seq !== 3));
        expect(await verdict(id)).toMatchObject({
            verified: false,
            brokenAt: { seq: 4, reason: 'seq gap: expected 3' },
        });
    });

    it('reorder: names the first record out of place', async () => {
        const { id } = await completedRun();
        if (store === 'embedded') {
            // Rows 2 and 3 swapped: read back in the wrong order.
            await rewriteAuditTrail(store, host, id, (rs) => [rs[0]!, rs[2]!, rs[1]!, ...rs.slice(3)]);
            expect(await verdict(id)).toMatchObject({
                verified: false,
                brokenAt: { seq: 3, reason: 'seq gap: expected 2' },
            });
        } else {
            // Cosmos reads in the records' own seq order: swapping means swapping their seqs.
            await rewriteAuditTrail(store, host, id, (rs) => [
                rs[0]!,
                { ...rs[2]!, seq: 2 },
                { ...rs[1]!, seq: 3 },
                ...rs.slice(3),
            ]);
            expect(await verdict(id)).toMatchObject({
                verified: false,
                brokenAt: { seq: 2, reason: 'prevHash does not match the previous record' },
            });
        }
    });

    it('truncate: names the first missing seq, from the anchored head', async () => {
        const { id, n } = await completedRun();
        await rewriteAuditTrail(store, host, id, (rs) => rs.slice(0, n - 2));
        expect(await verdict(id)).toMatchObject({
            verified: false,
            brokenAt: {
                seq: n - 1,
                reason: `record missing: the anchored head is seq ${n}, the chain ends at seq ${n - 2}`,
            },
        });
    });

    it('append: refuses a forged record with a correct plain SHA-256', async () => {
        const { id, n } = await completedRun();
        await rewriteAuditTrail(store, host, id, (rs) => {
            const last = rs.at(-1)!;
            const { kid: _k, ...body } = bodyOf({
                ...last,
                eventId: 'forged',
                seq: n + 1,
                prevHash: last.hash,
                actor: 'mallory',
            });
            return [...rs, { ...body, hash: plainHash(body) }];
        });
        expect(await verdict(id)).toMatchObject({ verified: false, brokenAt: { seq: n + 1, reason: NOT_KEYED } });
    });

    it("append: refuses a forged record keyed with a wrong key under the chain's kid", async () => {
        const { id, n } = await completedRun();
        await rewriteAuditTrail(store, host, id, (rs) => {
            const last = rs.at(-1)!;
            const body = bodyOf({ ...last, eventId: 'forged', seq: n + 1, prevHash: last.hash, actor: 'mallory' });
            return [...rs, { ...body, hash: wrongMac(body) }];
        });
        expect(await verdict(id)).toMatchObject({ verified: false, brokenAt: { seq: n + 1, reason: 'hash mismatch' } });
    });

    it('full rehash: refuses every record rehashed with plain SHA-256 and recomputed prevHash', async () => {
        const { id } = await completedRun();
        await rewriteAuditTrail(store, host, id, (rs) => {
            const out: Rec[] = [];
            for (const r of rs) {
                const { kid: _k, ...body } = bodyOf({
                    ...r,
                    prevHash: out.at(-1)?.hash ?? GENESIS_HASH,
                    actor: r.seq === 3 ? 'mallory' : r.actor,
                });
                out.push({ ...body, hash: plainHash(body) });
            }
            return out;
        });
        expect(await verdict(id)).toMatchObject({ verified: false, brokenAt: { seq: 1, reason: NOT_KEYED } });
    });

    it('full rehash: refuses every record re-keyed with a wrong key, kid kept', async () => {
        const { id } = await completedRun();
        await rewriteAuditTrail(store, host, id, (rs) => {
            const out: Rec[] = [];
            for (const r of rs) {
                const body = bodyOf({ ...r, prevHash: out.at(-1)?.hash ?? GENESIS_HASH });
                out.push({ ...body, hash: wrongMac(body) });
            }
            return out;
        });
        expect(await verdict(id)).toMatchObject({ verified: false, brokenAt: { seq: 1, reason: 'hash mismatch' } });
    });

    it('keeps the chain keys and the anchored heads in MESH_KEYS_DIR, not in the audit store', () => {
        expect(existsSync(join(host.dataDir, 'keys', 'audit-keys.json'))).toBe(true);
        expect(existsSync(join(host.dataDir, 'keys', 'audit-anchors.sqlite'))).toBe(true);
    });
});
