/**
 * kill -9 at random moments while 200 instances run; after each restart on the same MESH_DATA_DIR every
 * instance must continue and finish with its expected output, and every activity result must be recorded
 * exactly once.
 */
import { ChainInput, expectedChainOutput, Fixture } from '../fixtures/durableApp/contract';
import { systemKeyHeaders } from '../support/hostKeys';
import { FIXTURE_APP, HostProcess, json, startHostProcess, tempDataDir, waitUntil } from '../support/hostProcess';

jest.setTimeout(240_000);

const INSTANCES = 200;
const KILLS = 5;
const input: ChainInput = { steps: 5, approval: false, stepDelayMs: 15, timerMs: 150 };

interface Status {
    runtimeStatus: string;
    output: unknown;
    history: { EventType: string; EventId: number; TaskScheduledId?: number; TimerId?: number; Name?: string }[];
}

it('loses nothing and records nothing twice across repeated kill -9', async () => {
    const dataDir = tempDataDir('mesh-crash-');
    let host: HostProcess = await startHostProcess({ appMain: FIXTURE_APP, dataDir });
    const ids = Array.from({ length: INSTANCES }, (_, i) => `crash-${i}`);
    const started = new Set<string>();
    const rng = seeded(42);
    let interrupted = 0;

    try {
        for (let round = 0; round < KILLS; round++) {
            // Start a slice of the instances while the host is alive, then kill it at a random moment.
            const slice = ids.slice((round * INSTANCES) / KILLS, ((round + 1) * INSTANCES) / KILLS);
            const starting = slice.map((id) => startIdempotently(host, id).then((ok) => ok && started.add(id)));
            await sleep(50 + Math.floor(rng() * 400));
            interrupted += await unfinished(host);
            host.child.kill('SIGKILL');
            await Promise.allSettled(starting);
            await waitExit(host);
            host = await startHostProcess({ appMain: FIXTURE_APP, dataDir });
            // Instances whose start request died with the host are started again (same id: idempotent).
            // (A start the host committed but did not answer shows up as an existing instance.)
            for (const id of slice) {
                if (started.has(id)) continue;
                const exists =
                    (
                        await json(
                            host.origin,
                            'GET',
                            `/runtime/webhooks/durabletask/instances/${id}`,
                            undefined,
                            systemKeyHeaders(host),
                        )
                    ).status !== 404;
                if (exists || (await startIdempotently(host, id))) started.add(id);
            }
        }
        expect(started.size).toBe(INSTANCES);
        expect(interrupted).toBeGreaterThan(0); // the kills did land while instances were mid-flight

        const statuses = await waitUntil(
            async () => {
                const all = await Promise.all(ids.map((id) => status(host, id)));
                return all.every((s) => s.runtimeStatus === 'Completed') && all;
            },
            'every instance to complete',
            120_000,
            500,
        );
        for (const [i, s] of statuses.entries()) {
            expect(s.output).toEqual(expectedChainOutput(ids[i]!, input, null));
            const scheduled = s.history.filter((e) => e.EventType === 'TaskScheduled').map((e) => e.EventId);
            const completed = s.history.filter((e) => e.EventType === 'TaskCompleted').map((e) => e.TaskScheduledId);
            expect(scheduled).toHaveLength(input.steps + 1);
            expect([...completed].sort()).toEqual([...scheduled].sort()); // each result exactly once
            expect(s.history.filter((e) => e.EventType === 'TimerFired')).toHaveLength(1);
            expect(s.history.filter((e) => e.EventType === 'ExecutionStarted')).toHaveLength(1);
        }
    } finally {
        await host.stop('SIGKILL');
    }
});

async function startIdempotently(host: HostProcess, id: string): Promise<boolean> {
    try {
        const r = await json(
            host.origin,
            'POST',
            `/runtime/webhooks/durabletask/orchestrators/${Fixture.orchestrators.chain}/${id}`,
            input,
            systemKeyHeaders(host),
        );
        return r.status === 202 || r.status === 409;
    } catch {
        return false; // the host died mid-request
    }
}

async function unfinished(host: HostProcess): Promise<number> {
    try {
        const r = await json<unknown[]>(
            host.origin,
            'GET',
            '/runtime/webhooks/durabletask/instances/?runtimeStatus=Pending,Running&showInput=false',
            undefined,
            systemKeyHeaders(host),
        );
        return r.body.length;
    } catch {
        return 0;
    }
}

async function status(host: HostProcess, id: string): Promise<Status> {
    const r = await json<Status>(
        host.origin,
        'GET',
        `/runtime/webhooks/durabletask/instances/${id}?showHistory=true`,
        undefined,
        systemKeyHeaders(host),
    );
    return r.body;
}

function waitExit(host: HostProcess): Promise<void> {
    return new Promise((r) =>
        host.child.exitCode !== null || host.child.signalCode !== null ? r() : host.child.once('exit', () => r()),
    );
}

function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

/** A small deterministic PRNG so a failing kill schedule can be reproduced. */
function seeded(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
        s = (s * 1664525 + 1013904223) >>> 0;
        return s / 2 ** 32;
    };
}
