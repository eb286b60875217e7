/**
 * The local secret store: the environment, then the `Values` of `local.settings.json` (as `func start` reads
 * them). A secret named like a Key Vault secret (`mesh-link-keys`) is also found under its environment-variable
 * spelling (`MESH_LINK_KEYS`), so one name serves Key Vault, app settings and local files.
 */
import { readFileSync } from 'node:fs';

import type { SecretStore } from '../../domain/ports';

type Env = Readonly<Record<string, string | undefined>>;

/** `mesh-link-keys` -> `MESH_LINK_KEYS`. */
export function envNameOf(secretName: string): string {
    return secretName.replace(/[^A-Za-z0-9]/g, '_').toUpperCase();
}

export class LocalSettingsSecretStore implements SecretStore {
    private values: Env | undefined;

    /** `settingsFile` is read once, on the first lookup the environment does not answer; a missing file is empty. */
    constructor(
        private readonly env: Env,
        private readonly settingsFile?: string,
    ) {}

    get(name: string): Promise<string | undefined> {
        return new Promise((resolve) => resolve(this.lookup(name)));
    }

    private lookup(name: string): string | undefined {
        const names = [...new Set([name, envNameOf(name)])];
        for (const source of [this.env, this.settings()]) {
            for (const key of names) {
                const value = source[key];
                if (value !== undefined && value.trim() !== '') return value;
            }
        }
        return undefined;
    }

    private settings(): Env {
        if (this.values) return this.values;
        if (!this.settingsFile) return (this.values = {});
        let text: string;
        try {
            text = readFileSync(this.settingsFile, 'utf8');
        } catch (e: unknown) {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return (this.values = {});
            throw e;
        }
        let parsed: unknown;
        try {
            parsed = JSON.parse(text);
        } catch {
            // Never quote the file: it holds secrets.
            throw new Error(`${this.settingsFile} is not valid JSON`);
        }
        const values = (parsed as { Values?: unknown } | null)?.Values;
        const out: Record<string, string> = {};
        if (typeof values === 'object' && values !== null)
            for (const [k, v] of Object.entries(values)) if (typeof v === 'string') out[k] = v;
        return (this.values = Object.freeze(out));
    }
}
