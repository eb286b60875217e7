/**
 * `npm run bench` (scale, issue 5): admission under a burst, end-to-end completion with many runs in flight and the
 * host's memory, for each store (`embedded` = SQLite, `cosmos` = the Cosmos DB adapter on the local Cosmos-API
 * server, which runs inside this process). Every phase gets a fresh host, because the capacity it runs with
 * (`MESH_RUN_CAPACITY`) is host configuration; engines have zero latency and rate limits are off. All runs are
 * low-risk (no checkpoints), so each one goes Queued → Running → Completed on its own.
 *
 * 1. Burst: BENCH_BURST run requests from 20 clients (distinct users of two teams) against BENCH_CAPACITY slots.
 * 2. In flight: for each n of BENCH_IN_FLIGHT_SET, n runs submitted by 50 concurrent requests with capacity n, while
 *    10 readers time GET /pipeline/status/{id} of random submitted runs.
 * 3. Memory: the host's peak RSS (VmHWM; the host is fresh, so its peak is the phase's) and its RSS once drained.
 *
 * Progress is polled every 250 ms with `GET /pipeline?status=…` as an Operator (who sees both teams): counts page
 * through every unended run, at most every 250 ms in the burst and every 2 s in the in-flight phases, and never
 * more than a fifth of the time; the rounds between ask with `limit=1` whether any run is still queued or unended.
 * It prints numbers only and asserts no timings; it exits non-zero on an answer other than 202, a run that
 * ended other than Completed, a submitted run missing at the end, a failed status read or a phase that outlasts
 * BENCH_PHASE_TIMEOUT_MS. Host and bench share one clock, so server `updatedAt` is compared with client times.
 *
 * Env: BENCH_STORES (default embedded,cosmos), BENCH_BURST (2000; 0 skips the burst), BENCH_CAPACITY (200),
 * BENCH_IN_FLIGHT_SET (1000,5000; 0 skips them), BENCH_PHASE_TIMEOUT_MS (600000), BENCH_KEEP_DATA (keep the temp
 * data dirs).
 */
import { rmSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { startHostProcess, tempDataDir } from '../support/hostProcess';
import type { StoreKind } from '../support/stores';
import {
    type BenchUser,
    Client,
    mintTokens,
    percentile,
    pool,
    procMemoryMb,
    sleep,
    StatusReaders,
    type Summary,
} from './benchSupport';

const STORES = list('BENCH_STORES', 'embedded,cosmos').map((s) => {
    if (s !== 'embedded' && s !== 'cosmos') throw new Error(`BENCH_STORES: unknown store '${s}'`);
    return s;
});
const BURST = Number(process.env.BENCH_BURST ?? 2000);
const CAPACITY = Number(process.env.BENCH_CAPACITY ?? 200);
const IN_FLIGHT_SET = list('BENCH_IN_FLIGHT_SET', '1000,5000').map(Number);
const PHASE_TIMEOUT_MS = Number(process.env.BENCH_PHASE_TIMEOUT_MS ?? 600_000);
const BURST_CLIENTS = 20;
const SUBMITTERS = 50;
const READERS = 10;
const POLL_MS = 250;
const PROGRESS_EVERY_MS = 5_000;
/** In the in-flight phases, how often at most the unended runs are counted (paging through all of them). */
const COUNT_EVERY_MS = 2_000;
/** A count of the unended runs waits at least this many times as long as the previous count took. */
const COUNT_SPACING = 4;
/** Every status a run may hold before it ends. */
const NOT_ENDED = 'Queued,Running,AwaitingApproval,Paused';

function list(key: string, fallback: string): string[] {
    return (process.env[key]?.trim() || fallback).split(',').map((s) => s.trim());
}

/** 20 developers, even ones in team alpha and odd ones in beta, and an Operator who lists and reads every run. */
const DEVELOPERS = Array.from({ length: BURST_CLIENTS }, (_, i) => `dev${String(i).padStart(2, '0')}`);
const USERS: Record<string, BenchUser> = {
    ops: { sub: 'ops', roles: ['Mesh.Operator'], teams: [] },
    ...Object.fromEntries(
        DEVELOPERS.map((sub, i) => [sub, { sub, roles: ['Mesh.Developer'], teams: [i % 2 ? 'beta' : 'alpha'] }]),
    ),
};

/** What went wrong without stopping the bench (answers other than 202, lost runs); any of it fails the exit code. */
const problems: string[] = [];

interface Submissions {
    ids: string[];
    codes: Map<number, number>;
    first202?: number;
    lastAnswer?: number;
}

/** Submits `n` low-risk runs with `concurrency` requests at once; request `i` is sent by developer `i % 20`'s worker. */
async function submit(client: Client<string>, n: number, concurrency: number, into: Submissions): Promise<void> {
    await pool(
        Array.from({ length: n }, (_, i) => i),
        concurrency,
        async (i, worker) => {
            const user = DEVELOPERS[worker % DEVELOPERS.length]!;
            const r = await client.send<{ orchestrationID: string }>(user, 'POST', '/pipeline/run', {
                input: { prompt: `scale bench workflow ${i}` },
                metadata: {
                    team: USERS[user]!.teams[0]!,
                    riskLevel: 'low',
                    complianceTags: [],
                    title: `scale ${i}`,
                },
            });
            const at = Date.now();
            into.codes.set(r.status, (into.codes.get(r.status) ?? 0) + 1);
            into.lastAnswer = at;
            if (r.status === 202) {
                into.first202 ??= at;
                into.ids.push(r.body.data.orchestrationID);
            } else if (problems.length < 20) {
                problems.push(`POST /pipeline/run answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
            }
        },
    );
}

interface Watch {
    /** When the first round after the last submission found no run Queued. */
    queueEmptyAt?: number;
    maxQueued: number;
    maxNotEnded: number;
}

/**
 * Polls every POLL_MS until submitting is over and no run is left unended, checking for failed runs and failed
 * status reads on every round. A count pages through every unended run (the `Queued` ones counted apart). Counts are
 * at least `countEveryMs` apart, and at least COUNT_SPACING times as long as the last one took, so that paging
 * through thousands of runs does not become a load of its own; the rounds between ask with one `limit=1` page
 * whether any run is still `Queued` (until the queue was seen empty) or unended. Progress goes to stderr now and then.
 */
async function watch(
    label: string,
    client: Client<string>,
    submitted: () => boolean,
    progress: () => string,
    o: { countEveryMs: number; live: Live; readers?: StatusReaders },
): Promise<Watch> {
    const w: Watch = { maxQueued: 0, maxNotEnded: 0 };
    const t0 = Date.now();
    let nextCount = 0;
    let said = t0;
    for (;;) {
        o.readers?.check();
        const done = submitted(); // read before the round: a round that starts after the last 202 sees every run
        const started = Date.now();
        let left: number;
        if (started >= nextCount) {
            const runs = await client.listAll(NOT_ENDED);
            const counted = Date.now();
            nextCount = counted + Math.max(o.countEveryMs, COUNT_SPACING * (counted - started));
            const queued = runs.filter((r) => r.status === 'Queued').length;
            const running = runs.filter((r) => r.status === 'Running').length;
            w.maxQueued = Math.max(w.maxQueued, queued);
            w.maxNotEnded = Math.max(w.maxNotEnded, runs.length);
            if (done && queued === 0) w.queueEmptyAt ??= counted;
            left = runs.length;
            const stuck = runs.length - queued - running;
            o.live.progress =
                `${progress()}, at ${((counted - t0) / 1000).toFixed(0)} s ${runs.length} not ended ` +
                `(${queued} queued${stuck ? `, ${stuck} waiting or paused` : ''})`;
            if (counted - said >= PROGRESS_EVERY_MS) {
                said = counted;
                console.error(`  [${label}] ${o.live.progress}`);
            }
        } else {
            const queue = w.queueEmptyAt === undefined;
            const page = await client.call<{ items: Summary[] }>(
                client.reader,
                'GET',
                `/pipeline?status=${queue ? 'Queued' : NOT_ENDED}&limit=1`,
                200,
            );
            left = page.items.length || (queue ? NaN : 0); // an empty queue says nothing about running runs
            if (done && queue && !page.items.length) w.queueEmptyAt = Date.now();
        }
        await client.assertNoFailures();
        if (done && left === 0) {
            w.queueEmptyAt ??= Date.now();
            return w;
        }
        await sleep(POLL_MS);
    }
}

/** Every submitted run must be listed Completed; answers the last completion time (server clock). */
async function allCompleted(client: Client<string>, ids: readonly string[], label: string): Promise<number> {
    const completed = await client.listAll('Completed');
    const seen = new Set(completed.map((r) => r.orchestrationID));
    const lost = ids.filter((id) => !seen.has(id));
    if (lost.length)
        problems.push(`${label}: ${lost.length} accepted runs not Completed, e.g. ${lost.slice(0, 3).join(', ')}`);
    if (completed.length !== ids.length)
        problems.push(`${label}: ${completed.length} runs Completed, ${ids.length} accepted`);
    return Math.max(...completed.map((r: Summary) => Date.parse(r.updatedAt)));
}

interface Memory {
    peakMb: number;
    endMb: number;
    /** This process's RSS at the end of the phase: with `cosmos`, the Cosmos-API server's data lives here. */
    benchMb: number;
    /** This process's event-loop delay p99 during the phase: what the bench's own timings may be inflated by. */
    benchLoopP99Ms: number;
    /** What the host wrote to stderr during the phase: its warnings and errors (local/main.ts, console.warn/error). */
    hostIssues: string[];
}

/** Where a phase is: updated as it goes, so a phase that times out can say how far it got. */
interface Live {
    progress: string;
    /** The numbers measured so far, for a phase that does not finish. */
    numbers?: () => string;
}

type Outcome<T> = { ok: true; value: T; memory: Memory } | { ok: false; error: string; memory: Memory };

/**
 * Runs one phase on a fresh host with `capacity` slots. A phase that fails (a timeout, a run that ended badly, a
 * failed read) is recorded as a problem and answered as such, with the host's output tail on stderr, so the
 * remaining phases still run.
 */
async function onFreshHost<T>(
    store: StoreKind,
    capacity: number,
    label: string,
    phase: (client: Client<string>, live: Live) => Promise<T>,
): Promise<Outcome<T>> {
    const dataDir = tempDataDir(`mesh-scale-bench-${store}-`);
    const host = await startHostProcess({
        store,
        dataDir,
        env: {
            MESH_ENGINE_LATENCY_MS: '0',
            MESH_RUN_CAPACITY: String(capacity),
            MESH_RATE_LIMIT_USER: 'off',
            MESH_RATE_LIMIT_TEAM: 'off',
        },
    });
    let stderr = '';
    host.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const live: Live = { progress: 'starting' };
    const memory = (): Memory => {
        loop.disable();
        return {
            peakMb: procMemoryMb(host.child.pid, 'VmHWM'),
            endMb: procMemoryMb(host.child.pid, 'VmRSS'),
            benchMb: process.memoryUsage().rss / 2 ** 20,
            benchLoopP99Ms: loop.percentile(99) / 1e6,
            hostIssues: stderr.split('\n').filter((line) => line.trim()),
        };
    };
    const t0 = Date.now();
    try {
        const client = new Client(host, await mintTokens(dataDir, USERS), 'ops');
        const value = await withTimeout(phase(client, live), PHASE_TIMEOUT_MS, label);
        return { ok: true, value, memory: memory() };
    } catch (e: unknown) {
        const error =
            `${e instanceof Error ? e.message : String(e)} (after ${((Date.now() - t0) / 1000).toFixed(0)} s; ` +
            `${live.progress}; so far: ${live.numbers?.() ?? 'nothing'})`;
        problems.push(`${label}: ${error}`);
        console.error(`${label} failed: ${error}\nhost output (tail):\n${host.output().slice(-4000)}`);
        return { ok: false, error, memory: memory() };
    } finally {
        loop.disable();
        await host.stop();
        if (!process.env.BENCH_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
    }
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: phase timed out after ${ms} ms`)), ms);
    });
    try {
        return await Promise.race([work, expired]);
    } finally {
        clearTimeout(timer);
    }
}

