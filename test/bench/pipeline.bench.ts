/**
 * `npm run bench` (the product): 1,000 workflows in flight over the public API on the embedded host with
 * zero-latency simulated engines, 50 requests in flight. Half are low-risk (no checkpoints), half high-risk
 * (they stop for approval before taste and again after improvement). Prints submissions/s, low-risk runs
 * completed/s, status read latency while loaded, decision-to-next-stage latency, completions/s after the
 * last approval, the host's peak RSS and the wall time. It prints numbers only; it asserts no timings.
 *
 * Server timestamps (`stages[].startedAt`, `updatedAt`) are compared with client send times: host and bench run
 * on the same machine, so they share one clock.
 *
 * Env: BENCH_RUNS (default 1000), BENCH_IN_FLIGHT (default 50), BENCH_STATUS_READERS (default 10),
 * BENCH_CPU_PROFILE (a directory: the host writes a V8 CPU profile there on exit), BENCH_KEEP_DATA (keep the
 * temp data dir, removed by default).
 */
import { rmSync } from 'node:fs';

import { startHostProcess, tempDataDir } from '../support/hostProcess';
import { Client, mintTokens, p50p99, peakRssMb, pool, StatusReaders, type Summary, until } from './benchSupport';

const N = Number(process.env.BENCH_RUNS ?? 1000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 50);
const READERS = Number(process.env.BENCH_STATUS_READERS ?? 10);
const PHASE_TIMEOUT_MS = Number(process.env.BENCH_PHASE_TIMEOUT_MS ?? 180_000);
const POLL_MS = 200;

/** The test users (as test/support/api.ts): a submitter and two team approvers who are not the submitter. */
const USERS = {
    dana: { sub: 'dana', roles: ['Mesh.Developer'], teams: ['alpha'] },
    ava: { sub: 'ava', roles: ['Mesh.Approver'], teams: ['alpha'] },
    amir: { sub: 'amir', roles: ['Mesh.Approver'], teams: ['alpha'] },
};
type UserName = keyof typeof USERS;

interface StatusView {
    orchestrationID: string;
    status: string;
    stages: { name: string; status: string; startedAt: string | null; endedAt: string | null }[];
}

