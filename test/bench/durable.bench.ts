/**
 * `npm run bench` (embedded durable host): 1,000 instances of "5 sequential activities, then wait for an
 * event, then one more activity", driven over HTTP with 50 requests in flight, on this machine.
 * Prints instances started/s, event-to-completion p50/p99, completions/s after the events, and peak RSS.
 */
import { readFileSync } from 'node:fs';

import { ChainInput, expectedChainOutput, Fixture } from '../fixtures/durableApp/contract';
import { systemKeyHeaders } from '../support/hostKeys';
import { FIXTURE_APP, json, startHostProcess, tempDataDir } from '../support/hostProcess';

const N = Number(process.env.BENCH_INSTANCES ?? 1000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 50);
const input: ChainInput = { steps: 5, approval: true, stepDelayMs: 0 };
const API = '/runtime/webhooks/durabletask';

interface Status {
    runtimeStatus: string;
    customStatus: unknown;
    output: unknown;
    lastUpdatedTime: string;
}

async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    await Promise.all(
        Array.from({ length: limit }, async () => {
            while (next < items.length) await fn(items[next++]!);
        }),
    );
}

function percentile(sorted: number[], p: number): number {
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
    const host = await startHostProcess({
        appMain: FIXTURE_APP,
        dataDir: tempDataDir('mesh-bench-'),
        nodeArgs: process.env.BENCH_CPU_PROFILE
            ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROFILE}`]
            : [],
    });
    const key = systemKeyHeaders(host);
    const ids = Array.from({ length: N }, (_, i) => `bench-${i}`);
    try {
        const t0 = performance.now();
        await pool(ids, IN_FLIGHT, async (id) => {
            const r = await json(
                host.origin,
                'POST',
                `${API}/orchestrators/${Fixture.orchestrators.chain}/${id}`,
                input,
                key,
            );
            if (r.status !== 202) throw new Error(`start ${id}: ${r.status}`);
        });
        const startSeconds = (performance.now() - t0) / 1000;

        // Wait until every instance has run its five steps and waits for its event.
        for (;;) {
            const list = await json<Status[]>(
                host.origin,
                'GET',
                `${API}/instances/?runtimeStatus=Running&showInput=false&top=1000`,
                undefined,
                key,
            );
            const waiting = list.body.filter((s) => s.customStatus === 'awaiting approval').length;
            if (waiting === N) break;
            await new Promise((r) => setTimeout(r, 100));
        }
        const waitingAt = performance.now();

        const raisedAt = new Map<string, number>();
        const t1 = Date.now();
        await pool(ids, IN_FLIGHT, async (id) => {
            raisedAt.set(id, Date.now());
            const r = await json(
                host.origin,
                'POST',
                `${API}/instances/${id}/raiseEvent/${Fixture.events.approval}`,
                'approve',
                key,
            );
            if (r.status !== 202) throw new Error(`raise ${id}: ${r.status}`);
        });
        let done: Status[] = [];
        for (;;) {
            const list = await json<Status[]>(
                host.origin,
                'GET',
                `${API}/instances/?runtimeStatus=Completed&showInput=false&top=1000`,
                undefined,
                key,
            );
            done = list.body;
            if (done.length >= N) break;
            await new Promise((r) => setTimeout(r, 20));
        }
        const latencies = ids.map((id) => {
            const s = done.find((d) => (d as unknown as { instanceId: string }).instanceId === id)!;
            if (JSON.stringify(s.output) !== JSON.stringify(expectedChainOutput(id, input, 'approve')))
                throw new Error(`wrong output for ${id}`);
            return Date.parse(s.lastUpdatedTime) - raisedAt.get(id)!;
        });
        const lastCompletion = Math.max(...done.map((s) => Date.parse(s.lastUpdatedTime)));
        const sorted = [...latencies].sort((a, b) => a - b);
        const rssKb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${host.child.pid}/status`, 'utf8'))?.[1] ?? 0);

        const rows: [string, string][] = [
            ['instances', String(N)],
            ['requests in flight', String(IN_FLIGHT)],
            ['instances started/s', (N / startSeconds).toFixed(0)],
            ['start → all waiting (s)', ((waitingAt - t0) / 1000).toFixed(2)],
            ['event-to-completion p50 (ms)', percentile(sorted, 50).toFixed(0)],
            ['event-to-completion p99 (ms)', percentile(sorted, 99).toFixed(0)],
            ['completions/s after the events', (N / ((lastCompletion - t1) / 1000)).toFixed(0)],
            ['host peak RSS (MB)', (rssKb / 1024).toFixed(0)],
        ];
        console.log('\nembedded durable host — 5 activities, an external event, 1 activity');
        for (const [k, v] of rows) console.log(`  ${k.padEnd(34)} ${v}`);
    } finally {
        await host.stop();
    }
}

main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
});
