/** The Entra ID directory against a fake Microsoft Graph on loopback: mapping, paging, merging, caching. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { EntraDirectory, parseGroupMappings } from '../../adapters/directory/entraDirectory';

const GROUPS: Record<string, { id: string; displayName: string; mail?: string; userPrincipalName: string }[][]> = {
    'g-approvers-alpha': [
        [{ id: 'u-ava', displayName: 'Ava', mail: 'ava@contoso.com', userPrincipalName: 'ava@contoso.com' }],
        [{ id: 'u-amir', displayName: 'Amir', userPrincipalName: 'amir@contoso.com' }],
    ],
    'g-approvers-beta': [
        [{ id: 'u-bea', displayName: 'Bea', mail: 'bea@contoso.com', userPrincipalName: 'bea@contoso.com' }],
    ],
    'g-admins': [
        [
            { id: 'u-ada', displayName: 'Ada', mail: 'ada@contoso.com', userPrincipalName: 'ada@contoso.com' },
            { id: 'u-ava', displayName: 'Ava', userPrincipalName: 'ava@contoso.com' },
        ],
    ],
};

let server: Server;
let base = '';
const calls: { url: string; auth: string | undefined }[] = [];

beforeAll(async () => {
    server = createServer((req, res) => {
        calls.push({ url: req.url ?? '', auth: req.headers.authorization });
        const m = /^\/v1\.0\/groups\/([^/]+)\/transitiveMembers\/microsoft\.graph\.user/.exec(req.url ?? '');
        const pages = m ? GROUPS[decodeURIComponent(m[1]!)] : undefined;
        if (!pages) {
            res.writeHead(404).end('{}');
            return;
        }
        const page = Number(new URL(req.url ?? '', 'http://x').searchParams.get('page') ?? 0);
        const next = page + 1 < pages.length ? `${base}${req.url!.split('&page=')[0]}&page=${page + 1}` : undefined;
        res.writeHead(200, { 'content-type': 'application/json' }).end(
            JSON.stringify({ value: pages[page], ...(next ? { '@odata.nextLink': next } : {}) }),
        );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

const mappings = parseGroupMappings(
    JSON.stringify([
        { role: 'Mesh.Approver', team: 'alpha', groupId: 'g-approvers-alpha' },
        { role: 'Mesh.Approver', team: 'beta', groupId: 'g-approvers-beta' },
        { role: 'Mesh.Admin', groupId: 'g-admins' },
    ]),
);

it('finds the approvers of a team across pages, and admins for every team', async () => {
    let clock = 0;
    const dir = new EntraDirectory(mappings, () => Promise.resolve('t0ken'), {
        baseUrl: base,
        ttlMs: 1000,
        now: () => clock,
    });
    const alpha = await dir.peopleWithRoles(['Mesh.Approver'], 'alpha');
    expect(alpha.map((p) => p.id).sort()).toEqual(['u-amir', 'u-ava']);
    expect(alpha.find((p) => p.id === 'u-ava')).toMatchObject({
        email: 'ava@contoso.com',
        msTeams: 'ava@contoso.com',
        roles: ['Mesh.Approver'],
        teams: ['alpha'],
    });
    expect((await dir.peopleWithRoles(['Mesh.Approver', 'Mesh.Admin'], 'beta')).map((p) => p.id).sort()).toEqual([
        'u-ada',
        'u-ava',
        'u-bea',
    ]);
    expect(calls.every((c) => c.auth === 'Bearer t0ken')).toBe(true);

    const before = calls.length;
    await dir.peopleWithRoles(['Mesh.Approver'], 'alpha');
    expect(calls.length).toBe(before); // cached within the TTL
    clock = 5000;
    await dir.peopleWithRoles(['Mesh.Approver'], 'alpha');
    expect(calls.length).toBeGreaterThan(before); // read again after it
});

it('merges every role a person holds and finds one person by id', async () => {
    const dir = new EntraDirectory(mappings, () => Promise.resolve('t'), { baseUrl: base });
    expect(await dir.person('u-ava')).toMatchObject({ roles: ['Mesh.Approver', 'Mesh.Admin'], teams: ['alpha'] });
    expect(await dir.person('u-nobody')).toBeUndefined();
});

it('surfaces a Graph failure, and does not remember it', async () => {
    const dir = new EntraDirectory([{ role: 'Mesh.Approver', groupId: 'g-missing' }], () => Promise.resolve('t'), {
        baseUrl: base,
    });
    await expect(dir.peopleWithRoles(['Mesh.Approver'], 'alpha')).rejects.toThrow(/Graph answered 404/);
    await expect(dir.peopleWithRoles(['Mesh.Approver'], 'alpha')).rejects.toThrow(/Graph answered 404/);
});

it('refuses a malformed MESH_DIRECTORY_GROUPS, naming the entry', () => {
    expect(() => parseGroupMappings('nope')).toThrow(/not JSON/);
    expect(() => parseGroupMappings('{}')).toThrow(/JSON array/);
    expect(() => parseGroupMappings('[{"role":"Mesh.Approver","groupId":"g"},{"role":"Boss","groupId":"g"}]')).toThrow(
        /\[1\]/,
    );
});
