/**
 * The embedded host's local sign-in for `GET /dashboard`: with no sign-in configured (the host trusts its own local
 * identity provider), a person on this machine picks someone of the local directory (`MESH_DIRECTORY`) and the
 * host mints them a token. It is a host route, so it exists only on the embedded host, never on Azure; it answers
 * loopback callers only, and minting is a POST with a JSON body (a cross-site form cannot send one without a
 * preflight the host never answers) from the host's own origin.
 */
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';

import { parseDirectory } from '../../adapters/directory/jsonDirectory';
import type { Person } from '../../domain/ports';
import { mintToken, type SigningKey } from '../identity';
import { readBody } from './body';

export const LOCAL_SIGN_IN_PATH = '/.mesh/local-sign-in';

const TTL_SECONDS = 3600;

export interface LocalSignInOptions {
    key: SigningKey;
    /** The directory file; undefined: nobody to pick. */
    directoryFile: () => string | undefined;
}

export function localSignIn(o: LocalSignInOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
    return async (req, res) => {
        const method = (req.method ?? 'GET').toUpperCase();
        if (!isLoopback(req.socket.remoteAddress)) {
            req.resume();
            return answer(res, 403, 'FORBIDDEN', 'Local sign-in answers this machine only.');
        }
        if (method === 'GET') {
            const people = await directory(o.directoryFile());
            return answer(res, 200, null, 'ok', {
                people: people.map((p) => ({ id: p.id, name: p.name, roles: p.roles, teams: p.teams })),
            });
        }
        if (method !== 'POST') {
            req.resume();
            return answer(res, 405, 'NOT_FOUND', `Method ${method} is not allowed here.`, null, { allow: 'GET, POST' });
        }
        const origin = req.headers.origin;
        if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) {
            req.resume();
            return answer(res, 403, 'FORBIDDEN', 'Local sign-in answers the host’s own pages only.');
        }
        if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
            req.resume();
            return answer(res, 400, 'VALIDATION_FAILED', 'Send {"id": "<person id>"} as application/json.', {
                errors: [{ path: '/', message: 'must be application/json' }],
            });
        }
        let id: unknown;
        try {
            id = (JSON.parse((await readBody(req, 4096)).toString('utf8')) as { id?: unknown } | null)?.id;
        } catch {
            id = undefined;
        }
        if (typeof id !== 'string' || !id)
            return answer(res, 400, 'VALIDATION_FAILED', 'Name the person to sign in as.', {
                errors: [{ path: '/id', message: 'must be the id of a person of the local directory' }],
            });
        const person = (await directory(o.directoryFile())).find((p) => p.id === id);
        if (!person) return answer(res, 404, 'NOT_FOUND', `The local directory has no person '${id}'.`);
        const token = await mintToken(o.key, {
            sub: person.id,
            name: person.name,
            roles: person.roles,
            teams: person.teams,
            ttlSeconds: TTL_SECONDS,
        });
        return answer(res, 200, null, 'ok', {
            token,
            expiresAt: new Date(Date.now() + TTL_SECONDS * 1000).toISOString(),
        });
    };
}

async function directory(file: string | undefined): Promise<Person[]> {
    if (!file) return [];
    return parseDirectory(JSON.parse(await fsp.readFile(file, 'utf8')), file);
}

function isLoopback(address: string | undefined): boolean {
    return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

function answer(
    res: ServerResponse,
    status: number,
    code: string | null,
    message: string,
    data: unknown = null,
    headers: Record<string, string> = {},
): void {
    const correlationID = randomUUID();
    res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
        'x-correlation-id': correlationID,
        ...headers,
    });
    res.end(JSON.stringify({ error_code: code, message, correlationID, data }));
}
