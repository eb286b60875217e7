/**
 * The five mesh engines as local simulated services, for `npm start` and tests: one node:http server per stage
 * on an ephemeral loopback port, each implementing docs/engine-contract.md with the deterministic transforms
 * of transforms.ts. Latency and transient failures can be injected; failures are drawn from a seeded,
 * counter-based generator (a pure function of seed, stage, Idempotency-Key and attempt number), so a test sees
 * the same failures however its requests interleave.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

import { correlationIdFrom } from '../../domain/correlation';
import type { ErrorCode, FieldError } from '../../domain/errors';
import { STATUS_OF } from '../../domain/errors';
import { type Stage, STAGES } from '../../domain/pipeline';
import { canonicalJson, isObject, runStage } from './transforms';

export interface SimulatorOptions {
    /** Added to every accepted invoke call (computed, failed or replayed), in ms. Default 0. */
    latencyMs?: number;
    /** Probability (0..1) that an attempt fails with 503 UNAVAILABLE. Default 0. */
    failureRate?: number;
    /** Seed of the failure draws. Default 1. */
    seed?: number;
    /** Address to listen on. Default 127.0.0.1. */
    host?: string;
    /** Told of every POST /v1/invoke with the trace context it carried (in-process use, e.g. a trace test). */
    onInvoke?: (call: { stage: Stage; traceparent: string | undefined }) => void;
}

/** What one stage's engine has done since it started. */
export interface StageStats {
    /** Every POST /v1/invoke received, valid or not. */
    calls: number;
    /** Attempts answered with an injected 503. */
    failures: number;
    /** Times the stage transform ran. */
    computations: number;
    /** Answers served again from the Idempotency-Key store. */
    replays: number;
}

export interface SimulatedEngines {
    /** Base URL of each stage's engine (what ENGINE_URL_<STAGE> should hold). */
    readonly urls: Readonly<Record<Stage, string>>;
    stats(): Record<Stage, StageStats>;
    /** Closes all five servers and their connections; calls in progress are dropped. Safe to call twice. */
    stop(): Promise<void>;
}

export const DEFAULT_SEED = 1;
const MAX_LATENCY_MS = 60_000;
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_KEY_LENGTH = 255;
/** Answers remembered per stage; the oldest are forgotten first. Plenty for a local machine's runs. */
const MAX_REMEMBERED = 10_000;
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** Reads MESH_ENGINE_LATENCY_MS, MESH_ENGINE_FAILURE_RATE and MESH_ENGINE_SEED; throws one Error naming each bad one. */
export function simulatorOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): SimulatorOptions {
    const options: SimulatorOptions = {};
    const invalid: string[] = [];
    const read = (key: string, ok: (n: number) => boolean, rule: string): number | undefined => {
        const raw = env[key]?.trim();
        if (!raw) return undefined;
        const n = Number(raw);
        if (ok(n)) return n;
        invalid.push(`${key} must be ${rule}, got '${raw}'`);
        return undefined;
    };
    const latencyMs = read('MESH_ENGINE_LATENCY_MS', isLatency, `an integer from 0 to ${MAX_LATENCY_MS}`);
    const failureRate = read('MESH_ENGINE_FAILURE_RATE', isRate, 'a number from 0 to 1');
    const seed = read('MESH_ENGINE_SEED', Number.isSafeInteger, 'an integer');
    if (invalid.length > 0) throw new Error(`Invalid configuration: ${invalid.join('; ')}`);
    if (latencyMs !== undefined) options.latencyMs = latencyMs;
    if (failureRate !== undefined) options.failureRate = failureRate;
    if (seed !== undefined) options.seed = seed;
    return options;
}

/** Starts the five engines; resolves once all listen. If one cannot start, the others are closed again. */
export async function startSimulatedEngines(options: SimulatorOptions = {}): Promise<SimulatedEngines> {
    const settings = {
        latencyMs: options.latencyMs ?? 0,
        failureRate: options.failureRate ?? 0,
        seed: options.seed ?? DEFAULT_SEED,
        onInvoke: options.onInvoke,
    };
    if (!isLatency(settings.latencyMs))
        throw new RangeError(`latencyMs must be an integer from 0 to ${MAX_LATENCY_MS}.`);
    if (!isRate(settings.failureRate)) throw new RangeError('failureRate must be a number from 0 to 1.');
    if (!Number.isSafeInteger(settings.seed)) throw new RangeError('seed must be an integer.');
    const host = options.host ?? '127.0.0.1';
    const stopping = new AbortController();

    const engines = STAGES.map((stage) => new SimulatedEngine(stage, settings, stopping.signal));
    const started: { engine: SimulatedEngine; server: Server; url: string }[] = [];
    try {
        for (const engine of engines) started.push({ engine, ...(await engine.listen(host)) });
    } catch (e: unknown) {
        stopping.abort();
        await Promise.all(started.map((s) => closeServer(s.server)));
        throw e;
    }

    const urls = Object.freeze(
        Object.fromEntries(started.map((s) => [s.engine.stage, s.url])) as Record<Stage, string>,
    );
    let stopped: Promise<void> | undefined;
    return {
        urls,
        stats: () => Object.fromEntries(engines.map((e) => [e.stage, { ...e.stats }])) as Record<Stage, StageStats>,
        stop: () => {
            stopped ??= (async () => {
                stopping.abort();
                await Promise.all(started.map((s) => closeServer(s.server)));
            })();
            return stopped;
        },
    };
}