async function burstPhase(client: Client<string>, live: Live, label: string) {
    const s: Submissions = { ids: [], codes: new Map() };
    let submitted = false;
    const t0 = Date.now();
    live.numbers = () => `${rate(submitsPerS(s, t0))} submits/s, answers ${answers(s.codes)}`;
    const [, w] = await Promise.all([
        submit(client, BURST, BURST_CLIENTS, s).finally(() => (submitted = true)),
        watch(
            label,
            client,
            () => submitted,
            () => `accepted ${s.ids.length}/${BURST}`,
            { countEveryMs: POLL_MS, live },
        ),
    ]);
    const lastCompletion = await allCompleted(client, s.ids, label);
    const first202 = s.first202 ?? t0;
    return {
        accepted: s.ids.length,
        codes: s.codes,
        submitsPerS: submitsPerS(s, t0),
        admittedPerS: s.ids.length / ((w.queueEmptyAt! - first202) / 1000),
        queueEmptyS: (w.queueEmptyAt! - t0) / 1000,
        maxQueued: w.maxQueued,
        completedS: (lastCompletion - t0) / 1000,
    };
}

/** A rate for print: one decimal below 10/s. */
const rate = (perS: number): string => perS.toFixed(perS < 10 ? 1 : 0);

/** 202s per second from the first request to the last answer (so far). */
const submitsPerS = (s: Submissions, t0: number): number => s.ids.length / (((s.lastAnswer ?? Date.now()) - t0) / 1000);

interface ReadStats {
    n: number;
    p50: number;
    p99: number;
    max: number;
}

function readStats(samples: readonly number[]): ReadStats {
    const sorted = [...samples].sort((a, b) => a - b);
    return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN };
}

const readLine = (r: ReadStats): string =>
    `status p50 ${r.p50.toFixed(0)} ms p99 ${r.p99.toFixed(0)} ms max ${r.max.toFixed(0)} ms (${r.n} reads)`;

