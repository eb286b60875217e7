/**
 * Typed, frozen configuration parsed once from the environment. This module is the only reader of
 * `process.env` for these keys, so a misconfigured host fails at startup with every missing key named.
 */
import { join, resolve } from 'node:path';

import { parseRateLimit, type RateLimits } from '../domain/rateLimit';

/** Where bearer tokens come from and how to read them. */
export interface AuthConfig {
    /** Expected `iss` (Entra: `https://login.microsoftonline.com/<tenant>/v2.0`). */
    readonly issuer: string;
    /** Expected `aud` (the app registration's Application ID URI or client id). */
    readonly audience: string;
    /** JWKS endpoint holding the issuer's signing keys. */
    readonly jwksUri: string;
    /** Claim holding the caller's teams (default `groups`); the `team` claim is always read too. */
    readonly teamsClaim: string;
}

type Env = Readonly<Record<string, string | undefined>>;

let cachedAuth: AuthConfig | undefined;

/** Parses the `AUTH_*` settings from `env` without caching; throws one Error naming every missing key. */
export function parseAuthConfig(env: Env): AuthConfig {
    const missing = ['AUTH_ISSUER', 'AUTH_AUDIENCE', 'AUTH_JWKS_URI'].filter((k) => !env[k]?.trim());
    if (missing.length > 0) throw new Error(`Missing required configuration: ${missing.join(', ')}`);
    return Object.freeze({
        issuer: env.AUTH_ISSUER!.trim(),
        audience: env.AUTH_AUDIENCE!.trim(),
        jwksUri: env.AUTH_JWKS_URI!.trim(),
        teamsClaim: env.AUTH_TEAMS_CLAIM?.trim() || 'groups',
    });
}

/** The auth settings of this process, read from `process.env` on first use and cached. */
export function authConfig(): AuthConfig {
    cachedAuth ??= parseAuthConfig(process.env);
    return cachedAuth;
}

/** Forgets the cached configuration so a test can change the environment and read it again. */
export function resetConfigForTests(): void {
    cachedAuth = undefined;
    cachedStore = undefined;
    cachedLinks = undefined;
    cachedNotify = undefined;
    cachedReminder = undefined;
    cachedSecrets = undefined;
    cachedEventWebhook = null;
    cachedScale = undefined;
    cachedCors = undefined;
}

/** Cross-origin use (`MESH_CORS_ORIGINS`): the origins whose pages may call the API and load the widget. */
export interface CorsConfig {
    /** Exact origins (`https://plugins.example.com`), normalised; empty (the default): cross-origin use is off. */
    readonly origins: readonly string[];
}

let cachedCors: CorsConfig | undefined;

/**
 * Parses `MESH_CORS_ORIGINS` (comma-separated origins) without caching. Each must be an http(s) origin exactly
 * (scheme, host and port if any; no path, no trailing slash, no wildcard); the error names every bad one.
 */
export function parseCorsConfig(env: Env): CorsConfig {
    const list = (env.MESH_CORS_ORIGINS ?? '')
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean);
    const bad = list.filter((o) => normalOrigin(o) === undefined);
    if (bad.length)
        throw new Error(
            `MESH_CORS_ORIGINS must list origins such as https://plugins.example.com (scheme and host, optional port, ` +
                `no path or wildcard); not valid: ${bad.map((o) => `'${o.slice(0, 100)}'`).join(', ')}.`,
        );
    return Object.freeze({ origins: Object.freeze([...new Set(list.map((o) => normalOrigin(o)!))]) });
}

export function corsConfig(): CorsConfig {
    cachedCors ??= parseCorsConfig(process.env);
    return cachedCors;
}

