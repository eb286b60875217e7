/**
 * The widget over the inbox and the info loop (GET /pipeline/inbox, POST /pipeline/checkpoints/{id}/info), whom a run
 * waits on (nextAction.waitingOn), and embedding by a plugin host page on another origin (MESH_CORS_ORIGINS).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import type { Browser, BrowserContext, Page } from 'playwright-core';

import { Api, runAwaitingApproval, USERS } from '../support/api';
import {
    describeInBrowser,
    launchBrowser,
    mountDashboard,
    screenshot,
    seriousA11yViolations,
} from '../support/browser';
import { type HostProcess, ROOT, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(90_000);

describeInBrowser('<mesh-dashboard> with the api and info branches', () => {
    let host: HostProcess;
    let api: Api;
    let browser: Browser;
    let context: BrowserContext;
    let page: Page;
    let plugin: Server;
    let pluginOrigin: string;

    beforeAll(async () => {
        // The plugin host: another origin (another port) serving the example page that embeds the widget.
        const html = readFileSync(join(ROOT, 'widget', 'examples', 'plugin-host.html'));
        plugin = createServer((_req, res) => {
            res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
            res.end(html);
        });
        await new Promise<void>((r) => plugin.listen(0, '127.0.0.1', r));
        pluginOrigin = `http://127.0.0.1:${(plugin.address() as AddressInfo).port}`;
        const dataDir = tempDataDir('mesh-widget-merge-');
        const directory = join(dataDir, 'directory.json');
        writeFileSync(
            directory,
            JSON.stringify({
                people: [
                    { id: 'dana', name: 'Dana Developer', roles: ['Mesh.Developer'], teams: ['alpha'] },
                    { id: 'ava', name: 'Ava Approver', roles: ['Mesh.Approver'], teams: ['alpha'] },
                    { id: 'amir', name: 'Amir Approver', roles: ['Mesh.Approver'], teams: ['alpha'] },
                ],
            }),
        );
        [host, browser] = await Promise.all([
            startHostProcess({ dataDir, env: { MESH_DIRECTORY: directory, MESH_CORS_ORIGINS: pluginOrigin } }),
            launchBrowser(),
        ]);
        api = new Api(host);
    });

    afterAll(async () => {
        await browser?.close();
        await host?.stop();
        await new Promise((r) => plugin?.close(r));
    });

    beforeEach(async () => {
        context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        page = await context.newPage();
    });

    afterEach(async () => {
        await context?.close();
    });

    it('the info loop: an approver requests info in the inbox, the submitter answers there, the approver sees it', async () => {
        const { id, checkpointId } = await runAwaitingApproval(api, USERS.dana, 'Info loop run');
        await mountDashboard(page, `${host.origin}/dashboard?view=inbox`, await api.token(USERS.ava));
        let item = page.locator(`mesh-inbox [data-checkpoint="${checkpointId}"][data-action="decide"]`);
        await item.waitFor({ timeout: 15_000 });
        await item.getByLabel('Comment').fill('Which customers does this reach?');
        await item.getByRole('button', { name: 'Request info' }).click();
        await page.getByText('Information requested: Info loop run.').waitFor();

        await context.close();
        context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        page = await context.newPage();
        await mountDashboard(page, `${host.origin}/dashboard?view=inbox`, await api.token(USERS.dana));
        item = page.locator(`mesh-inbox [data-checkpoint="${checkpointId}"][data-action="answer"]`);
        await item.waitFor({ timeout: 15_000 });
        expect(await item.textContent()).toContain('Which customers does this reach?');
        expect(await page.getByRole('button', { name: 'Approve' }).count()).toBe(0);
        await screenshot(page, 'inbox-answer');
        expect(await seriousA11yViolations(page)).toEqual([]);
        await item.getByLabel('Your answer').fill('Only the beta cohort.');
        await item.getByRole('button', { name: 'Send answer' }).click();
        await page.getByText('Answer sent: Info loop run.').waitFor();

        const cp = await waitUntil(async () => {
            const s = (await api.call('GET', `/pipeline/status/${id}`, { user: USERS.ada })).body.data;
            const c = (s.checkpoints ?? []).find((x: any) => x.checkpointId === checkpointId);
            return c && !c.infoRequest && c;
        }, 'the info request to close');
        expect(cp).toBeTruthy();
        expect(JSON.stringify(cp.infoAnswers ?? [])).toContain('Only the beta cohort.');
    });

    it("shows whom a run waits on, since when, on the run's page", async () => {
        const { id, waiting } = await runAwaitingApproval(api, USERS.dana, 'Waiting on run');
        expect(waiting.nextAction.waitingOn).toBeDefined();
        await mountDashboard(page, `${host.origin}/dashboard?view=run:${id}`, await api.token(USERS.ava));
        const box = page.locator('mesh-run [part="waiting-on"]');
        await box.getByText('Waiting on').waitFor({ timeout: 15_000 });
        const text = (await box.textContent()) ?? '';
        expect(text).toContain('Ava Approver');
        expect(text).toContain('Amir Approver');
        expect(text).toMatch(/Approvals\s+0\s+of\s+1/);
        expect(await box.locator('time[datetime]').count()).toBeGreaterThanOrEqual(2);
    });

    it('is embedded by a plugin host page on another origin (MESH_CORS_ORIGINS)', async () => {
        const probe = await fetch(`${host.origin}/widget/mesh-dashboard.js`, { headers: { origin: pluginOrigin } });
        expect(probe.headers.get('access-control-allow-origin')).toBe(pluginOrigin);
        const { id } = await runAwaitingApproval(api, USERS.dana, 'Embedded run');
        await page.goto(`${pluginOrigin}/?mesh=${encodeURIComponent(host.origin)}`);
        await page.waitForFunction(`!!customElements.get('mesh-dashboard')`, undefined, { timeout: 15_000 });
        await page.getByLabel('Access token').fill(await api.token(USERS.dana));
        await page.getByRole('button', { name: 'Use token' }).click();
        await page.locator(`tr[data-run="${id}"]`).waitFor({ timeout: 15_000 });
        await screenshot(page, 'embedded');
        expect(await seriousA11yViolations(page)).toEqual([]);
    });
});
