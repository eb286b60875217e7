/**
 * One check of the whole configuration, run when the app starts (functions/hooks/checkConfiguration.ts registers it
 * as an `appStart` hook), so a misconfigured host stops at once with every problem named instead of answering 500s
 * and failing timers later. It runs every parser the adapters use (each reports its own settings) and then the
 * combinations no single parser can see, e.g. the Cosmos DB store with encryption on but neither Key Vault nor local
 * keys. Messages name settings and say what to do; they never quote secret values.
 */
import { parseAuditChainConfig } from './audit/config';
import {
    parseAuthConfig,
    parseCorsConfig,
    parseEventWebhookConfig,
    parseLinkConfig,
    parseNotifyConfig,
    parseReminderConfig,
    parseScaleConfig,
    parseSecretsConfig,
    parseStoreConfig,
    parseTracingConfig,
} from './config';
import { parseCosmosConfig } from './cosmos/config';
import { parseCryptoConfig } from './crypto/config';
import { decisionKeysSecret } from './crypto/decisionSeals';
import { parseGroupMappings } from './directory/entraDirectory';
import { parseEngineConfig } from './engines/config';
import { parseEventGridConfig } from './eventGrid/config';
import { LocalSettingsSecretStore } from './secrets/localSettingsSecretStore';

type Env = Readonly<Record<string, string | undefined>>;

/** Thrown at start-up: the message lists every problem, one per line. */
export class ConfigurationError extends Error {
    constructor(readonly problems: readonly string[]) {
        super(
            `Invalid configuration: the app cannot start (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
                problems.map((p) => `  - ${p}`).join('\n'),
        );
        this.name = 'ConfigurationError';
    }
}

/**
 * Every problem of the configuration in `env` (empty when it is sound). `cwd` is where relative paths and
 * `local.settings.json` are found, as the parsers take it.
 */
export async function configurationProblems(env: Env, cwd = process.cwd()): Promise<string[]> {
    const problems: string[] = [];
    const parse = <T>(fn: () => T): T | undefined => {
        try {
            return fn();
        } catch (e: unknown) {
            const problem = e instanceof Error ? e.message.replace(/\.$/, '') : String(e);
            // Several parsers read MESH_STORE: its problem is named once.
            if (!problems.includes(problem)) problems.push(problem);
            return undefined;
        }
    };
    parse(() => parseAuthConfig(env));
    const store = parse(() => parseStoreConfig(env));
    const cosmos = store?.kind === 'cosmos' ? parse(() => parseCosmosConfig(env)) : undefined;
    if (cosmos && cosmos.key === undefined && cosmos.endpoint.startsWith('http:'))
        problems.push(
            'COSMOS_KEY is required with a plain http:// COSMOS_ENDPOINT (the local Cosmos-API server): Entra ID ' +
                'tokens are sent over https only',
        );
    const secrets = parse(() => parseSecretsConfig(env));
    const links = parse(() => parseLinkConfig(env, cwd));
    const crypto = parse(() => parseCryptoConfig(env, cwd));
    parse(() => parseNotifyConfig(env, cwd));
    parse(() => parseReminderConfig(env));
    parse(() => parseEventWebhookConfig(env));
    parse(() => parseCorsConfig(env));
    parse(() => parseScaleConfig(env));
    parse(() => parseEngineConfig(env));
    parse(() => parseEventGridConfig(env));
    parse(() => parseTracingConfig(env));
    const chain = parse(() => parseAuditChainConfig(env, cwd));
    if (chain?.anchor.kind === 'none')
        problems.push(
            "MESH_AUDIT_ANCHOR_CONTAINER_URL is required: each run's audit head is anchored outside the audit store " +
                '(on Azure the WORM blob container from the Bicep; for local operation set MESH_KEYS_DIR or ' +
                'MESH_AUDIT_ANCHOR_DIR)',
        );
    const groups = env.MESH_DIRECTORY_GROUPS?.trim();
    if (groups) parse(() => parseGroupMappings(groups));

    const base = env.PUBLIC_BASE_URL?.trim();
    if (base && !isHttpUrl(base))
        problems.push('PUBLIC_BASE_URL must be an http(s) URL (the public origin of this app)');
    if (!base && !env.WEBSITE_HOSTNAME?.trim())
        problems.push(
            'PUBLIC_BASE_URL is required: approval links and channel messages need the public origin of this app ' +
                '(e.g. https://mesh.example.com; WEBSITE_HOSTNAME serves when the platform sets it)',
        );

    // Keys: Key Vault (KEY_VAULT_URL), a secret in the app settings, or local keys (MESH_KEYS_DIR: the embedded host
    // always sets it; the embedded store implies it). Anything else fails at the first seal or link: say so now.
    if (secrets && links && secrets.keyVaultUrl === undefined && links.keysDir === undefined) {
        const local = new LocalSettingsSecretStore(env, links.settingsFile);
        const missing: string[] = [];
        if (crypto?.enabled && (await local.get(crypto.keysSecret)) === undefined)
            missing.push(`the data key ring '${crypto.keysSecret}' (encryption is on: MESH_ENCRYPTION)`);
        if ((await local.get(links.keysSecret)) === undefined)
            missing.push(`the approval-link signing keys '${links.keysSecret}'`);
        if (chain && (await local.get(chain.keysSecret)) === undefined)
            missing.push(`the audit chain keys '${chain.keysSecret}'`);
        const decisions = decisionKeysSecret(env);
        if ((await local.get(decisions)) === undefined) missing.push(`the decision attestation keys '${decisions}'`);
        if (missing.length > 0)
            problems.push(
                `KEY_VAULT_URL is required: MESH_STORE=${store?.kind ?? 'cosmos'} needs ${missing.join(' and ')}. ` +
                    'On Azure set KEY_VAULT_URL to the Key Vault holding them; for local operation set MESH_KEYS_DIR ' +
                    '(local keys are created there, as with the embedded store)',
            );
    }
    return problems;
}

/** Throws one ConfigurationError listing every problem of `env`'s configuration; resolves when it is sound. */
export async function assertValidConfiguration(env: Env, cwd = process.cwd()): Promise<void> {
    const problems = await configurationProblems(env, cwd);
    if (problems.length > 0) throw new ConfigurationError(problems);
}

/** `assertValidConfiguration` of this process's environment: what the app's `appStart` hook runs. */
export function checkConfiguration(): Promise<void> {
    return assertValidConfiguration(process.env);
}

function isHttpUrl(text: string): boolean {
    try {
        const url = new URL(text);
        return url.protocol === 'https:' || url.protocol === 'http:';
    } catch {
        return false;
    }
}

/**
 * A setting a trigger reads when it registers (at module load, before any `appStart` hook): `read()`, or `fallback`
 * when the configuration is bad, so loading goes on and the start-up check reports every problem at once instead of
 * the first module's one. The host never starts with the fallback: the check stops it.
 */
export function atRegistration<T>(read: () => T, fallback: T): T {
    try {
        return read();
    } catch {
        return fallback;
    }
}
