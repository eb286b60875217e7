/**
 * What the HTTP benches share: an API client over the host's public API with locally minted tokens, a bounded
 * worker pool, percentiles, a poll-until-done loop, status readers that time `GET /pipeline/status/{id}` under load,
 * and the host's RSS from /proc.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadOrCreateSigningKey, mintToken } from '../../local/identity';
import { HostProcess, json } from '../support/hostProcess';

/** The statuses a run ends in when something went wrong: any of them makes a bench's numbers meaningless. */
export const TERMINAL_FAILURES = 'Failed,Aborted,Rejected,TimedOut';

export interface BenchUser {
    sub: string;
    roles: string[];
    teams: string[];
}

export interface Envelope<T> {
    error_code: string | null;
    message: string;
    data: T;
}
export interface NextAction {
    checkpointId: string;
    stage: string;
    position: string;
}
export interface Summary {
    orchestrationID: string;
    status: string;
    riskLevel: string;
    updatedAt: string;
    nextAction: NextAction | null;
}

/** Bearer tokens for `users`, signed with the host's local identity key (under `<dataDir>/keys`). */
export async function mintTokens<U extends string>(
    dataDir: string,
    users: Record<U, BenchUser>,
): Promise<Record<U, string>> {
    const signing = await loadOrCreateSigningKey(join(dataDir, 'keys'));
    const tokens = {} as Record<U, string>;
    for (const [name, u] of Object.entries<BenchUser>(users))
        tokens[name as U] = await mintToken(signing, { ...u, ttlSeconds: 3600 });
    return tokens;
}

export class Client<U extends string> {
    /** `reader` lists runs and reads statuses: its roles and teams decide which runs the bench sees. */
    constructor(
        private readonly host: HostProcess,
        private readonly tokens: Record<U, string>,
        readonly reader: U,
    ) {}

    /** One API call as `user`, whatever it answers. */
    send<T>(user: U, method: string, path: string, body?: unknown): Promise<{ status: number; body: Envelope<T> }> {
        return json<Envelope<T>>(this.host.origin, method, path, body, {
            authorization: `Bearer ${this.tokens[user]}`,
        });
    }

    /** One API call as `user`; throws unless the answer has the `expected` status. */
    async call<T>(user: U, method: string, path: string, expected: number, body?: unknown): Promise<T> {
        const r = await this.send<T>(user, method, path, body);
        if (r.status !== expected)
            throw new Error(`${method} ${path} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
        return r.body.data;
    }

    /** Every run of the given statuses the reader may see, following continuation tokens. */
    async listAll(statuses: string): Promise<Summary[]> {
        const out: Summary[] = [];
        let token: string | undefined;
        do {
            const more = token ? `&continuationToken=${encodeURIComponent(token)}` : '';
            const page = await this.call<{ items: Summary[]; continuationToken?: string }>(
                this.reader,
                'GET',
                `/pipeline?status=${statuses}&limit=200${more}`,
                200,
            );
            out.push(...page.items);
            token = page.continuationToken;
        } while (token);
        return out;
    }

    /** Throws if any run ended anywhere but Completed: the numbers would mean nothing. */
    async assertNoFailures(): Promise<void> {
        const page = await this.call<{ items: Summary[] }>(
            this.reader,
            'GET',
            `/pipeline?status=${TERMINAL_FAILURES}&limit=5`,
            200,
        );
        if (page.items.length) throw new Error(`runs ended badly: ${JSON.stringify(page.items)}`);
    }
}

/** Runs `fn` over `items` with at most `limit` calls at once; `worker` (0…limit-1) says which of them runs it. */
export async function pool<T>(
    items: readonly T[],
    limit: number,
    fn: (item: T, worker: number) => Promise<void>,
): Promise<void> {
    let next = 0;
    await Promise.all(
        Array.from({ length: limit }, async (_, worker) => {
            while (next < items.length) await fn(items[next++]!, worker);
        }),
    );
}

export function percentile(sorted: number[], p: number): number {
    if (!sorted.length) return NaN;
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function p50p99(values: number[]): string {
    const sorted = [...values].sort((a, b) => a - b);
    return `${percentile(sorted, 50).toFixed(0)} / ${percentile(sorted, 99).toFixed(0)}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** Polls `check` (which answers a progress line, or `true` when done) until done; throws after `timeoutMs`. */
export async function until(
    what: string,
    check: () => Promise<string | true>,
    o: { timeoutMs: number; pollMs: number; readers?: StatusReaders },
): Promise<void> {
    const deadline = Date.now() + o.timeoutMs;
    let progress = '';
    while (Date.now() < deadline) {
        o.readers?.check();
        const r = await check();
        if (r === true) return;
        progress = r;
        await sleep(o.pollMs);
    }
    throw new Error(`timed out waiting for ${what}; last: ${progress}`);
}

/** Readers loop over random submitted runs, timing GET /pipeline/status/{id}; samples go to the current bucket. */
export class StatusReaders {
    readonly samples = new Map<string, number[]>();
    private bucket: number[] = [];
    /** The first failed read: the bench stops on it rather than report numbers that hide errors. */
    error: Error | undefined;
    private stopped = false;
    private readonly done: Promise<void>;

    constructor(client: Client<string>, ids: readonly string[], readers: number) {
        this.done = Promise.all(
            Array.from({ length: readers }, async () => {
                while (!this.stopped) {
                    if (!ids.length) {
                        await sleep(5);
                        continue;
                    }
                    const id = ids[Math.floor(Math.random() * ids.length)]!;
                    const into = this.bucket;
                    const t = performance.now();
                    try {
                        await client.call(client.reader, 'GET', `/pipeline/status/${id}`, 200);
                    } catch (e) {
                        this.error ??= e instanceof Error ? e : new Error(String(e));
                        this.stopped = true;
                        return;
                    }
                    into.push(performance.now() - t);
                }
            }),
        ).then(() => undefined);
    }

    phase(name: string): void {
        this.bucket = [];
        this.samples.set(name, this.bucket);
    }

    check(): void {
        if (this.error) throw this.error;
    }

    async stop(): Promise<void> {
        this.stopped = true;
        await this.done;
        this.check();
    }
}

/** A field of /proc/<pid>/status in MB: `VmHWM` is the process's peak resident set so far, `VmRSS` the current one. */
export function procMemoryMb(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): number {
    const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return kb / 1024;
}

export function peakRssMb(pid: number | undefined): number {
    return procMemoryMb(pid, 'VmHWM');
}