interface Settings {
    latencyMs: number;
    failureRate: number;
    seed: number;
    onInvoke?: SimulatorOptions['onInvoke'];
}

/** An answer as sent, kept so a retry with the same Idempotency-Key gets the very same bytes. */
interface Answer {
    status: number;
    body: string;
    correlationID: string;
}

interface InvokeBody {
    runId: string;
    stage: Stage;
    iteration: number;
    input: unknown;
    metadata: Record<string, unknown>;
}

/** Refuses the request with an envelope error. */
class Refusal extends Error {
    constructor(
        readonly code: ErrorCode,
        message: string,
        readonly errors?: FieldError[],
    ) {
        super(message);
    }
}

class SimulatedEngine {
    readonly stats: StageStats = { calls: 0, failures: 0, computations: 0, replays: 0 };
    /** Successful answers by Idempotency-Key, with the fingerprint of the request that produced them. */
    private readonly answers = new Map<string, { fingerprint: string; answer: Answer }>();
    /** Attempts in progress: a concurrent duplicate waits for the same outcome instead of computing again. */
    private readonly inFlight = new Map<string, { fingerprint: string; answer: Promise<Answer> }>();
    /** Attempts made per key that has no stored answer yet: the counter of the failure draws. */
    private readonly attempts = new Map<string, number>();

    constructor(
        readonly stage: Stage,
        private readonly settings: Settings,
        private readonly stopping: AbortSignal,
    ) {}

