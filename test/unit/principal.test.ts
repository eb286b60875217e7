import { canSeeTeam, hasAnyRole, Principal, Role, rolesFrom, seesAllTeams } from '../../domain/principal';

const who = (roles: Role[], teams: string[] = ['alpha']): Principal => ({ id: 'u1', roles, teams });

describe('principal', () => {
    it('hasAnyRole is true when any listed role is held', () => {
        expect(hasAnyRole(who(['Mesh.Developer']), ['Mesh.Operator', 'Mesh.Developer'])).toBe(true);
        expect(hasAnyRole(who(['Mesh.Developer']), ['Mesh.Operator'])).toBe(false);
        expect(hasAnyRole(who([]), [])).toBe(false);
    });

    it.each<[Role, boolean]>([
        ['Mesh.Developer', false],
        ['Mesh.DataScientist', false],
        ['Mesh.Approver', false],
        ['Mesh.Operator', true],
        ['Mesh.Compliance', true],
        ['Mesh.Admin', true],
    ])('%s sees all teams: %s', (role, expected) => {
        expect(seesAllTeams(who([role]))).toBe(expected);
        expect(canSeeTeam(who([role], []), 'beta')).toBe(expected);
    });

    it('a member sees their own teams only', () => {
        const p = who(['Mesh.Developer'], ['alpha', 'gamma']);
        expect(canSeeTeam(p, 'alpha')).toBe(true);
        expect(canSeeTeam(p, 'gamma')).toBe(true);
        expect(canSeeTeam(p, 'beta')).toBe(false);
    });

    it('rolesFrom keeps known roles, drops unknown ones and duplicates', () => {
        expect(rolesFrom(['Mesh.Admin', 'Other.Role', 42, 'Mesh.Admin', 'mesh.admin'])).toEqual(['Mesh.Admin']);
        expect(rolesFrom('Mesh.Admin')).toEqual([]);
        expect(rolesFrom(undefined)).toEqual([]);
    });
});
