import { ConflictError, ForbiddenError, LinkInvalidError, LinkUsedError } from '../../domain/errors';
import {
    decideByLink,
    DEFAULT_LINK_TTL_S,
    type LinkClaims,
    linkExpired,
    linkPrincipal,
    linksFor,
    MAX_LINK_TTL_S,
    parseLinkClaims,
    reviewLink,
} from '../../domain/links';
import type { RunDoc } from '../../domain/run';
import { outputKey } from '../../domain/steps';
import { decisionEvent } from '../../orchestrators/meshPipeline/contract';
import { MemoryRuns } from '../support/domainFakes';
import { CP, MemoryLinkUses, waitingRun } from '../support/linkFixtures';

const NOW = new Date('2025-06-01T12:30:00.000Z');
const T = NOW.getTime() / 1000;
const DEADLINE = Date.parse('2025-06-02T12:00:00.000Z') / 1000;
const ava = { id: 'ava', name: 'Ava', roles: ['Mesh.Approver' as const], teams: ['alpha'] };

function claims(over: Partial<LinkClaims> = {}): LinkClaims {
    return {
        jti: 'b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e',
        sub: 'ava',
        name: 'Ava',
        cp: CP,
        run: 'run-1',
        d: 'approve',
        roles: ['Mesh.Approver'],
        teams: ['alpha'],
        iat: T,
        exp: T + 600,
        ...over,
    };
}

describe('parseLinkClaims', () => {
    it('accepts a link and keeps only the link’s fields', () => {
        expect(parseLinkClaims({ ...claims(), extra: 'dropped', aud: 'x' })).toEqual(claims());
        const { name: _n, ...noName } = claims();
        expect(parseLinkClaims(noName)).toEqual(noName);
        expect(parseLinkClaims({ ...claims(), roles: ['Mesh.Approver', 'Mesh.Approver'] }).roles).toEqual([
            'Mesh.Approver',
        ]);
    });

    it.each<[string, unknown]>([
        ['not an object', 'token'],
        ['null', null],
        ['an array', [claims()]],
        ['a short jti', { ...claims(), jti: 'abc' }],
        ['a jti with odd characters', { ...claims(), jti: 'aaaaaaaa/bbbbbbbb' }],
        ['no sub', { ...claims(), sub: undefined }],
        ['an empty sub', { ...claims(), sub: '' }],
        ['a non-string name', { ...claims(), name: 3 }],
        ['a malformed checkpoint id', { ...claims(), cp: 'run-1.taste' }],
        ['a run that is not the checkpoint’s', { ...claims(), run: 'run-2' }],
        ['an unknown decision', { ...claims(), d: 'maybe' }],
        ['roles not a list', { ...claims(), roles: 'Mesh.Approver' }],
        ['an unknown role', { ...claims(), roles: ['Mesh.Approver', 'Root'] }],
        ['teams not strings', { ...claims(), teams: [1] }],
        ['no exp', { ...claims(), exp: undefined }],
        ['a fractional iat', { ...claims(), iat: T + 0.5 }],
        ['exp not after iat', { ...claims(), exp: T }],
    ])('refuses %s as LINK_INVALID', (_what, payload) => {
        expect(() => parseLinkClaims(payload)).toThrow(LinkInvalidError);
    });
});

describe('linkExpired / linkPrincipal', () => {
    it('a link is valid strictly before exp', () => {
        expect(linkExpired({ exp: T + 1 }, NOW)).toBe(false);
        expect(linkExpired({ exp: T }, NOW)).toBe(true);
        expect(linkExpired({ exp: T - 1 }, NOW)).toBe(true);
    });

    it('decides as the approver snapshot', () => {
        expect(linkPrincipal(claims())).toEqual({ id: 'ava', name: 'Ava', roles: ['Mesh.Approver'], teams: ['alpha'] });
    });
});

