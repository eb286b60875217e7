import { applyDecision, type CastDecision, emptyQuorum, type QuorumState } from '../../domain/quorum';

const approve = (actorId: string): CastDecision => ({ actorId, decision: 'approve' });
const reject = (actorId: string): CastDecision => ({ actorId, decision: 'reject' });
const askInfo = (actorId: string): CastDecision => ({ actorId, decision: 'request_info' });

/** Applies decisions in order; returns the final state and which ones counted. */
function cast(required: number, ...decisions: CastDecision[]): { state: QuorumState; counted: boolean[] } {
    let state = emptyQuorum();
    const counted: boolean[] = [];
    for (const d of decisions) {
        const r = applyDecision(state, d, required);
        state = r.state;
        counted.push(r.counted);
    }
    return { state, counted };
}

describe('applyDecision (quorum)', () => {
    it('starts open with no approvers', () => {
        expect(emptyQuorum()).toEqual({ approvers: [], outcome: 'open' });
        expect(emptyQuorum()).not.toBe(emptyQuorum());
    });

    it('one approval closes a quorum of one', () => {
        expect(cast(1, approve('alice'))).toEqual({
            state: { approvers: ['alice'], outcome: 'approved' },
            counted: [true],
        });
    });

    it('a quorum of two needs two distinct approvers; a repeat approval is not counted', () => {
        const r = cast(2, approve('alice'), approve('alice'), approve('bob'));
        expect(r.counted).toEqual([true, false, true]);
        expect(r.state).toEqual({ approvers: ['alice', 'bob'], outcome: 'approved' });
        expect(cast(2, approve('alice'), approve('alice')).state).toEqual({ approvers: ['alice'], outcome: 'open' });
    });

    it('any rejection closes the checkpoint, whatever approvals came before', () => {
        expect(cast(2, approve('alice'), reject('bob')).state).toEqual({ approvers: ['alice'], outcome: 'rejected' });
        expect(cast(3, reject('carol')).state.outcome).toBe('rejected');
        // An approver who changes their mind may still reject.
        expect(cast(2, approve('alice'), reject('alice')).state.outcome).toBe('rejected');
    });

    it('request_info is counted (recorded) but changes nothing and keeps the checkpoint open', () => {
        const r = cast(1, askInfo('alice'), askInfo('alice'));
        expect(r.counted).toEqual([true, true]);
        expect(r.state).toEqual({ approvers: [], outcome: 'open' });
        expect(cast(1, askInfo('alice'), approve('alice')).state.outcome).toBe('approved');
    });

    it('after closing, nothing counts', () => {
        expect(cast(1, approve('alice'), approve('bob'), reject('carol'), askInfo('dan'))).toEqual({
            state: { approvers: ['alice'], outcome: 'approved' },
            counted: [true, false, false, false],
        });
        expect(cast(2, reject('alice'), approve('bob'), approve('carol')).counted).toEqual([true, false, false]);
    });

    it('does not change the state it is given', () => {
        const state = Object.freeze({ approvers: Object.freeze(['alice']) as string[], outcome: 'open' as const });
        const r = applyDecision(state, approve('bob'), 3);
        expect(state).toEqual({ approvers: ['alice'], outcome: 'open' });
        expect(r.state).toEqual({ approvers: ['alice', 'bob'], outcome: 'open' });
    });
});
