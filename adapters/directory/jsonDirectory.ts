/**
 * The directory as a local JSON file (`MESH_DIRECTORY`): `{ "people": [Person, …] }`, or a bare array of people.
 * The embedded host defaults `MESH_DIRECTORY` to the sample directory shipped in local/directory.sample.json (the
 * users the tests and the README's first run use); without any file the directory is empty. The file is read again when it changes, so a directory can be edited while the host
 * runs.
 */
import { promises as fsp } from 'node:fs';

import type { Directory, Person } from '../../domain/ports';
import type { Role } from '../../domain/principal';
import { isRole } from '../../domain/principal';

const ADMIN: Role = 'Mesh.Admin';

export class JsonDirectory implements Directory {
    private cache: { mtimeMs: number; people: Person[] } | undefined;

    /** `file` undefined: an empty directory (nobody is notified). */
    constructor(private readonly file: string | undefined) {}

    async peopleWithRoles(roles: readonly Role[], team: string): Promise<Person[]> {
        const wanted = new Set(roles);
        return (await this.people()).filter(
            (p) => p.roles.some((r) => wanted.has(r)) && (p.roles.includes(ADMIN) || p.teams.includes(team)),
        );
    }

    async person(id: string): Promise<Person | undefined> {
        return (await this.people()).find((p) => p.id === id);
    }

    private async people(): Promise<Person[]> {
        if (this.file === undefined) return [];
        const { mtimeMs } = await fsp.stat(this.file);
        if (this.cache?.mtimeMs === mtimeMs) return this.cache.people;
        const text = await fsp.readFile(this.file, 'utf8');
        let parsed: unknown;
        try {
            parsed = JSON.parse(text);
        } catch {
            throw new Error(`MESH_DIRECTORY ${this.file} is not JSON.`);
        }
        const people = parseDirectory(parsed, this.file);
        this.cache = { mtimeMs, people };
        return people;
    }
}

/** Checks a directory document; the error names the source and the first bad entry. */
export function parseDirectory(doc: unknown, source: string): Person[] {
    const list = Array.isArray(doc) ? doc : (doc as { people?: unknown } | null)?.people;
    if (!Array.isArray(list)) throw new Error(`${source}: a directory is {"people": [...]} or an array of people.`);
    const seen = new Set<string>();
    return list.map((entry: unknown, i) => {
        const p = entry as Record<string, unknown> | null;
        const bad = (what: string): Error => new Error(`${source}: people[${i}] ${what}`);
        if (typeof p !== 'object' || p === null) throw bad('is not an object');
        if (!isText(p.id)) throw bad('has no id');
        if (seen.has(p.id)) throw bad(`repeats id '${p.id}'`);
        seen.add(p.id);
        if (!Array.isArray(p.roles) || !p.roles.every(isRole)) throw bad('has unknown roles');
        if (!Array.isArray(p.teams) || !p.teams.every(isText)) throw bad('has bad teams');
        for (const k of ['name', 'email', 'slack', 'msTeams'] as const)
            if (p[k] !== undefined && !isText(p[k])) throw bad(`has a bad ${k}`);
        return {
            id: p.id,
            name: (p.name as string | undefined) ?? p.id,
            ...(p.email !== undefined ? { email: p.email as string } : {}),
            ...(p.slack !== undefined ? { slack: p.slack as string } : {}),
            ...(p.msTeams !== undefined ? { msTeams: p.msTeams as string } : {}),
            roles: [...new Set(p.roles)],
            teams: [...new Set(p.teams)],
        };
    });
}

function isText(v: unknown): v is string {
    return typeof v === 'string' && v.length > 0 && v.length <= 256;
}