async function inFlightPhase(client: Client<string>, live: Live, n: number, label: string) {
    const s: Submissions = { ids: [], codes: new Map() };
    const readers = new StatusReaders(client, s.ids, READERS);
    readers.phase('load');
    let submitted = false;
    const t0 = Date.now();
    const reads = (): ReadStats => readStats(readers.samples.get('load') ?? []);
    live.numbers = () => `${rate(submitsPerS(s, t0))} submits/s, answers ${answers(s.codes)}, ${readLine(reads())}`;
    try {
        const [, w] = await Promise.all([
            submit(client, n, SUBMITTERS, s).finally(() => (submitted = true)),
            watch(
                label,
                client,
                () => submitted,
                () => `accepted ${s.ids.length}/${n}`,
                { countEveryMs: COUNT_EVERY_MS, live, readers },
            ),
        ]);
        await readers.stop();
        const lastCompletion = await allCompleted(client, s.ids, label);
        return {
            accepted: s.ids.length,
            codes: s.codes,
            submitsPerS: submitsPerS(s, t0),
            completionsPerS: s.ids.length / ((lastCompletion - t0) / 1000),
            completedS: (lastCompletion - t0) / 1000,
            maxNotEnded: w.maxNotEnded,
            maxQueued: w.maxQueued,
            reads: reads(),
        };
    } finally {
        await readers.stop().catch(() => undefined); // a failed read was thrown above; the phase reports it
    }
}

const mb = (m: Memory, store: StoreKind): string =>
    (m.hostIssues.length ? `host stderr ${m.hostIssues.length} lines (first: ${m.hostIssues[0]}); ` : '') +
    `host RSS peak ${m.peakMb.toFixed(0)} MB, end ${m.endMb.toFixed(0)} MB` +
    (store === 'cosmos' ? `; bench process (Cosmos server) RSS ${m.benchMb.toFixed(0)} MB` : '') +
    `; bench loop delay p99 ${m.benchLoopP99Ms.toFixed(0)} ms`;
const answers = (codes: Map<number, number>): string =>
    [...codes].map(([code, count]) => `${code}×${count}`).join(' ') || 'none';

async function benchStore(store: StoreKind): Promise<void> {
    const t0 = Date.now();
    let peak = 0;
    const report = <T>(name: string, o: Outcome<T>, numbers: (v: T) => string): void => {
        peak = Math.max(peak, o.memory.peakMb);
        console.log(`  ${name}: ${o.ok ? numbers(o.value) : `FAILED: ${o.error}`}; ${mb(o.memory, store)}`);
        if (o.memory.hostIssues.length)
            console.error(`  host stderr (first 5 lines):\n    ${o.memory.hostIssues.slice(0, 5).join('\n    ')}`);
    };
    console.log(`store=${store}`);

    const burstLabel = `${store} burst`;
    if (BURST > 0)
        report(
            `burst ${BURST} req from ${BURST_CLIENTS} clients, capacity ${CAPACITY}`,
            await onFreshHost(store, CAPACITY, burstLabel, (c, live) => burstPhase(c, live, burstLabel)),
            (b) =>
                `${rate(b.submitsPerS)} submits/s, admitted ${rate(b.admittedPerS)} runs/s ` +
                `(queue peak ${b.maxQueued}, empty at ${b.queueEmptyS.toFixed(1)} s), ` +
                `all completed at ${b.completedS.toFixed(1)} s; answers ${answers(b.codes)}`,
        );
    for (const n of IN_FLIGHT_SET.filter((x) => x > 0)) {
        const label = `${store} in-flight ${n}`;
        report(
            `in-flight ${n} (${SUBMITTERS} submitters, capacity ${n})`,
            await onFreshHost(store, n, label, (c, live) => inFlightPhase(c, live, n, label)),
            (r) =>
                `${rate(r.completionsPerS)} completions/s, all completed at ${r.completedS.toFixed(1)} s ` +
                `(submits ${rate(r.submitsPerS)}/s, peak ${r.maxNotEnded} not ended, ${r.maxQueued} queued); ` +
                `${readLine(r.reads)}; answers ${answers(r.codes)}`,
        );
    }
    console.log(
        `  store=${store}: peak host RSS ${peak.toFixed(0)} MB, wall ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );
}

async function main(): Promise<number> {
    console.log(
        `mesh scale bench: zero-latency engines, rate limits off, low-risk runs, fresh host per phase, ` +
            `phase timeout ${PHASE_TIMEOUT_MS / 1000} s`,
    );
    for (const store of STORES) await benchStore(store);
    if (!problems.length) return 0;
    console.error(`something went wrong:\n  ${problems.join('\n  ')}`);
    return 1;
}

// Exit explicitly: requests of a timed-out phase may still be settling against its stopped host.
main().then(
    (code) => process.exit(code),
    (e: unknown) => {
        console.error(e);
        process.exit(1);
    },
);
