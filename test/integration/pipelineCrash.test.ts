/**
 * SPEC "Local operation": killing the host (kill -9) and starting it again with the same MESH_DATA_DIR loses
 * nothing — runs continue where they were, waiting checkpoints still wait, and the audit chain still verifies.
 */
import { Api, USERS } from '../support/api';
import { HostProcess, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(180_000);

const LOW = 40;
const HIGH = 20;
const env = { MESH_ENGINE_LATENCY_MS: '15' };

it('kill -9 during runs and decisions: every run finishes, each state change recorded once, chains verify', async () => {
    const dataDir = tempDataDir('mesh-pipeline-crash-');
    let host: HostProcess = await startHostProcess({ dataDir, env });
    let api = new Api(host);
    const restart = async (afterMs: number): Promise<void> => {
        await new Promise((r) => setTimeout(r, afterMs));
        await host.stop('SIGKILL');
        host = await startHostProcess({ dataDir, env });
        api = new Api(host);
    };
    const specs = [
        ...Array.from({ length: LOW }, (_, i) => ({ key: `low-${i}`, risk: 'low' })),
        ...Array.from({ length: HIGH }, (_, i) => ({ key: `high-${i}`, risk: 'high' })),
    ];
    const ids = new Map<string, string>();
    // Idempotency-Key per run: a submission whose answer died with the host is retried safely.
    const submitAll = async (): Promise<void> => {
        await Promise.allSettled(
            specs
                .filter((s) => !ids.has(s.key))
                .map(async (s) => {
                    const r = await api.call('POST', '/pipeline/run', {
                        user: USERS.dana,
                        headers: { 'idempotency-key': s.key },
                        body: {
                            input: { prompt: s.key },
                            metadata: { team: 'alpha', riskLevel: s.risk, complianceTags: [] },
                        },
                    });
                    if (r.status === 202) ids.set(s.key, r.body.data.orchestrationID as string);
                }),
        );
    };
    try {
        const submitting = submitAll();
        await restart(150);
        await submitting;
        await submitAll();
        await restart(300);
        await submitAll();
        expect(ids.size).toBe(LOW + HIGH);

        // Approve every checkpoint as it opens, killing the host once more in the middle of it.
        let killed = false;
        let last: any[] = [];
        let lastRefusal: string | undefined;
        await waitUntil(
            async () => {
                const answers = await Promise.all(
                    [...ids.values()].map((id) => api.call('GET', `/pipeline/status/${id}`, { user: USERS.ada })),
                );
                // A host that is still starting answers 503: poll again, but keep what it said for the report.
                const refused = answers.filter((a) => a.status !== 200);
                if (refused.length > 0) {
                    lastRefusal = refused.map((a) => `${a.status} ${a.body?.error_code}: ${a.body?.message}`)[0];
                    return false;
                }
                const statuses = answers.map((a) => a.body.data);
                last = statuses;
                const waiting = statuses.filter((s) => s.status === 'AwaitingApproval' && s.nextAction);
                await Promise.allSettled(
                    waiting.map((s) =>
                        api.call('POST', `/pipeline/checkpoints/${s.nextAction.checkpointId}/decision`, {
                            user: USERS.ava,
                            body: { decision: 'approve' },
                        }),
                    ),
                );
                if (!killed && waiting.length > 0) {
                    killed = true;
                    await restart(20);
                }
                return statuses.every((s) => s.status === 'Completed');
            },
            'every run to complete',
            120_000,
            300,
        ).catch((e: unknown) => {
            const stuck = last
                .filter((s) => s.status !== 'Completed')
                .map((s) => ({
                    id: s.orchestrationID,
                    status: s.status,
                    stage: s.currentStage,
                    next: s.nextAction,
                    history: s.history.slice(-4),
                }));
            throw new Error(
                `${String(e)}\nlast refused status read: ${lastRefusal ?? 'none'}\n` +
                    `stuck: ${JSON.stringify(stuck.slice(0, 3), null, 1)}\nhost output:\n${host.output().slice(-3000)}`,
            );
        });

        for (const id of ids.values()) {
            const logs = (await api.call('GET', `/pipeline/logs/${id}?limit=1000`, { user: USERS.carl })).body.data;
            expect(logs.chain).toMatchObject({ verified: true });
            const types: string[] = logs.events.map((e: any) => e.type);
            const count = (t: string): number => types.filter((x) => x === t).length;
            expect(count('pipeline.queued')).toBe(1);
            expect(count('pipeline.started')).toBe(1);
            expect(count('stage.started')).toBe(5);
            expect(count('stage.completed')).toBe(5);
            expect(count('pipeline.completed')).toBe(1);
            expect(count('checkpoint.opened')).toBe(count('checkpoint.decided'));
        }
    } finally {
        await host.stop('SIGKILL');
    }
});
