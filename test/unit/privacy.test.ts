/** Personal data in what leaves the stores (domain/privacy.ts): masked by default, shown as the policy says. */
import { type AuditRecord, chainNext, verifyChain } from '../../domain/audit';
import { DEFAULT_POLICY } from '../../domain/policy';
import { personalDataOf, readsOwnWords, recordAs } from '../../domain/privacy';
import { TEST_KEYS } from '../support/chainKeys';

const WORDS = 'hold it, mail ava.doe@example.com or ring +44 20 7946 0958';

function record(): AuditRecord {
    return chainNext(
        undefined,
        {
            eventId: 'run-1/pause/p1',
            runId: 'run-1',
            type: 'pipeline.paused',
            at: '2025-06-01T12:00:00.000Z',
            actor: 'olly',
            correlationID: 'c-1',
            reason: WORDS,
            details: { note: WORDS, n: 3 },
        },
        TEST_KEYS.current,
    );
}

describe('personal data in events and the audit trail', () => {
    it('masks e-mail addresses and phone numbers in the reason and details under mask, keeps them under show', () => {
        const r = record();
        const masked = recordAs(r, 'mask');
        expect(masked.reason).toBe('hold it, mail a***@example.com or ring +** ** **** **58');
        expect(masked.details).toEqual({ note: masked.reason, n: 3 });
        expect(recordAs(r, 'show')).toBe(r);
        // The stored record is untouched, and it is what the chain verifies.
        expect(r.reason).toBe(WORDS);
        expect(verifyChain([r], TEST_KEYS).verified).toBe(true);
    });

    it('masks unless the policy says show (policies saved before the setting mask)', () => {
        expect(personalDataOf(DEFAULT_POLICY)).toBe('mask');
        expect(personalDataOf({ personalData: 'show' })).toBe('show');
        expect(personalDataOf({ personalData: 'mask' })).toBe('mask');
    });

    it("shows a run's words to its team and its submitter, no one else", () => {
        const run = { metadata: { team: 'alpha', riskLevel: 'high' as const, complianceTags: [] }, createdBy: 'dana' };
        expect(readsOwnWords({ id: 'x', roles: ['Mesh.Developer'], teams: ['alpha'] }, run)).toBe(true);
        expect(readsOwnWords({ id: 'dana', roles: ['Mesh.Developer'], teams: [] }, run)).toBe(true);
        expect(readsOwnWords({ id: 'cleo', roles: ['Mesh.Compliance'], teams: ['beta'] }, run)).toBe(false);
        expect(readsOwnWords({ id: 'olly', roles: ['Mesh.Operator'], teams: [] }, run)).toBe(false);
    });
});