/** `text` as a normal origin (lower-case scheme and host, default port dropped), or undefined when it is not one. */
function normalOrigin(text: string): string | undefined {
    let url: URL;
    try {
        url = new URL(text);
    } catch {
        return undefined;
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
    if (url.username || url.password || url.search || url.hash || !url.hostname) return undefined;
    // An origin has no path: `new URL` adds '/' itself, so only an explicit path (or trailing slash) is refused.
    if (!/^https?:\/\/[^/?#]+$/i.test(text)) return undefined;
    return url.origin;
}

/** Where runs, audit and policies are kept. */
export interface StoreConfig {
    /** `embedded` (SQLite under MESH_DATA_DIR, the default) or `cosmos`. */
    readonly kind: 'embedded' | 'cosmos';
    readonly dataDir: string;
}

let cachedStore: StoreConfig | undefined;

export function parseStoreConfig(env: Env): StoreConfig {
    const kind = (env.MESH_STORE?.trim() || 'embedded').toLowerCase();
    if (kind !== 'embedded' && kind !== 'cosmos')
        throw new Error(`MESH_STORE must be 'embedded' or 'cosmos', got '${kind}'.`);
    return Object.freeze({ kind, dataDir: env.MESH_DATA_DIR?.trim() || '.mesh-data' });
}

export function storeConfig(): StoreConfig {
    cachedStore ??= parseStoreConfig(process.env);
    return cachedStore;
}

/** Where approval-link signing keys come from. */
export interface LinkConfig {
    /** The secret holding the key set: JSON `{ "current": <private JWK>, "previous"?: <private JWK> }`. */
    readonly keysSecret: string;
    /**
     * Local operation only: the directory of `link-keys.json`, which the host creates when no secret holds the
     * keys (`MESH_KEYS_DIR`, else `.mesh-data/keys` with the embedded store). Undefined on Azure: the secret is
     * required there.
     */
    readonly keysDir: string | undefined;
    /** `local.settings.json`, whose `Values` the local secret store reads after the environment. */
    readonly settingsFile: string;
}

let cachedLinks: LinkConfig | undefined;

export function parseLinkConfig(env: Env, cwd = process.cwd()): LinkConfig {
    const dir = env.MESH_KEYS_DIR?.trim();
    const local = parseStoreConfig(env).kind === 'embedded';
    return Object.freeze({
        keysSecret: env.MESH_LINK_KEYS_SECRET?.trim() || 'mesh-link-keys',
        keysDir: dir ? resolve(cwd, dir) : local ? join(cwd, '.mesh-data', 'keys') : undefined,
        settingsFile: join(cwd, 'local.settings.json'),
    });
}

export function linkConfig(): LinkConfig {
    cachedLinks ??= parseLinkConfig(process.env);
    return cachedLinks;
}

/** Where named secrets come from: Key Vault when `KEY_VAULT_URL` is set, else the environment and local.settings.json. */
export interface SecretsConfig {
    /** `KEY_VAULT_URL` (`https://<vault>.vault.azure.net`); undefined: the local secret store. */
    readonly keyVaultUrl: string | undefined;
    /** How long a Key Vault secret is cached (`KEY_VAULT_CACHE_TTL_SECONDS`, default 300). */
    readonly cacheTtlSeconds: number;
}

let cachedSecrets: SecretsConfig | undefined;

export function parseSecretsConfig(env: Env): SecretsConfig {
    const problems: string[] = [];
    const url = env.KEY_VAULT_URL?.trim() || undefined;
    if (url !== undefined) {
        let parsed: URL | undefined;
        try {
            parsed = new URL(url);
        } catch {
            parsed = undefined;
        }
        if (parsed?.protocol !== 'https:') problems.push(`KEY_VAULT_URL must be an https URL, got '${url}'`);
    }
    const ttlText = env.KEY_VAULT_CACHE_TTL_SECONDS?.trim() || '300';
    const ttl = Number(ttlText);
    if (!Number.isFinite(ttl) || ttl < 0)
        problems.push(`KEY_VAULT_CACHE_TTL_SECONDS must be a number of seconds >= 0, got '${ttlText}'`);
    if (problems.length) throw new Error(`${problems.join('; ')}.`);
    return Object.freeze({ keyVaultUrl: url?.replace(/\/+$/, ''), cacheTtlSeconds: ttl });
}

export function secretsConfig(): SecretsConfig {
    cachedSecrets ??= parseSecretsConfig(process.env);
    return cachedSecrets;
}

/**
 * The environment, as the local secret store reads it (live, not a copy: on Azure, Key Vault references in app
 * settings arrive here too).
 */
export function secretEnvironment(): Env {
    return process.env;
}

/** Where notifications go (issue 4): the directory, the channels' endpoints and the links' public origin. */
export interface NotifyConfig {
    /** A JSON directory file (`MESH_DIRECTORY`); undefined: the built-in sample directory. */
    readonly directoryFile: string | undefined;
    /** Entra ID groups → roles and teams (`MESH_DIRECTORY_GROUPS`, JSON); when set, the directory is Entra ID. */
    readonly directoryGroups: string | undefined;
    /** The origin approval links point at: `PUBLIC_BASE_URL`, else the host's own (`WEBSITE_HOSTNAME`). */
    readonly publicBaseUrl: string | undefined;
    readonly smtp: { host: string; port: number; user?: string; password?: string } | undefined;
    readonly mailFrom: string;
    readonly teamsWebhookUrl: string | undefined;
    readonly slackWebhookUrl: string | undefined;
    readonly webhookUrl: string | undefined;
    readonly webhookSecret: string | undefined;
    /** Local operation (embedded store): every message is also kept in `<outboxDir>/outbox.jsonl`. */
    readonly outboxDir: string | undefined;
}

let cachedNotify: NotifyConfig | undefined;

export function parseNotifyConfig(env: Env, cwd = process.cwd()): NotifyConfig {
    const text = (k: string): string | undefined => env[k]?.trim() || undefined;
    const store = parseStoreConfig(env);
    const directory = text('MESH_DIRECTORY');
    const host = text('WEBSITE_HOSTNAME');
    const smtpHost = text('SMTP_HOST');
    const port = Number(text('SMTP_PORT') ?? '587');
    if (smtpHost && !(Number.isInteger(port) && port > 0 && port < 65_536))
        throw new Error(`SMTP_PORT must be a TCP port, got '${env.SMTP_PORT}'.`);
    const user = text('SMTP_USER');
    const password = text('SMTP_PASSWORD');
    return Object.freeze({
        directoryFile: directory ? resolve(cwd, directory) : undefined,
        directoryGroups: text('MESH_DIRECTORY_GROUPS'),
        publicBaseUrl: (text('PUBLIC_BASE_URL') ?? (host ? originOf(host) : undefined))?.replace(/\/+$/, ''),
        smtp: smtpHost
            ? { host: smtpHost, port, ...(user ? { user } : {}), ...(password ? { password } : {}) }
            : undefined,
        mailFrom: text('MAIL_FROM') ?? 'Mesh Orchestrator <mesh@localhost>',
        teamsWebhookUrl: text('TEAMS_WEBHOOK_URL'),
        slackWebhookUrl: text('SLACK_WEBHOOK_URL'),
        webhookUrl: text('NOTIFY_WEBHOOK_URL'),
        webhookSecret: text('NOTIFY_WEBHOOK_SECRET'),
        outboxDir: store.kind === 'embedded' ? resolve(cwd, store.dataDir) : undefined,
    });
}

/** `WEBSITE_HOSTNAME` is a bare host (and port): loopback is the embedded host over http, anything else https. */
function originOf(host: string): string {
    const local = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/i.test(host);
    return `${local ? 'http' : 'https'}://${host}`;
}

export function notifyConfig(): NotifyConfig {
    cachedNotify ??= parseNotifyConfig(process.env);
    return cachedNotify;
}

/** When approvers are reminded of a checkpoint's deadline (issue 4). */
export interface ReminderConfig {
    /**
     * The reminder timer's schedule (`MESH_REMINDER_SCHEDULE`, NCRONTAB with seconds; default every minute). Read
     * here and passed to the trigger as is: the embedded host's timer does not resolve `%SETTING%` schedules.
     */
    readonly schedule: string;
    /** A checkpoint is reminded once at most this fraction of its deadline's window remains (`MESH_REMINDER_FRACTION`). */
    readonly fraction: number;
}

export const DEFAULT_REMINDER_SCHEDULE = '0 */1 * * * *';
export const DEFAULT_REMINDER_FRACTION = 0.25;

let cachedReminder: ReminderConfig | undefined;

export function parseReminderConfig(env: Env): ReminderConfig {
    const schedule = env.MESH_REMINDER_SCHEDULE?.trim() || DEFAULT_REMINDER_SCHEDULE;
    const text = env.MESH_REMINDER_FRACTION?.trim();
    const fraction = text ? Number(text) : DEFAULT_REMINDER_FRACTION;
    if (!(Number.isFinite(fraction) && fraction > 0 && fraction < 1))
        throw new Error(`MESH_REMINDER_FRACTION must be a number between 0 and 1 (exclusive), got '${text}'.`);
    return Object.freeze({ schedule, fraction });
}

export function reminderConfig(): ReminderConfig {
    cachedReminder ??= parseReminderConfig(process.env);
    return cachedReminder;
}

/**
 * The sweep that reconciles live runs whose durable instance ended outside the API (`MESH_RECONCILE_SCHEDULE`,
 * NCRONTAB with seconds; default every 5 minutes). Decisions, stops, resumes and status reads reconcile at once;
 * the sweep catches the runs nobody touches (and frees their admission slots).
 */
export const DEFAULT_RECONCILE_SCHEDULE = '0 */5 * * * *';

export function reconcileSchedule(env: Env = process.env): string {
    return env.MESH_RECONCILE_SCHEDULE?.trim() || DEFAULT_RECONCILE_SCHEDULE;
}

/**
 * The generic event webhook (issue 4): every lifecycle CloudEvent is POSTed to `MESH_EVENT_WEBHOOK_URL`, signed with
 * `MESH_EVENT_WEBHOOK_SECRET`. Undefined when neither is set (forwarding is off).
 */
export interface EventWebhookConfig {
    readonly url: string;
    readonly secret: string;
}

/** `null`: not read yet (undefined is a valid result: forwarding off). */
let cachedEventWebhook: EventWebhookConfig | undefined | null = null;

/**
 * Parses `MESH_EVENT_WEBHOOK_URL` and `MESH_EVENT_WEBHOOK_SECRET` without caching. Neither set: undefined. One
 * without the other, or a URL that is not http(s), is a configuration error.
 */
export function parseEventWebhookConfig(env: Env): EventWebhookConfig | undefined {
    const url = env.MESH_EVENT_WEBHOOK_URL?.trim() || undefined;
    const secret = env.MESH_EVENT_WEBHOOK_SECRET?.trim() || undefined;
    if (url === undefined && secret === undefined) return undefined;
    if (url === undefined)
        throw new Error('Missing required configuration: MESH_EVENT_WEBHOOK_URL (MESH_EVENT_WEBHOOK_SECRET is set)');
    if (secret === undefined)
        throw new Error('Missing required configuration: MESH_EVENT_WEBHOOK_SECRET (MESH_EVENT_WEBHOOK_URL is set)');
    let parsed: URL | undefined;
    try {
        parsed = new URL(url);
    } catch {
        parsed = undefined;
    }
    if (parsed?.protocol !== 'https:' && parsed?.protocol !== 'http:')
        throw new Error(`MESH_EVENT_WEBHOOK_URL must be an http(s) URL, got '${url}'.`);
    return Object.freeze({ url, secret });
}

export function eventWebhookConfig(): EventWebhookConfig | undefined {
    if (cachedEventWebhook === null) cachedEventWebhook = parseEventWebhookConfig(process.env);
    return cachedEventWebhook;
}

/** Admission, rate limits and retention (issue 5). */
export interface ScaleConfig {
    /** How many workflows may execute at once (`MESH_RUN_CAPACITY`, default 1000); the rest wait `Queued`, in order. */
    readonly capacity: number;
    /** How long one admission delivery waits for a slot before the message goes back to the queue (`MESH_ADMISSION_WAIT_MS`). */
    readonly admissionWaitMs: number;
    /**
     * After this many deliveries without a free slot the admitter sends the run to the back of the queue instead of
     * waiting again (`MESH_ADMISSION_REQUEUE_AFTER`, default 1,900: below the queue's 2,000 maximum deliveries).
     */
    readonly requeueAfterDeliveries: number;
    /** The admission queue (`MESH_ADMISSION_QUEUE`, default `mesh-admission`): a Service Bus queue on Azure. */
    readonly admissionQueue: string;
    /** Per-user and per-team limits (`MESH_RATE_LIMIT_USER`, `MESH_RATE_LIMIT_TEAM`: `<requests>/<seconds>`, or `off`). */
    readonly rateLimits: RateLimits;
    /** How long ended runs, their audit trail and history are kept (`MESH_RETENTION_DAYS`, default 90; fractions allowed). */
    readonly retentionMs: number;
    /** When the retention purge runs (`MESH_RETENTION_SCHEDULE`, NCRONTAB with seconds; default hourly). */
    readonly retentionSchedule: string;
}

export const DEFAULT_RETENTION_SCHEDULE = '0 17 * * * *';

let cachedScale: ScaleConfig | undefined;

export function parseScaleConfig(env: Env): ScaleConfig {
    const problems: string[] = [];
    const number = (key: string, fallback: number, ok: (n: number) => boolean, rule: string): number => {
        const text = env[key]?.trim();
        if (!text) return fallback;
        const n = Number(text);
        if (ok(n)) return n;
        problems.push(`${key} must be ${rule}, got '${text}'`);
        return fallback;
    };
    const rate = (key: string, fallback: RateLimits['user']) => {
        try {
            return parseRateLimit(env[key], fallback);
        } catch (e: unknown) {
            problems.push(`${key}: ${(e as Error).message}`);
            return undefined;
        }
    };
    const capacity = number('MESH_RUN_CAPACITY', 1000, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');
    const admissionWaitMs = number('MESH_ADMISSION_WAIT_MS', 5_000, (n) => Number.isInteger(n) && n >= 0, 'ms >= 0');
    const requeueAfterDeliveries = number(
        'MESH_ADMISSION_REQUEUE_AFTER',
        1900,
        (n) => Number.isInteger(n) && n >= 1,
        'an integer >= 1',
    );
    const days = number('MESH_RETENTION_DAYS', 90, (n) => Number.isFinite(n) && n > 0, 'a number of days > 0');
    const user = rate('MESH_RATE_LIMIT_USER', { limit: 1200, windowMs: 60_000 });
    const team = rate('MESH_RATE_LIMIT_TEAM', { limit: 6000, windowMs: 60_000 });
    if (problems.length) throw new Error(`Invalid configuration: ${problems.join('; ')}.`);
    return Object.freeze({
        capacity,
        admissionWaitMs,
        requeueAfterDeliveries,
        admissionQueue: env.MESH_ADMISSION_QUEUE?.trim() || 'mesh-admission',
        rateLimits: Object.freeze({ ...(user ? { user } : {}), ...(team ? { team } : {}) }),
        retentionMs: Math.round(days * 86_400_000),
        retentionSchedule: env.MESH_RETENTION_SCHEDULE?.trim() || DEFAULT_RETENTION_SCHEDULE,
    });
}

export function scaleConfig(): ScaleConfig {
    cachedScale ??= parseScaleConfig(process.env);
    return cachedScale;
}

/** Where spans go (SPEC "Observability (v1.1)"); neither exporter set: no tracer provider at all. */
export interface TracingConfig {
    /** `OTEL_SERVICE_NAME`, default `mesh-orchestrator`. */
    readonly serviceName: string;
    /** `APPLICATIONINSIGHTS_CONNECTION_STRING`: export to Azure Monitor (a secret: never logged). */
    readonly appInsightsConnectionString?: string;
    /**
     * Where OTLP/HTTP trace exports are POSTed: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else
     * `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces` (the OpenTelemetry rule).
     */
    readonly otlpTracesUrl?: string;
}

export const DEFAULT_SERVICE_NAME = 'mesh-orchestrator';

/** Parses the tracing settings; throws when an OTLP endpoint is set but is not an http(s) URL. */
export function parseTracingConfig(env: Env): TracingConfig {
    const connection = env.APPLICATIONINSIGHTS_CONNECTION_STRING?.trim();
    const signal = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
    const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
    for (const [name, value] of [
        ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', signal],
        ['OTEL_EXPORTER_OTLP_ENDPOINT', base],
    ] as const) {
        if (value && !isHttpUrlText(value))
            throw new Error(
                `${name} must be an http(s) URL of an OTLP/HTTP collector (e.g. http://localhost:4318), ` +
                    'or unset for no OTLP export',
            );
    }
    const otlpTracesUrl = signal || (base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined);
    return Object.freeze({
        serviceName: env.OTEL_SERVICE_NAME?.trim() || DEFAULT_SERVICE_NAME,
        ...(connection ? { appInsightsConnectionString: connection } : {}),
        ...(otlpTracesUrl ? { otlpTracesUrl } : {}),
    });
}

/** The tracing settings of this process (read when tracing starts; not cached: it starts once). */
export function tracingConfig(): TracingConfig {
    return parseTracingConfig(process.env);
}

function isHttpUrlText(text: string): boolean {
    try {
        const url = new URL(text);
        return url.protocol === 'http:' || url.protocol === 'https:';
    } catch {
        return false;
    }
}