    async listen(host: string): Promise<{ server: Server; url: string }> {
        const server = createServer((req, res) => void this.serve(req, res));
        await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen(0, host, () => {
                server.off('error', reject);
                resolve();
            });
        });
        const { port } = server.address() as AddressInfo;
        return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` };
    }

    private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const correlationID = correlationIdFrom(headerReader(req), randomUUID);
        const path = (req.url ?? '/').split('?')[0];
        try {
            if (req.method === 'POST' && path === '/v1/invoke') {
                this.stats.calls++;
                const tp = req.headers.traceparent;
                this.settings.onInvoke?.({ stage: this.stage, traceparent: typeof tp === 'string' ? tp : undefined });
                const { answer, replayed } = await this.invoke(req, correlationID);
                send(res, answer, replayed);
            } else if ((req.method === 'GET' || req.method === 'HEAD') && path === '/health') {
                send(res, envelope(200, correlationID, null, 'ok', { status: 'ok', stage: this.stage }));
            } else {
                throw new Refusal('NOT_FOUND', `No route ${req.method ?? ''} ${path ?? ''}.`);
            }
        } catch (e: unknown) {
            if (this.stopping.aborted) {
                res.destroy();
            } else if (e instanceof Refusal) {
                const data = e.errors ? { errors: e.errors } : null;
                send(res, envelope(STATUS_OF[e.code], correlationID, e.code, e.message, data));
            } else {
                send(res, envelope(500, correlationID, 'INTERNAL', 'An internal error occurred.', null));
            }
        }
    }

    private async invoke(req: IncomingMessage, correlationID: string): Promise<{ answer: Answer; replayed: boolean }> {
        const key = header(req, 'idempotency-key')?.trim();
        if (!key) throw invalid('', 'the Idempotency-Key header is required');
        if (key.length > MAX_KEY_LENGTH) {
            throw invalid('', `the Idempotency-Key header is over ${MAX_KEY_LENGTH} characters`);
        }
        const body = parseInvokeBody(await readJson(req), this.stage);
        // The fields that decide the answer; metadata is context and may differ between tries.
        const fingerprint = sha256(canonicalJson([body.runId, body.stage, body.iteration, body.input]));

        const done = this.answers.get(key);
        if (done) {
            if (done.fingerprint !== fingerprint) throw reusedKey();
            this.stats.replays++;
            await this.pause();
            return { answer: done.answer, replayed: true };
        }
        const pending = this.inFlight.get(key);
        if (pending) {
            if (pending.fingerprint !== fingerprint) throw reusedKey();
            return { answer: await pending.answer, replayed: false };
        }

        const answer = this.attempt(key, body, correlationID);
        this.inFlight.set(key, { fingerprint, answer });
        try {
            const result = await answer;
            // Only successes are kept: after a failure (injected or not) the next try runs again.
            if (result.status === 200) remember(this.answers, key, { fingerprint, answer: result });
            return { answer: result, replayed: false };
        } finally {
            this.inFlight.delete(key);
        }
    }

    /** One attempt: latency, then an injected failure or the stage transform. */
    private async attempt(key: string, body: InvokeBody, correlationID: string): Promise<Answer> {
        await this.pause();
        const attempt = (this.attempts.get(key) ?? 0) + 1;
        remember(this.attempts, key, attempt);
        if (this.settings.failureRate > 0 && this.draw(key, attempt) < this.settings.failureRate) {
            this.stats.failures++;
            const message = `The ${this.stage} engine is temporarily unavailable (simulated, attempt ${attempt}).`;
            return envelope(503, correlationID, 'UNAVAILABLE', message, null);
        }
        this.stats.computations++;
        const outcome = runStage(this.stage, body);
        if (!outcome.ok) {
            return envelope(400, correlationID, 'VALIDATION_FAILED', 'The input is not valid for this stage.', {
                errors: outcome.errors,
            });
        }
        this.attempts.delete(key);
        const data =
            outcome.continue === undefined
                ? { output: outcome.output }
                : { output: outcome.output, continue: outcome.continue };
        return envelope(200, correlationID, null, 'ok', data);
    }

    /** A uniform number in [0, 1), fixed by seed, stage, key and attempt number. */
    private draw(key: string, attempt: number): number {
        const digest = createHash('sha256').update(`${this.settings.seed}\n${this.stage}\n${key}\n${attempt}`).digest();
        return digest.readUInt32BE(0) / 2 ** 32;
    }

    private async pause(): Promise<void> {
        if (this.settings.latencyMs > 0) await sleep(this.settings.latencyMs, undefined, { signal: this.stopping });
    }
}

function parseInvokeBody(value: unknown, stage: Stage): InvokeBody {
    if (!isObject(value)) throw invalid('', 'the body must be a JSON object');
    const errors: FieldError[] = [];
    if (typeof value.runId !== 'string' || value.runId.trim() === '') {
        errors.push({ path: '/runId', message: 'is required (a non-empty string)' });
    }
    if (value.stage === undefined) errors.push({ path: '/stage', message: 'is required' });
    else if (value.stage !== stage) errors.push({ path: '/stage', message: `this engine serves '${stage}' only` });
    if (typeof value.iteration !== 'number' || !Number.isInteger(value.iteration) || value.iteration < 1) {
        errors.push({ path: '/iteration', message: 'is required (an integer from 1)' });
    }
    if (value.input === undefined || value.input === null) errors.push({ path: '/input', message: 'is required' });
    if (value.metadata !== undefined && !isObject(value.metadata)) {
        errors.push({ path: '/metadata', message: 'must be an object' });
    }
    if (errors.length > 0) throw new Refusal('VALIDATION_FAILED', 'Request validation failed.', errors);
    return {
        runId: value.runId as string,
        stage,
        iteration: value.iteration as number,
        input: value.input,
        metadata: (value.metadata as Record<string, unknown> | undefined) ?? {},
    };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
    const mediaType = (header(req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (mediaType !== 'application/json') throw invalid('', 'content-type must be application/json');
    if (Number(header(req, 'content-length') ?? NaN) > MAX_BODY_BYTES) {
        throw new Refusal('PAYLOAD_TOO_LARGE', `Request body exceeds ${MAX_BODY_BYTES} bytes.`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
        total += chunk.byteLength;
        if (total > MAX_BODY_BYTES)
            throw new Refusal('PAYLOAD_TOO_LARGE', `Request body exceeds ${MAX_BODY_BYTES} bytes.`);
        chunks.push(chunk);
    }
    try {
        return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    } catch {
        throw invalid('', 'the body is not valid JSON');
    }
}

function envelope(
    status: number,
    correlationID: string,
    code: ErrorCode | null,
    message: string,
    data: unknown,
): Answer {
    return { status, correlationID, body: JSON.stringify({ error_code: code, message, correlationID, data }) };
}

function send(res: ServerResponse, answer: Answer, replayed = false): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(answer.status, {
        'content-type': JSON_CONTENT_TYPE,
        'content-length': Buffer.byteLength(answer.body),
        'x-correlation-id': answer.correlationID,
        ...(replayed ? { 'idempotent-replayed': 'true' } : {}),
    });
    res.end(answer.body);
}

function reusedKey(): Refusal {
    return new Refusal('CONFLICT', 'This Idempotency-Key was already used for a different request.');
}

function invalid(path: string, message: string): Refusal {
    return new Refusal('VALIDATION_FAILED', 'Request validation failed.', [{ path, message }]);
}

/** Map.set that forgets the oldest entry beyond MAX_REMEMBERED (a Map iterates in insertion order). */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key);
    map.set(key, value);
    if (map.size > MAX_REMEMBERED) map.delete(map.keys().next().value!);
}

function header(req: IncomingMessage, name: string): string | undefined {
    const value = req.headers[name];
    return Array.isArray(value) ? value[0] : value;
}

function headerReader(req: IncomingMessage): { get(name: string): string | null } {
    return { get: (name) => header(req, name.toLowerCase()) ?? null };
}

async function closeServer(server: Server): Promise<void> {
    await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
    });
}

function isLatency(n: number): boolean {
    return Number.isInteger(n) && n >= 0 && n <= MAX_LATENCY_MS;
}

function isRate(n: number): boolean {
    return Number.isFinite(n) && n >= 0 && n <= 1;
}

function sha256(text: string): string {
    return createHash('sha256').update(text).digest('hex');
}
