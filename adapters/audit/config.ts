/**
 * The audit chain's settings: where its MAC keys come from and where each run's head is anchored. This module is the
 * only reader of `MESH_AUDIT_KEYS_SECRET` and `MESH_AUDIT_ANCHOR_*`; the key directory is the approval-link keys' one
 * (`MESH_KEYS_DIR`, else `.mesh-data/keys` with the embedded store), as adapters/config.ts parses it.
 *
 * - `MESH_AUDIT_KEYS_SECRET` (default `mesh-audit-keys`; found in the environment as `MESH_AUDIT_KEYS`): the key ring.
 * - `MESH_AUDIT_ANCHOR_CONTAINER_URL`: the anchors' blob container on Azure (`https://<account>.blob.core.windows.net/
 *   <container>`), reached with the app's identity (`DefaultAzureCredential`). Or `MESH_AUDIT_ANCHOR_CONNECTION`, a
 *   storage connection string (Azurite), with `MESH_AUDIT_ANCHOR_CONTAINER` (default `audit-anchors`).
 * - Else the local anchor store, `audit-anchors.sqlite` in `MESH_AUDIT_ANCHOR_DIR` (default: the key directory),
 *   which should lie outside `MESH_DATA_DIR`.
 */
import { resolve } from 'node:path';

import { parseLinkConfig } from '../config';

type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_AUDIT_KEYS_SECRET = 'mesh-audit-keys';
export const DEFAULT_ANCHOR_CONTAINER = 'audit-anchors';

export type AnchorConfig =
    | { readonly kind: 'blob'; readonly containerUrl: string }
    | { readonly kind: 'blob'; readonly connection: string; readonly container: string }
    | { readonly kind: 'file'; readonly dir: string }
    | { readonly kind: 'none' };

export interface AuditChainConfig {
    readonly keysSecret: string;
    /** Local operation only: the directory of `audit-keys.json`, created when no secret holds the ring. */
    readonly keysDir: string | undefined;
    readonly anchor: AnchorConfig;
}

/** Parses the settings without caching. */
export function parseAuditChainConfig(env: Env, cwd = process.cwd()): AuditChainConfig {
    const keysDir = parseLinkConfig(env, cwd).keysDir;
    const containerUrl = env.MESH_AUDIT_ANCHOR_CONTAINER_URL?.trim();
    const connection = env.MESH_AUDIT_ANCHOR_CONNECTION?.trim();
    const dir = env.MESH_AUDIT_ANCHOR_DIR?.trim();
    let anchor: AnchorConfig;
    if (containerUrl) {
        if (!/^https:\/\/|^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(containerUrl))
            throw new Error('MESH_AUDIT_ANCHOR_CONTAINER_URL must be an https URL (http on loopback only).');
        anchor = { kind: 'blob', containerUrl };
    } else if (connection) {
        anchor = {
            kind: 'blob',
            connection,
            container: env.MESH_AUDIT_ANCHOR_CONTAINER?.trim() || DEFAULT_ANCHOR_CONTAINER,
        };
    } else if (dir) anchor = { kind: 'file', dir: resolve(cwd, dir) };
    else if (keysDir) anchor = { kind: 'file', dir: keysDir };
    else anchor = { kind: 'none' };
    return Object.freeze({
        keysSecret: env.MESH_AUDIT_KEYS_SECRET?.trim() || DEFAULT_AUDIT_KEYS_SECRET,
        keysDir,
        anchor: Object.freeze(anchor),
    });
}

let cached: AuditChainConfig | undefined;

/** The settings of this process, read from `process.env` on first use and cached. */
export function auditChainConfig(): AuditChainConfig {
    cached ??= parseAuditChainConfig(process.env);
    return cached;
}
