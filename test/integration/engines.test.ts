/** The local simulated engines over real HTTP: the contract, the deterministic transforms, idempotency, faults. */
import { HttpEngineClient } from '../../adapters/engines/httpEngineClient';
import { type Stage, STAGES } from '../../domain/pipeline';
import type { EngineRequest } from '../../domain/ports';
import { type SimulatedEngines, simulatorOptionsFromEnv, startSimulatedEngines } from '../../local/engines/simulator';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

interface Envelope {
    error_code: string | null;
    message: string;
    correlationID: string;
    data: { errors?: { path: string; message: string }[]; [field: string]: unknown } | null;
}

let engines: SimulatedEngines | undefined;

afterEach(async () => {
    await engines?.stop();
    engines = undefined;
});

async function start(options: Parameters<typeof startSimulatedEngines>[0] = {}): Promise<SimulatedEngines> {
    engines = await startSimulatedEngines(options);
    return engines;
}

/** A raw POST /v1/invoke, so tests can see status, headers and the exact bytes. */
async function post(
    stage: Stage,
    body: unknown,
    headers: Record<string, string> = {},
): Promise<{ status: number; text: string; json: Envelope; headers: Headers }> {
    const res = await fetch(`${engines!.urls[stage]}/v1/invoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: JSON.parse(text) as Envelope, headers: res.headers };
}

function invokeBody(stage: Stage, input: unknown, iteration = 1): Record<string, unknown> {
    return { runId: 'run-1', stage, iteration, input, metadata: { team: 'alpha' } };
}

function engineRequest(stage: Stage, input: unknown, iteration = 1): EngineRequest {
    return {
        runId: 'run-7',
        stage,
        iteration,
        input,
        metadata: { team: 'alpha' },
        correlationID: 'corr-7',
        traceparent: TRACEPARENT,
        idempotencyKey: `run-7:${stage}:${iteration}`,
    };
}

describe('simulated engines', () => {
    it('serve five distinct loopback URLs, each with GET /health', async () => {
        const { urls } = await start();

        expect(Object.keys(urls)).toEqual([...STAGES]);
        expect(new Set(Object.values(urls)).size).toBe(5);
        for (const stage of STAGES) {
            expect(urls[stage]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
            const res = await fetch(`${urls[stage]}/health`);
            expect(res.status).toBe(200);
            expect(((await res.json()) as Envelope).data).toEqual({ status: 'ok', stage });
        }
    });

    it('chain all five stages end to end through HttpEngineClient with deterministic outputs', async () => {
        const { urls } = await start();
        const client = new HttpEngineClient({ urls, timeoutMs: 5_000 });

        const generation = await client.invoke(
            engineRequest('generation', { prompt: 'solar kite', wantIterations: 2 }),
        );
        expect(generation).toEqual({
            ok: true,
            continue: false,
            output: {
                ideas: ['solar kite — idea 1', 'solar kite — idea 2', 'solar kite — idea 3'],
                wantIterations: 2,
            },
        });

        const filtering = await client.invoke(engineRequest('filtering', generation.ok && generation.output));
        expect(filtering).toEqual({
            ok: true,
            continue: false,
            output: { ideas: ['solar kite — idea 1', 'solar kite — idea 3'], wantIterations: 2 },
        });

        const creativity = await client.invoke(engineRequest('creativity', filtering.ok && filtering.output));
        const reimagined = ['solar kite — idea 1 (reimagined)', 'solar kite — idea 3 (reimagined)'];
        expect(creativity).toEqual({ ok: true, continue: false, output: { ideas: reimagined, wantIterations: 2 } });

        const taste = await client.invoke(engineRequest('taste', creativity.ok && creativity.output));
        expect(taste).toEqual({
            ok: true,
            continue: false,
            output: { ideas: reimagined, scores: [32, 32], wantIterations: 2 },
        });

        // Iteration 1 of 2 wanted: improvement asks for another round; equal scores pick the first idea.
        const improvement = await client.invoke(engineRequest('improvement', taste.ok && taste.output));
        expect(improvement).toEqual({
            ok: true,
            continue: true,
            output: { best: 'solar kite — idea 1 (reimagined)', iteration: 1, wantIterations: 2 },
        });

        // Round 2 starts from the best idea and stops there.
        const again = await client.invoke(engineRequest('generation', improvement.ok && improvement.output, 2));
        expect(again).toMatchObject({
            ok: true,
            output: { ideas: ['solar kite — idea 1 (reimagined) — idea 1', expect.any(String), expect.any(String)] },
        });
        const last = await client.invoke(
            engineRequest('improvement', { ideas: ['a', 'ccc', 'bb'], scores: [1, 3, 2], wantIterations: 2 }, 2),
        );
        expect(last).toEqual({ ok: true, continue: false, output: { best: 'ccc', iteration: 2, wantIterations: 2 } });

        expect(engines!.stats().improvement).toEqual({ calls: 2, failures: 0, computations: 2, replays: 0 });
    });

    it('improvement stops after one iteration by default and reads wantIterations from metadata too', async () => {
        await start();
        const input = { ideas: ['x', 'yy'], scores: [1, 2] };

        const plain = await post('improvement', invokeBody('improvement', input), { 'Idempotency-Key': 'k1' });
        expect(plain.json.data).toEqual({ output: { best: 'yy', iteration: 1 }, continue: false });

        const body = { ...invokeBody('improvement', input), metadata: { wantIterations: 3 } };
        const viaMetadata = await post('improvement', body, { 'Idempotency-Key': 'k2' });
        expect(viaMetadata.json.data).toEqual({
            output: { best: 'yy', iteration: 1, wantIterations: 3 },
            continue: true,
        });
    });

    it('answer a repeated Idempotency-Key with the identical bytes and compute once', async () => {
        await start();
        const body = invokeBody('generation', { prompt: 'p' });

        const first = await post('generation', body, {
            'Idempotency-Key': 'run-1:generation:1',
            'x-correlation-id': 'c-1',
        });
        const second = await post('generation', body, {
            'Idempotency-Key': 'run-1:generation:1',
            'x-correlation-id': 'c-2',
        });

        expect(first.status).toBe(200);
        expect(first.json).toEqual({
            error_code: null,
            message: 'ok',
            correlationID: 'c-1',
            data: { output: { ideas: ['p — idea 1', 'p — idea 2', 'p — idea 3'] } },
        });
        expect(second.status).toBe(200);
        expect(second.text).toBe(first.text);
        expect(second.headers.get('idempotent-replayed')).toBe('true');
        expect(engines!.stats().generation).toEqual({ calls: 2, failures: 0, computations: 1, replays: 1 });
    });

    it('compute once for concurrent duplicates', async () => {
        await start({ latencyMs: 100 });
        const body = invokeBody('taste', { ideas: ['ab'] });

        const answers = await Promise.all([1, 2, 3].map(() => post('taste', body, { 'Idempotency-Key': 'dup' })));

        expect(new Set(answers.map((a) => a.text)).size).toBe(1);
        expect(answers[0]!.json.data).toEqual({ output: { ideas: ['ab'], scores: [2] } });
        expect(engines!.stats().taste.computations).toBe(1);
    });

    it('refuse a reused Idempotency-Key whose request differs (metadata aside)', async () => {
        await start();
        await post('creativity', invokeBody('creativity', { ideas: ['a'] }), { 'Idempotency-Key': 'k' });

        const otherMetadata = { ...invokeBody('creativity', { ideas: ['a'] }), metadata: { team: 'beta' } };
        expect((await post('creativity', otherMetadata, { 'Idempotency-Key': 'k' })).status).toBe(200);
        const otherInput = await post('creativity', invokeBody('creativity', { ideas: ['b'] }), {
            'Idempotency-Key': 'k',
        });
        expect(otherInput.status).toBe(409);
        expect(otherInput.json.error_code).toBe('CONFLICT');
    });

    it('fail every attempt with 503 UNAVAILABLE at failureRate 1, which the client throws as transient', async () => {
        const { urls } = await start({ failureRate: 1 });

        const res = await post('filtering', invokeBody('filtering', { ideas: [] }), {
            'Idempotency-Key': 'f',
            'x-correlation-id': 'c-9',
        });
        expect(res.status).toBe(503);
        expect(res.json).toMatchObject({ error_code: 'UNAVAILABLE', correlationID: 'c-9', data: null });

        const client = new HttpEngineClient({ urls, timeoutMs: 5_000 });
        await expect(client.invoke(engineRequest('filtering', { ideas: [] }))).rejects.toThrow(
            /^filtering engine: HTTP 503 UNAVAILABLE: /,
        );
        expect(engines!.stats().filtering).toEqual({ calls: 2, failures: 2, computations: 0, replays: 0 });
    });

    it('draw the same failures for the same seed, and answer a retried key as if it had never failed', async () => {
        const outcomes = async (seed: number): Promise<number[]> => {
            await start({ failureRate: 0.5, seed });
            const statuses: number[] = [];
            for (let i = 0; i < 20; i++) {
                const res = await post('generation', invokeBody('generation', { prompt: `p${i}` }), {
                    'Idempotency-Key': `k${i}`,
                });
                statuses.push(res.status);
            }
            await engines!.stop();
            return statuses;
        };

        const a = await outcomes(42);
        expect(await outcomes(42)).toEqual(a);
        expect(a).toContain(503);
        expect(a).toContain(200);
        expect(await outcomes(7)).not.toEqual(a);

        // Retry a failed key until it succeeds: the answer is what a fault-free engine gives.
        await start({ failureRate: 0.5, seed: 42 });
        const failed = a.indexOf(503);
        const retry = async (attemptsLeft: number): Promise<Awaited<ReturnType<typeof post>>> => {
            const body = invokeBody('generation', { prompt: `p${failed}` });
            const answer = await post('generation', body, { 'Idempotency-Key': `k${failed}` });
            return answer.status === 200 || attemptsLeft <= 1 ? answer : retry(attemptsLeft - 1);
        };
        const res = await retry(50);
        const clean = await startSimulatedEngines();
        try {
            const reference = await fetch(`${clean.urls.generation}/v1/invoke`, {
                method: 'POST',
                headers: { 'content-type': 'application/json', 'Idempotency-Key': `k${failed}` },
                body: JSON.stringify(invokeBody('generation', { prompt: `p${failed}` })),
            });
            expect(res.status).toBe(200);
            expect(res.json.data).toEqual(((await reference.json()) as Envelope).data);
        } finally {
            await clean.stop();
        }
    });

    it('answer 400 VALIDATION_FAILED for a bad request, listing each failing field', async () => {
        await start();

        const noKey = await post('taste', invokeBody('taste', { ideas: [] }));
        expect(noKey.status).toBe(400);
        expect(noKey.json).toMatchObject({
            error_code: 'VALIDATION_FAILED',
            data: { errors: [{ path: '', message: expect.stringContaining('Idempotency-Key') }] },
        });

        const empty = await post('taste', { stage: 'taste' }, { 'Idempotency-Key': 'k' });
        expect(empty.status).toBe(400);
        expect(empty.json.data?.errors?.map((e) => e.path)).toEqual(['/runId', '/iteration', '/input']);

        const wrongStage = await post('taste', invokeBody('creativity', { ideas: [] }), { 'Idempotency-Key': 'k' });
        expect(wrongStage.json.data?.errors).toEqual([{ path: '/stage', message: "this engine serves 'taste' only" }]);

        const badInput = await post('improvement', invokeBody('improvement', { ideas: 'nope' }), {
            'Idempotency-Key': 'k',
        });
        expect(badInput.status).toBe(400);
        expect(badInput.json.data?.errors).toEqual([{ path: '/input/ideas', message: 'must be an array of strings' }]);

        const notJson = await post('taste', '{nope', { 'Idempotency-Key': 'k' });
        expect(notJson.json.error_code).toBe('VALIDATION_FAILED');

        const client = new HttpEngineClient({ urls: engines!.urls, timeoutMs: 5_000 });
        expect(await client.invoke(engineRequest('filtering', { nothing: true }))).toEqual({
            ok: false,
            code: 'VALIDATION_FAILED',
            message: 'The input is not valid for this stage. (/input/ideas must be an array of strings)',
        });
    });

    it('answer unknown routes with a 404 envelope', async () => {
        const { urls } = await start();

        const res = await fetch(`${urls.taste}/v2/invoke`, { method: 'POST' });
        expect(res.status).toBe(404);
        expect(((await res.json()) as Envelope).error_code).toBe('NOT_FOUND');
    });

    it('add latencyMs to each call', async () => {
        await start({ latencyMs: 150 });
        const started = Date.now();

        await post('creativity', invokeBody('creativity', { ideas: [] }), { 'Idempotency-Key': 'k' });

        expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    });

    it('stop() closes every server, even with a call in progress, and may be called twice', async () => {
        const { urls } = await start({ latencyMs: 5_000 });
        const pending = post('generation', invokeBody('generation', 'x'), { 'Idempotency-Key': 'k' }).then(
            () => 'answered',
            () => 'dropped',
        );
        await new Promise((resolve) => setTimeout(resolve, 50));

        await engines!.stop();
        await engines!.stop();

        expect(await pending).toBe('dropped');
        for (const stage of STAGES) {
            await expect(fetch(`${urls[stage]}/health`)).rejects.toThrow();
        }
    });
});

describe('simulatorOptionsFromEnv', () => {
    it('reads the MESH_ENGINE_* settings', () => {
        expect(simulatorOptionsFromEnv({})).toEqual({});
        expect(
            simulatorOptionsFromEnv({
                MESH_ENGINE_LATENCY_MS: '25',
                MESH_ENGINE_FAILURE_RATE: '0.2',
                MESH_ENGINE_SEED: '9',
            }),
        ).toEqual({ latencyMs: 25, failureRate: 0.2, seed: 9 });
    });

    it('names every invalid setting in one error', () => {
        expect(() =>
            simulatorOptionsFromEnv({
                MESH_ENGINE_LATENCY_MS: '-1',
                MESH_ENGINE_FAILURE_RATE: '1.5',
                MESH_ENGINE_SEED: 'x',
            }),
        ).toThrow(
            "Invalid configuration: MESH_ENGINE_LATENCY_MS must be an integer from 0 to 60000, got '-1'; " +
                "MESH_ENGINE_FAILURE_RATE must be a number from 0 to 1, got '1.5'; MESH_ENGINE_SEED must be an integer, got 'x'",
        );
    });

    it('is rejected by startSimulatedEngines when out of range', async () => {
        await expect(startSimulatedEngines({ failureRate: 2 })).rejects.toThrow(RangeError);
    });
});