async function main(): Promise<void> {
    const wall0 = Date.now();
    const dataDir = tempDataDir('mesh-pipeline-bench-');
    const host = await startHostProcess({
        dataDir,
        env: { MESH_ENGINE_LATENCY_MS: '0' },
        nodeArgs: process.env.BENCH_CPU_PROFILE
            ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROFILE}`]
            : [],
    });
    let readers: StatusReaders | undefined;
    try {
        const client = new Client<UserName>(host, await mintTokens(dataDir, USERS), 'dana');

        const risk = Array.from({ length: N }, (_, i) => (i % 2 ? 'high' : 'low'));
        const ids: string[] = [];
        const lowIds = new Set<string>();
        const highIds = new Set<string>();
        const submittedAt = new Map<string, number>();

        // ---- phase 1: submit everything; low-risk runs complete, high-risk ones stop before taste ----
        readers = new StatusReaders(client, ids, READERS);
        readers.phase('run');
        const t0 = Date.now();
        await pool(
            risk.map((r, i) => [r, i] as const),
            IN_FLIGHT,
            async ([riskLevel, i]) => {
                const sent = Date.now();
                const data = await client.call<{ orchestrationID: string }>('dana', 'POST', '/pipeline/run', 202, {
                    input: { prompt: `bench workflow ${i}` },
                    metadata: { team: 'alpha', riskLevel, complianceTags: [], title: `bench ${riskLevel} ${i}` },
                });
                const id = data.orchestrationID;
                submittedAt.set(id, sent);
                (riskLevel === 'low' ? lowIds : highIds).add(id);
                ids.push(id);
            },
        );
        const submitSeconds = (Date.now() - t0) / 1000;

        let lowDone: Summary[] = [];
        let waiting: Summary[] = [];
        await until(
            'low-risk runs to complete and high-risk runs to wait before taste',
            async () => {
                await client.assertNoFailures();
                const runs = await client.listAll('Completed,AwaitingApproval');
                lowDone = runs.filter((r) => r.status === 'Completed' && lowIds.has(r.orchestrationID));
                waiting = runs.filter(
                    (r) =>
                        r.status === 'AwaitingApproval' &&
                        highIds.has(r.orchestrationID) &&
                        r.nextAction?.stage === 'taste',
                );
                return (
                    (lowDone.length === lowIds.size && waiting.length === highIds.size) ||
                    `${lowDone.length}/${lowIds.size} low-risk completed, ${waiting.length}/${highIds.size} high-risk waiting`
                );
            },
            { timeoutMs: PHASE_TIMEOUT_MS, pollMs: POLL_MS, readers },
        );
        const lastLowCompletion = Math.max(...lowDone.map((r) => Date.parse(r.updatedAt)));
        const lowLatencies = lowDone.map((r) => Date.parse(r.updatedAt) - submittedAt.get(r.orchestrationID)!);
        const allWaitingAt = Math.max(...waiting.map((r) => Date.parse(r.updatedAt)));

        // ---- phase 2: approve the before-taste checkpoints; time until taste starts ----
        readers.phase('approve');
        const decidedAt = new Map<string, number>();
        const decisionAnswers: number[] = [];
        const t2 = Date.now();
        await pool(waiting, IN_FLIGHT, async (r) => {
            const sent = Date.now();
            decidedAt.set(r.orchestrationID, sent);
            await client.call(
                'ava',
                'POST',
                `/pipeline/checkpoints/${encodeURIComponent(r.nextAction!.checkpointId)}/decision`,
                202,
                { decision: 'approve', comment: 'bench' },
            );
            decisionAnswers.push(Date.now() - sent);
        });
        const decideSeconds = (Date.now() - t2) / 1000;
        let second: Summary[] = [];
        await until(
            'high-risk runs to wait after improvement',
            async () => {
                await client.assertNoFailures();
                const runs = await client.listAll('AwaitingApproval');
                second = runs.filter((r) => highIds.has(r.orchestrationID) && r.nextAction?.stage === 'improvement');
                return (
                    second.length === highIds.size ||
                    `${second.length}/${highIds.size} high-risk waiting after improvement`
                );
            },
            { timeoutMs: PHASE_TIMEOUT_MS, pollMs: POLL_MS, readers },
        );
        readers.phase('idle');
        const toTaste: number[] = [];
        await pool(second, IN_FLIGHT, async (r) => {
            const s = await client.call<StatusView>('dana', 'GET', `/pipeline/status/${r.orchestrationID}`, 200);
            const startedAt = s.stages.find((x) => x.name === 'taste')?.startedAt;
            if (!startedAt)
                throw new Error(`${r.orchestrationID}: taste has no startedAt: ${JSON.stringify(s.stages)}`);
            toTaste.push(Date.parse(startedAt) - decidedAt.get(r.orchestrationID)!);
        });

        // ---- phase 3: approve the after-improvement checkpoints; time until every run completes ----
        readers.phase('approve');
        const finalAt = new Map<string, number>();
        const t3 = Date.now();
        await pool(second, IN_FLIGHT, async (r) => {
            finalAt.set(r.orchestrationID, Date.now());
            await client.call(
                'amir',
                'POST',
                `/pipeline/checkpoints/${encodeURIComponent(r.nextAction!.checkpointId)}/decision`,
                202,
                { decision: 'approve', comment: 'bench' },
            );
        });
        let highDone: Summary[] = [];
        await until(
            'high-risk runs to complete',
            async () => {
                await client.assertNoFailures();
                highDone = (await client.listAll('Completed')).filter((r) => highIds.has(r.orchestrationID));
                return highDone.length === highIds.size || `${highDone.length}/${highIds.size} high-risk completed`;
            },
            { timeoutMs: PHASE_TIMEOUT_MS, pollMs: POLL_MS, readers },
        );
        await readers.stop();
        const lastHighCompletion = Math.max(...highDone.map((r) => Date.parse(r.updatedAt)));
        const toCompletion = highDone.map((r) => Date.parse(r.updatedAt) - finalAt.get(r.orchestrationID)!);
        const rssMb = peakRssMb(host.child.pid);

        const loaded = readers.samples.get('run') ?? [];
        const approving = readers.samples.get('approve') ?? [];
        const rows: [string, string, string][] = [
            ['runs (low-risk + high-risk)', `${N} (${lowIds.size} + ${highIds.size})`, ''],
            ['requests in flight / status readers', `${IN_FLIGHT} / ${READERS}`, ''],
            ['submissions/s', (N / submitSeconds).toFixed(0), ''],
            ['low-risk runs completed/s', (lowIds.size / ((lastLowCompletion - t0) / 1000)).toFixed(0), '≥ 100'],
            ['low-risk submit-to-completion p50 / p99 (ms)', p50p99(lowLatencies), ''],
            [
                'runs through their first stop/s (all runs)',
                (N / ((Math.max(lastLowCompletion, allWaitingAt) - t0) / 1000)).toFixed(0),
                '',
            ],
            ['first submit → all high-risk waiting (s)', ((allWaitingAt - t0) / 1000).toFixed(2), ''],
            [`status read while loaded p50 / p99 (ms)`, p50p99(loaded), 'p99 < 50'],
            ['  (samples)', String(loaded.length), ''],
            ['status read during approvals p50 / p99 (ms)', p50p99(approving), ''],
            ['decisions accepted/s (first checkpoint)', (highIds.size / decideSeconds).toFixed(0), ''],
            ['decision POST answered p50 / p99 (ms)', p50p99(decisionAnswers), ''],
            ['decision-to-next-stage p50 / p99 (ms)', p50p99(toTaste), 'p99 < 100'],
            ['completions/s after approval', (highIds.size / ((lastHighCompletion - t3) / 1000)).toFixed(0), ''],
            ['decision-to-completion p50 / p99 (ms)', p50p99(toCompletion), ''],
            ['host peak RSS (MB)', rssMb.toFixed(0), ''],
            ['wall time (s)', ((Date.now() - wall0) / 1000).toFixed(1), ''],
        ];
        console.log('\nmesh pipeline over HTTP — zero-latency engines, half the runs wait at two checkpoints');
        for (const [k, v, target] of rows)
            console.log(`  ${k.padEnd(46)} ${v.padEnd(14)} ${target ? `(target ${target})` : ''}`.trimEnd());
    } catch (e) {
        await readers?.stop().catch(() => undefined); // the first error is the one reported
        console.error(`host output (tail):\n${host.output().slice(-4000)}`);
        throw e;
    } finally {
        await host.stop();
        if (!process.env.BENCH_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
    }
}

main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
});
