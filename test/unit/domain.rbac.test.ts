import { ForbiddenError, NotFoundError } from '../../domain/errors';
import { type Principal, type Role, ROLES } from '../../domain/principal';
import {
    assertCanDecide,
    assertCanReadPolicy,
    assertCanResume,
    assertCanStop,
    assertCanSubmit,
    assertCanWritePolicy,
    canSee,
    visibleRun,
    visibleTeams,
} from '../../domain/rbac';
import { makeRun } from '../support/domainFakes';

/** A caller holding one role, a member of `teams`. */
const who = (role: Role, teams: string[] = ['alpha'], id = `${role}-user`): Principal => ({ id, roles: [role], teams });
const run = makeRun({ metadata: { team: 'alpha', riskLevel: 'high', complianceTags: [] }, createdBy: 'submitter' });

/** Each role's expected answer, from SPEC's endpoint table ("who"). */
const table = (allowed: Role[]) => ROLES.map((r): [Role, boolean] => [r, allowed.includes(r)]);
const allowedBy = (fn: () => void): boolean => {
    try {
        fn();
        return true;
    } catch (e: unknown) {
        if (e instanceof ForbiddenError) return false;
        throw e;
    }
};

describe('rbac', () => {
    describe('assertCanSubmit (POST /pipeline/run: Developer, DataScientist, Operator, Admin)', () => {
        it.each(table(['Mesh.Developer', 'Mesh.DataScientist', 'Mesh.Operator', 'Mesh.Admin']))(
            '%s for its own team: %s',
            (role, allowed) => {
                expect(allowedBy(() => assertCanSubmit(who(role), 'alpha'))).toBe(allowed);
            },
        );

        it.each(table(['Mesh.Operator', 'Mesh.Admin']))('%s for another team: %s', (role, allowed) => {
            expect(allowedBy(() => assertCanSubmit(who(role), 'beta'))).toBe(allowed);
        });

        it('a developer of another team is forbidden with a clear message', () => {
            expect(() => assertCanSubmit(who('Mesh.Developer', ['beta']), 'alpha')).toThrow(
                "You are not a member of team 'alpha'.",
            );
        });
    });

    describe('canSee / visibleRun (owner’s team, Operator, Compliance, Admin)', () => {
        it.each(table([...ROLES]))('%s of the run’s team sees it: %s', (role, allowed) => {
            expect(canSee(who(role), run)).toBe(allowed);
        });

        it.each(table(['Mesh.Operator', 'Mesh.Compliance', 'Mesh.Admin']))(
            '%s of another team sees it: %s',
            (role, allowed) => {
                expect(canSee(who(role, ['beta']), run)).toBe(allowed);
                if (allowed) expect(visibleRun(who(role, ['beta']), run, run.id)).toBe(run);
                else expect(() => visibleRun(who(role, ['beta']), run, run.id)).toThrow(NotFoundError);
            },
        );

        it('a run that does not exist and one the caller may not see get the same NOT_FOUND', () => {
            const hidden = () => visibleRun(who('Mesh.Developer', ['beta']), run, 'run-1');
            const missing = () => visibleRun(who('Mesh.Admin'), undefined, 'run-1');
            expect(hidden).toThrow("Run 'run-1' was not found.");
            expect(missing).toThrow("Run 'run-1' was not found.");
        });

        it.each(ROLES.map((r) => [r, ['Mesh.Operator', 'Mesh.Compliance', 'Mesh.Admin'].includes(r)] as const))(
            'visibleTeams for %s: all teams = %s',
            (role, all) => {
                expect(visibleTeams(who(role, ['alpha', 'gamma']))).toEqual(all ? undefined : ['alpha', 'gamma']);
            },
        );
    });

    describe('assertCanStop (POST /pipeline/stop: Operator, Admin; the owner may abort their own run)', () => {
        it.each(table(['Mesh.Operator', 'Mesh.Admin']))('%s may pause: %s', (role, allowed) => {
            expect(allowedBy(() => assertCanStop(who(role), run, 'pause'))).toBe(allowed);
        });

        it.each(table(['Mesh.Operator', 'Mesh.Admin']))('%s (not the owner) may abort: %s', (role, allowed) => {
            expect(allowedBy(() => assertCanStop(who(role), run, 'abort'))).toBe(allowed);
        });

        it.each([...ROLES])(
            'the owner holding %s may abort their own run, but pause it only as Operator/Admin',
            (role) => {
                const owner = who(role, ['alpha'], 'submitter');
                expect(allowedBy(() => assertCanStop(owner, run, 'abort'))).toBe(true);
                expect(allowedBy(() => assertCanStop(owner, run, 'pause'))).toBe(
                    role === 'Mesh.Operator' || role === 'Mesh.Admin',
                );
            },
        );
    });

    describe('assertCanResume (POST /pipeline/resume: Operator, Admin)', () => {
        it.each(table(['Mesh.Operator', 'Mesh.Admin']))('%s: %s', (role, allowed) => {
            expect(allowedBy(() => assertCanResume(who(role)))).toBe(allowed);
        });
    });

    describe('assertCanDecide (a holder of a required role, of the run’s team or Admin, never the submitter)', () => {
        const approverOnly = { requiredRoles: ['Mesh.Approver'] as Role[] };
        const escalated = { requiredRoles: ['Mesh.Approver', 'Mesh.Admin'] as Role[] };

        it.each(table(['Mesh.Approver']))(
            '%s of the run’s team, checkpoint needing Mesh.Approver: %s',
            (role, allowed) => {
                expect(allowedBy(() => assertCanDecide(who(role), run, approverOnly))).toBe(allowed);
            },
        );

        it.each(table(['Mesh.Approver', 'Mesh.Admin']))(
            '%s of the run’s team, escalated to Mesh.Admin: %s',
            (role, allowed) => {
                expect(allowedBy(() => assertCanDecide(who(role), run, escalated))).toBe(allowed);
            },
        );

        it.each(table(['Mesh.Admin']))('%s of another team, escalated to Mesh.Admin: %s', (role, allowed) => {
            expect(allowedBy(() => assertCanDecide(who(role, ['beta']), run, escalated))).toBe(allowed);
        });

        it('an approver of another team is forbidden', () => {
            expect(() => assertCanDecide(who('Mesh.Approver', ['beta']), run, approverOnly)).toThrow(
                "Approvers must belong to team 'alpha'.",
            );
        });

        it('an Admin of another team who holds the required role may decide', () => {
            const admin: Principal = { id: 'root', roles: ['Mesh.Admin', 'Mesh.Approver'], teams: [] };
            expect(allowedBy(() => assertCanDecide(admin, run, approverOnly))).toBe(true);
        });

        it('the submitter can never decide, whatever roles they hold (four-eyes)', () => {
            const submitter: Principal = { id: 'submitter', roles: [...ROLES], teams: ['alpha'] };
            expect(() => assertCanDecide(submitter, run, escalated)).toThrow(
                'The submitter of a run cannot decide its checkpoints (four-eyes).',
            );
        });

        it('names the roles a checkpoint needs', () => {
            expect(() => assertCanDecide(who('Mesh.Developer'), run, escalated)).toThrow(
                'Deciding this checkpoint needs one of: Mesh.Approver, Mesh.Admin.',
            );
        });
    });

    describe('checkpoint policies (GET: Compliance, Admin, Operator; PUT: Compliance, Admin)', () => {
        it.each(table(['Mesh.Compliance', 'Mesh.Admin', 'Mesh.Operator']))('%s may read: %s', (role, allowed) => {
            expect(allowedBy(() => assertCanReadPolicy(who(role)))).toBe(allowed);
        });

        it.each(table(['Mesh.Compliance', 'Mesh.Admin']))('%s may write: %s', (role, allowed) => {
            expect(allowedBy(() => assertCanWritePolicy(who(role)))).toBe(allowed);
        });
    });

    it('a caller with no roles may do nothing but see their own team’s runs', () => {
        const nobody: Principal = { id: 'nobody', roles: [], teams: ['alpha'] };
        expect(allowedBy(() => assertCanSubmit(nobody, 'alpha'))).toBe(false);
        expect(allowedBy(() => assertCanResume(nobody))).toBe(false);
        expect(allowedBy(() => assertCanReadPolicy(nobody))).toBe(false);
        expect(allowedBy(() => assertCanDecide(nobody, run, { requiredRoles: ['Mesh.Approver'] }))).toBe(false);
        expect(canSee(nobody, run)).toBe(true);
    });
});
