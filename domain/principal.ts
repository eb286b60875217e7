/** The six app roles of the Entra ID app registration. */
export const ROLES = [
    'Mesh.Developer',
    'Mesh.DataScientist',
    'Mesh.Operator',
    'Mesh.Approver',
    'Mesh.Compliance',
    'Mesh.Admin',
] as const;

export type Role = (typeof ROLES)[number];

/** The authenticated caller, as every handler and policy sees it. */
export interface Principal {
    /** Stable user id (Entra `oid`, else `sub`). */
    id: string;
    name?: string;
    roles: Role[];
    teams: string[];
}

/** Roles that see the runs of every team, not only their own. */
const ALL_TEAMS_ROLES: readonly Role[] = ['Mesh.Operator', 'Mesh.Compliance', 'Mesh.Admin'];

export function isRole(value: unknown): value is Role {
    return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/**
 * Keeps the known app roles of a token claim, de-duplicated. Unknown strings are dropped, not rejected: a
 * tenant may assign roles of other apps, and they simply grant nothing here.
 */
export function rolesFrom(claim: unknown): Role[] {
    if (!Array.isArray(claim)) return [];
    return [...new Set(claim.filter(isRole))];
}

export function hasAnyRole(p: Principal, roles: readonly Role[]): boolean {
    return p.roles.some((r) => roles.includes(r));
}

/** Operators, Compliance and Admins see runs of every team. */
export function seesAllTeams(p: Principal): boolean {
    return hasAnyRole(p, ALL_TEAMS_ROLES);
}

export function canSeeTeam(p: Principal, team: string): boolean {
    return seesAllTeams(p) || p.teams.includes(team);
}
