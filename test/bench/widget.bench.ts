/**
 * `npm run bench` (the dashboard widget, issue 11): the widget's update latency with BENCH_WIDGET_RUNS (default
 * 1,000) runs in the list. The runs are high-risk, so each waits at its first checkpoint; an Operator's
 * `<mesh-dashboard>` in Debian's Chromium shows the runs list (one page), and the bench pauses and resumes runs on
 * that page over the API, timing from the API's 202 to the new status text in the element (the event stream's
 * path: store change → SSE → render). Prints p50/p99 and the page's render time; asserts no timings. Skipped, with
 * a message, where Chromium is not installed.
 *
 * Env: BENCH_WIDGET_RUNS (1000), BENCH_WIDGET_SAMPLES (40 changes), BENCH_KEEP_DATA (keep the temp data dir).
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';

import { chromium } from 'playwright-core';

import { startHostProcess, tempDataDir } from '../support/hostProcess';
import { Client, mintTokens, p50p99, pool, until } from './benchSupport';

const N = Number(process.env.BENCH_WIDGET_RUNS ?? 1000);
const SAMPLES = Number(process.env.BENCH_WIDGET_SAMPLES ?? 40);

const USERS = {
    dana: { sub: 'dana', roles: ['Mesh.Developer'], teams: ['alpha'] },
    olga: { sub: 'olga', roles: ['Mesh.Operator'], teams: [] },
};

function chromiumPath(): string | undefined {
    try {
        return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim() || undefined;
    } catch {
        return undefined;
    }
}

async function main(): Promise<void> {
    const executablePath = chromiumPath();
    if (!executablePath) {
        process.stdout.write('widget bench: skipped (no chromium on this machine; apt-get install chromium)\n');
        return;
    }
    const dataDir = tempDataDir('mesh-bench-widget-');
    const host = await startHostProcess({ dataDir });
    const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    try {
        const tokens = await mintTokens(dataDir, USERS);
        const client = new Client<keyof typeof USERS>(host, tokens, 'olga');
        const started = Date.now();
        await pool(
            Array.from({ length: N }, (_, i) => i),
            50,
            async (i) => {
                await client.call('dana', 'POST', '/pipeline/run', 202, {
                    input: { prompt: `bench ${i}` },
                    metadata: { team: 'alpha', riskLevel: 'high', complianceTags: [], title: `Widget bench ${i}` },
                });
            },
        );
        await until(
            `${N} runs to wait for approval`,
            async () => {
                const waiting = (await client.listAll('AwaitingApproval')).length;
                return waiting >= N ? true : `${waiting} of ${N} waiting`;
            },
            { timeoutMs: 600_000, pollMs: 1_000 },
        );
        const seeded = Date.now() - started;

        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        const renderStart = Date.now();
        await page.goto(`${host.origin}/dashboard?view=runs`);
        await page.waitForFunction(`!!customElements.get('mesh-dashboard')`);
        await page.evaluate(
            `document.querySelector('mesh-dashboard').tokenProvider = async () => ${JSON.stringify(tokens.olga)}`,
        );
        await page.locator('tr[data-run]').first().waitFor({ timeout: 30_000 });
        await page.getByText('● live').waitFor({ timeout: 30_000 });
        const rendered = Date.now() - renderStart;
        const rows = await page.locator('tr[data-run]').count();
        const ids = await page
            .locator('tr[data-run]')
            .evaluateAll((els) => els.map((e) => e.getAttribute('data-run')) as string[]);

        const latencies: number[] = [];
        for (let i = 0; i < SAMPLES; i++) {
            const id = ids[Math.floor(i / 2) % ids.length]!;
            const pause = i % 2 === 0;
            const want = pause ? 'Paused' : 'Awaiting approval';
            if (pause)
                await client.call('olga', 'POST', '/pipeline/stop', 202, {
                    orchestrationID: id,
                    action: 'pause',
                    reason: 'bench',
                });
            else await client.call('olga', 'POST', '/pipeline/resume', 202, { orchestrationID: id, reason: 'bench' });
            const accepted = Date.now();
            const cell = page.locator(`tr[data-run="${id}"] [data-status]`);
            for (;;) {
                if ((await cell.textContent()) === want) break;
                if (Date.now() - accepted > 30_000) throw new Error(`${id} never showed ${want}`);
                await new Promise((r) => setTimeout(r, 5));
            }
            latencies.push(Date.now() - accepted);
        }
        process.stdout.write(
            [
                `widget bench: ${N} runs awaiting approval (seeded in ${(seeded / 1000).toFixed(1)} s); the list renders ${rows} rows (one page)`,
                `  first render (page load → rows, live):  ${rendered} ms`,
                `  update latency (API 202 → text in element), p50 / p99 ms over ${latencies.length} changes: ${p50p99(latencies)}`,
                '',
            ].join('\n'),
        );
    } finally {
        await browser.close();
        await host.stop();
        if (!process.env.BENCH_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
    }
}

main().catch((e: unknown) => {
    process.stderr.write(`widget bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
});
