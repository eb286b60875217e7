/**
 * Where the five mesh engines live, parsed once from the environment into a frozen object. A host missing any
 * engine URL fails at startup with every missing key named, rather than at the first run that reaches it.
 */
import { type Stage, STAGES } from '../../domain/pipeline';

export interface EngineConfig {
    /** Base URL of each stage's engine (`ENGINE_URL_<STAGE>`); the client appends `/v1/invoke`. */
    readonly urls: Readonly<Record<Stage, string>>;
    /** Budget of one engine call (`ENGINE_TIMEOUT_MS`, default 10000). */
    readonly timeoutMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_ENGINE_TIMEOUT_MS = 10_000;
/** Longer than any sane engine call, and far below what a timer accepts (2^31 - 1 ms). */
const MAX_ENGINE_TIMEOUT_MS = 10 * 60_000;

/** The setting that holds `stage`'s engine URL: `ENGINE_URL_GENERATION`, … */
export function engineUrlKey(stage: Stage): string {
    return `ENGINE_URL_${stage.toUpperCase()}`;
}

let cached: EngineConfig | undefined;

/**
 * Parses the `ENGINE_*` settings from `env` without caching. Throws one Error naming every missing key and every
 * invalid one. Values are never quoted back: an engine URL may carry a key in its query.
 */
export function parseEngineConfig(env: Env): EngineConfig {
    const missing = STAGES.map(engineUrlKey).filter((k) => !env[k]?.trim());

    const invalid: string[] = [];
    const urls = {} as Record<Stage, string>;
    for (const stage of STAGES) {
        const key = engineUrlKey(stage);
        const value = env[key]?.trim();
        if (!value) continue;
        if (isHttpUrl(value)) urls[stage] = value;
        else invalid.push(`${key} must be an absolute http(s) URL without credentials`);
    }
    const rawTimeout = env.ENGINE_TIMEOUT_MS?.trim();
    const timeoutMs = rawTimeout ? Number(rawTimeout) : DEFAULT_ENGINE_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_ENGINE_TIMEOUT_MS) {
        invalid.push(`ENGINE_TIMEOUT_MS must be an integer from 1 to ${MAX_ENGINE_TIMEOUT_MS}`);
    }
    // Every problem at once: the missing keys first (the message tests and operators know), then the invalid ones.
    if (missing.length > 0)
        throw new Error([`Missing required configuration: ${missing.join(', ')}`, ...invalid].join('; '));
    if (invalid.length > 0) throw new Error(`Invalid configuration: ${invalid.join('; ')}`);
    return Object.freeze({ urls: Object.freeze(urls), timeoutMs });
}

/** The engine settings of this process, read from `process.env` on first use and cached. */
export function engineConfig(): EngineConfig {
    cached ??= parseEngineConfig(process.env);
    return cached;
}

/** Forgets the cached configuration so a test can change the environment and read it again. */
export function resetEngineConfigForTests(): void {
    cached = undefined;
}

function isHttpUrl(value: string): boolean {
    try {
        const url = new URL(value);
        // fetch refuses URLs with credentials, so catch them here, at startup.
        return (url.protocol === 'http:' || url.protocol === 'https:') && !url.username && !url.password;
    } catch {
        return false;
    }
}
