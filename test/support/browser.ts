/**
 * Browser tests drive Debian's Chromium (`/usr/bin/chromium`, installed by .ci/run) with playwright-core; no browser
 * is ever downloaded. Without Chromium the suites are skipped with a message, except in CI, where it must exist.
 * Everything here talks to the page through locators (which pierce open shadow roots) or string expressions, so
 * the test project needs no DOM typings.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { type Browser, chromium, type Page } from 'playwright-core';

import { ROOT } from './hostProcess';

function findChromium(): string | undefined {
    if (process.env.CHROMIUM_PATH && existsSync(process.env.CHROMIUM_PATH)) return process.env.CHROMIUM_PATH;
    try {
        return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' })
            .trim()
            .split('\n')[0];
    } catch {
        return undefined;
    }
}

export const CHROMIUM = findChromium();

if (!CHROMIUM && process.env.CI)
    throw new Error('Chromium is required in CI (.ci/run installs Debian chromium); `command -v chromium` found none.');

/** `describe`, or `describe.skip` with a clear message when this machine has no Chromium (never in CI). */
export const describeInBrowser: jest.Describe = CHROMIUM
    ? describe
    : (((name: string, fn: () => void) => {
          console.warn(`SKIPPED ${name}: no chromium on this machine (apt-get install chromium); CI requires it.`);
          describe.skip(name, fn);
      }) as unknown as jest.Describe);

export async function launchBrowser(): Promise<Browser> {
    return chromium.launch({
        executablePath: CHROMIUM!,
        headless: true,
        args: ['--no-sandbox', '--disable-dev-shm-usage'],
        timeout: 30_000,
    });
}

export const SCREENSHOTS = join(ROOT, 'test-results', 'screenshots');

export async function screenshot(page: Page, name: string): Promise<void> {
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/**
 * Opens `url` (a page that loads the widget, e.g. /dashboard) and hands the element a token provider for `token`.
 * Records the element's events in `window.__meshEvents`.
 */
export async function mountDashboard(page: Page, url: string, token: string): Promise<void> {
    await page.goto(url);
    await page.waitForFunction(`!!customElements.get('mesh-dashboard')`, undefined, { timeout: 15_000 });
    await page.evaluate(`(() => {
        const el = document.querySelector('mesh-dashboard');
        window.__meshEvents = [];
        for (const type of ['mesh-navigate', 'mesh-decided', 'mesh-error'])
            document.addEventListener(type, (e) => window.__meshEvents.push({ type, detail: e.detail }));
        const token = ${JSON.stringify(token)};
        el.tokenProvider = async () => token;
    })()`);
}

export async function meshEvents(page: Page): Promise<{ type: string; detail: any }[]> {
    return page.evaluate<{ type: string; detail: any }[]>('window.__meshEvents');
}

/** Runs axe-core on the page (open shadow roots included) and returns its serious and critical violations. */
export async function seriousA11yViolations(page: Page): Promise<{ id: string; impact: string; help: string }[]> {
    await page.addScriptTag({ path: join(ROOT, 'node_modules', 'axe-core', 'axe.min.js') });
    const violations = await page.evaluate<{ id: string; impact: string; help: string }[]>(
        `axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) })))`,
    );
    return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Polls `fn` every few ms until it is truthy; returns how long that took. */
export async function pollUntil(fn: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<number> {
    const started = Date.now();
    for (;;) {
        if (await fn()) return Date.now() - started;
        if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
    }
}
