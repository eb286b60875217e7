/** POSTing a notification to a webhook, with retries and backoff (3 attempts in all). */
export interface RetryOptions {
    attempts?: number;
    /** The wait before the second attempt; doubled before each further one. */
    backoffMs?: number;
    timeoutMs?: number;
    sleep?: (ms: number) => Promise<void>;
}

/** A failure the receiver will keep giving (4xx other than 408/429): retrying cannot help. */
class PermanentError extends Error {}

export async function postWithRetry(
    url: string,
    body: string,
    headers: () => Record<string, string>,
    opts: RetryOptions = {},
): Promise<void> {
    const attempts = opts.attempts ?? 3;
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    let wait = opts.backoffMs ?? 500;
    let last: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
        try {
            const r = await fetch(url, {
                method: 'POST',
                headers: { 'content-type': 'application/json', ...headers() },
                body,
                signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
            });
            await r.arrayBuffer().catch(() => undefined);
            if (r.ok) return;
            const error = new Error(`${new URL(url).host} answered HTTP ${r.status}`);
            if (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429)
                throw new PermanentError(error.message);
            last = error;
        } catch (e: unknown) {
            if (e instanceof PermanentError) throw new Error(e.message);
            last = e;
        }
        if (attempt < attempts) {
            await sleep(wait);
            wait *= 2;
        }
    }
    throw new Error(`gave up after ${attempts} attempts: ${last instanceof Error ? last.message : String(last)}`);
}
