/**
 * The directory on Azure: people and their roles from Entra ID group membership, read with Microsoft Graph.
 * `MESH_DIRECTORY_GROUPS` maps groups to roles and teams, e.g.
 * `[{"role":"Mesh.Approver","team":"alpha","groupId":"<object id>"},{"role":"Mesh.Admin","groupId":"<object id>"}]`
 * (a mapping without a team holds its role for every team). Members are the groups' transitive user members,
 * cached for a TTL; the token comes from the given provider (DefaultAzureCredential for Graph in production).
 */
import type { Directory, Person } from '../../domain/ports';
import { isRole, type Role } from '../../domain/principal';

export interface GroupMapping {
    role: Role;
    team?: string;
    groupId: string;
}

interface GraphUser {
    id: string;
    displayName?: string | null;
    mail?: string | null;
    userPrincipalName?: string | null;
}

export class EntraDirectory implements Directory {
    private readonly cache = new Map<string, { until: number; members: Promise<GraphUser[]> }>();

    constructor(
        private readonly groups: readonly GroupMapping[],
        private readonly token: () => Promise<string>,
        private readonly options: { baseUrl?: string; ttlMs?: number; now?: () => number } = {},
    ) {}

    async peopleWithRoles(roles: readonly Role[], team: string): Promise<Person[]> {
        const wanted = this.groups.filter((g) => roles.includes(g.role) && (g.team === undefined || g.team === team));
        return this.merge(wanted);
    }

    async person(id: string): Promise<Person | undefined> {
        return (await this.merge(this.groups)).find((p) => p.id === id);
    }

    /** One person per user, with every role and team their mapped groups give them. */
    private async merge(mappings: readonly GroupMapping[]): Promise<Person[]> {
        const people = new Map<string, Person>();
        for (const m of mappings) {
            for (const u of await this.members(m.groupId)) {
                const p = people.get(u.id) ?? {
                    id: u.id,
                    name: u.displayName ?? u.userPrincipalName ?? u.id,
                    ...(u.mail ? { email: u.mail } : {}),
                    ...(u.userPrincipalName ? { msTeams: u.userPrincipalName } : {}),
                    roles: [],
                    teams: [],
                };
                if (!p.roles.includes(m.role)) p.roles.push(m.role);
                if (m.team && !p.teams.includes(m.team)) p.teams.push(m.team);
                people.set(u.id, p);
            }
        }
        return [...people.values()];
    }

    private members(groupId: string): Promise<GraphUser[]> {
        const now = (this.options.now ?? Date.now)();
        const hit = this.cache.get(groupId);
        if (hit && hit.until > now) return hit.members;
        const members = this.fetchMembers(groupId);
        this.cache.set(groupId, { until: now + (this.options.ttlMs ?? 300_000), members });
        members.catch(() => this.cache.delete(groupId)); // a failure is not remembered
        return members;
    }

    private async fetchMembers(groupId: string): Promise<GraphUser[]> {
        const base = this.options.baseUrl ?? 'https://graph.microsoft.com';
        let url: string | undefined =
            `${base}/v1.0/groups/${encodeURIComponent(groupId)}/transitiveMembers/microsoft.graph.user?$select=id,displayName,mail,userPrincipalName`;
        const users: GraphUser[] = [];
        while (url) {
            const r = await fetch(url, {
                headers: { authorization: `Bearer ${await this.token()}` },
                signal: AbortSignal.timeout(10_000),
            });
            if (!r.ok) throw new Error(`Microsoft Graph answered ${r.status} for the members of group ${groupId}.`);
            const page = (await r.json()) as { value?: GraphUser[]; '@odata.nextLink'?: string };
            users.push(...(page.value ?? []).filter((u) => typeof u.id === 'string'));
            url = page['@odata.nextLink'];
        }
        return users;
    }
}

/** Parses `MESH_DIRECTORY_GROUPS`; the error names the first bad entry. */
export function parseGroupMappings(text: string): GroupMapping[] {
    let doc: unknown;
    try {
        doc = JSON.parse(text);
    } catch {
        throw new Error('MESH_DIRECTORY_GROUPS is not JSON.');
    }
    if (!Array.isArray(doc)) throw new Error('MESH_DIRECTORY_GROUPS must be a JSON array of {role, team?, groupId}.');
    return doc.map((e: unknown, i) => {
        const m = e as Partial<GroupMapping>;
        if (
            !m ||
            !isRole(m.role) ||
            typeof m.groupId !== 'string' ||
            !m.groupId ||
            (m.team !== undefined && typeof m.team !== 'string')
        ) {
            throw new Error(`MESH_DIRECTORY_GROUPS[${i}] must be {role: a Mesh role, team?: string, groupId: string}.`);
        }
        return { role: m.role, groupId: m.groupId, ...(m.team ? { team: m.team } : {}) };
    });
}

/** The production token provider: DefaultAzureCredential for Graph (loaded only when used). */
export function graphToken(): () => Promise<string> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { DefaultAzureCredential } = require('@azure/identity') as typeof import('@azure/identity');
    const credential = new DefaultAzureCredential();
    return async () => {
        const t = await credential.getToken('https://graph.microsoft.com/.default');
        if (!t) throw new Error('No token for Microsoft Graph.');
        return t.token;
    };
}