describe('linksFor', () => {
    let n = 0;
    const newId = () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;

    it('mints one link per decision, bound to the approver and checkpoint, expiring at the deadline', () => {
        const run = waitingRun();
        const links = linksFor(run, run.checkpoints[0]!, ava, undefined, { now: NOW, newId });
        expect(links.map((l) => l.d)).toEqual(['approve', 'reject', 'request_info']);
        expect(new Set(links.map((l) => l.jti)).size).toBe(3);
        for (const l of links) {
            expect(l).toMatchObject({ sub: 'ava', name: 'Ava', cp: CP, run: 'run-1', iat: T, exp: DEADLINE });
            expect(l.roles).toEqual(['Mesh.Approver']);
            expect(l.teams).toEqual(['alpha']);
            expect(parseLinkClaims(l)).toEqual(l); // what it mints, a signer accepts
        }
        expect(linksFor(run, run.checkpoints[0]!, ava, ['reject', 'reject'], { now: NOW }).map((l) => l.d)).toEqual([
            'reject',
        ]);
    });

    it('never mints for the submitter, even one holding the required role', () => {
        const run = waitingRun();
        const dana = { id: 'dana', roles: ['Mesh.Developer' as const, 'Mesh.Approver' as const], teams: ['alpha'] };
        expect(linksFor(run, run.checkpoints[0]!, dana)).toEqual([]);
    });

    it('mints nothing for someone who may not decide: no required role, another team', () => {
        const run = waitingRun();
        expect(linksFor(run, run.checkpoints[0]!, { id: 'sam', roles: ['Mesh.Developer'], teams: ['alpha'] })).toEqual(
            [],
        );
        expect(linksFor(run, run.checkpoints[0]!, { id: 'bea', roles: ['Mesh.Approver'], teams: ['beta'] })).toEqual(
            [],
        );
        const escalated = waitingRun({}, { requiredRoles: ['Mesh.Approver', 'Mesh.Admin'] });
        expect(
            linksFor(
                escalated,
                escalated.checkpoints[0]!,
                { id: 'ada', roles: ['Mesh.Admin'], teams: [] },
                ['approve'],
                {
                    now: NOW,
                },
            ),
        ).toHaveLength(1);
    });

    it('caps the lifetime (ttlSeconds, MAX_LINK_TTL_S), defaults without a deadline, and mints nothing past it', () => {
        const run = waitingRun();
        const cp = run.checkpoints[0]!;
        expect(linksFor(run, cp, ava, ['approve'], { now: NOW, ttlSeconds: 60 })[0]!.exp).toBe(T + 60);
        const far = { ...cp, deadline: '2026-01-01T00:00:00.000Z' };
        expect(linksFor(run, far, ava, ['approve'], { now: NOW })[0]!.exp).toBe(T + MAX_LINK_TTL_S);
        const none = { ...cp, deadline: null };
        expect(linksFor(run, none, ava, ['approve'], { now: NOW })[0]!.exp).toBe(T + DEFAULT_LINK_TTL_S);
        expect(linksFor(run, cp, ava, ['approve'], { now: new Date(DEADLINE * 1000) })).toEqual([]);
    });
});

describe('reviewLink / decideByLink', () => {
    async function ports(run: RunDoc = waitingRun()) {
        const runs = new MemoryRuns();
        await runs.create(run);
        return { runs, linkUses: new MemoryLinkUses(), now: () => NOW };
    }

    it('review shows the run, the checkpoint and the output judged, and changes nothing', async () => {
        const p = await ports();
        await p.runs.putOutput('run-1', outputKey(1, 'creativity'), { output: { ideas: ['x'] }, continue: false });
        const r = await reviewLink(p, claims());
        expect(r.run.id).toBe('run-1');
        expect(r.checkpoint.checkpointId).toBe(CP);
        expect(r.latest).toEqual({ stage: 'creativity', iteration: 1, output: { ideas: ['x'] } });
        expect(p.linkUses.uses.size).toBe(0);
        expect(p.runs.calls.update).toBe(0);
    });

    it('review of an after-checkpoint shows its own stage; without a stored output there is none', async () => {
        const p = await ports(waitingRun({}, { stage: 'improvement', position: 'after' }));
        expect((await reviewLink(p, claims())).latest).toBeUndefined();
        await p.runs.putOutput('run-1', outputKey(1, 'improvement'), { output: 'best', continue: false });
        expect((await reviewLink(p, claims())).latest).toEqual({ stage: 'improvement', iteration: 1, output: 'best' });
    });

    it('decides as the link’s approver on channel link, consumes the link, and refuses a second use', async () => {
        const p = await ports();
        const out = await decideByLink(p, claims(), 'fine by me', 'corr-1');
        expect(out.eventName).toBe(decisionEvent(CP, false));
        expect(out.event).toMatchObject({
            checkpointId: CP,
            decision: 'approve',
            actorId: 'ava',
            actorName: 'Ava',
            comment: 'fine by me',
            channel: 'link',
            correlationID: 'corr-1',
        });
        expect(p.linkUses.uses.get(claims().jti)).toBe(NOW.toISOString());
        await expect(decideByLink(p, claims(), undefined, 'c')).rejects.toThrow(LinkUsedError);
        await expect(reviewLink(p, claims())).rejects.toThrow(LinkUsedError);
    });

    it('of concurrent uses of one link exactly one decides', async () => {
        const p = await ports();
        const results = await Promise.allSettled(
            Array.from({ length: 5 }, () => decideByLink(p, claims(), undefined, 'c')),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results.filter((x) => x.status === 'rejected')) expect(r.reason).toBeInstanceOf(LinkUsedError);
    });

    it('answers LINK_USED, not CONFLICT, when its own use is what closed the checkpoint', async () => {
        const p = await ports();
        await p.linkUses.use(claims().jti, NOW.toISOString());
        await p.runs.update('run-1', (r) => ({ ...r, status: 'Running' }));
        await expect(decideByLink(p, claims(), undefined, 'c')).rejects.toThrow(LinkUsedError);
    });

    it('four-eyes: a link whose approver is the submitter is FORBIDDEN and stays unused', async () => {
        const p = await ports();
        const self = claims({ sub: 'dana', roles: ['Mesh.Developer', 'Mesh.Approver'] });
        await expect(reviewLink(p, self)).rejects.toThrow(/four-eyes/);
        await expect(decideByLink(p, self, undefined, 'c')).rejects.toThrow(ForbiddenError);
        expect(p.linkUses.uses.size).toBe(0);
    });

    it('an approver snapshot that may not see the run is FORBIDDEN (not NOT_FOUND: the link named the run)', async () => {
        const p = await ports();
        await expect(decideByLink(p, claims({ teams: ['beta'] }), undefined, 'c')).rejects.toThrow(ForbiddenError);
    });

    it('a closed, not yet open, or vanished checkpoint is CONFLICT and the link stays unused', async () => {
        const closed = await ports(waitingRun({ status: 'Running' }, { status: 'Approved' }));
        await expect(decideByLink(closed, claims(), undefined, 'c')).rejects.toThrow(ConflictError);
        const p = await ports();
        const later = claims({ cp: 'run-1.1.improvement.after.1' });
        await expect(decideByLink(p, later, undefined, 'c')).rejects.toThrow(ConflictError);
        await expect(reviewLink(p, later)).rejects.toThrow(ConflictError);
        await expect(decideByLink(p, claims({ cp: 'run-1.2.taste.before.0' }), undefined, 'c')).rejects.toThrow(
            ConflictError,
        );
        await expect(
            decideByLink(p, claims({ cp: 'gone.1.taste.before.0', run: 'gone' }), undefined, 'c'),
        ).rejects.toThrow(ConflictError);
        expect(p.linkUses.uses.size + closed.linkUses.uses.size).toBe(0);
    });

    it('quorum: an approver who already approved cannot approve again through a link', async () => {
        const voted = waitingRun(
            {},
            { approvals: 2, decisions: [{ actorId: 'ava', decision: 'approve', channel: 'api', at: 'x' }] },
        );
        const p = await ports(voted);
        await expect(decideByLink(p, claims(), undefined, 'c')).rejects.toThrow(/one person counts once/);
        await expect(decideByLink(p, claims({ sub: 'amir', name: 'Amir' }), undefined, 'c')).resolves.toMatchObject({
            event: { actorId: 'amir' },
        });
    });
});
