/**
 * What each simulated mesh engine computes: small deterministic text transforms, so a run's outputs can be
 * predicted and checked exactly (docs/engine-contract.md "The local simulated engines"). Pure functions: the
 * HTTP side (validation of the request, idempotency, latency, injected failures) lives in simulator.ts.
 *
 *   generation   { prompt } | { best } | string | any JSON  ->  { ideas: [`${p} — idea 1`, … 2, … 3] }
 *   filtering    { ideas }            ->  { ideas: those at even 0-based positions (1st, 3rd, …) }
 *   creativity   { ideas }            ->  { ideas: each + ' (reimagined)' }
 *   taste        { ideas }            ->  { ideas, scores: each idea's length in characters }
 *   improvement  { ideas, scores }    ->  { best: the first idea with the highest score, iteration },
 *                                         continue = iteration < wantIterations
 *
 * `wantIterations` (a positive integer, default 1) is read from the input, else from the request metadata, and
 * every stage copies it from its input to its output, so it reaches improvement and survives a loop back.
 */
import type { FieldError } from '../../domain/errors';
import type { Stage } from '../../domain/pipeline';

export interface StageRequest {
    iteration: number;
    input: unknown;
    metadata: Record<string, unknown>;
}

export type StageOutcome = { ok: true; output: unknown; continue?: boolean } | { ok: false; errors: FieldError[] };

/** How many ideas generation makes. */
export const IDEAS_PER_PROMPT = 3;
export const REIMAGINED_SUFFIX = ' (reimagined)';

export function runStage(stage: Stage, req: StageRequest): StageOutcome {
    const errors: FieldError[] = [];
    const want = wantIterations(req, errors);
    if (errors.length > 0) return { ok: false, errors };
    const carry = want.given ? { wantIterations: want.value } : {};

    if (stage === 'generation') {
        const prompt = promptOf(req.input);
        const ideas = Array.from({ length: IDEAS_PER_PROMPT }, (_, i) => `${prompt} — idea ${i + 1}`);
        return { ok: true, output: { ideas, ...carry } };
    }

    const ideas = stringArray(req.input, 'ideas', errors);
    if (!ideas) return { ok: false, errors };
    switch (stage) {
        case 'filtering':
            return { ok: true, output: { ideas: ideas.filter((_, i) => i % 2 === 0), ...carry } };
        case 'creativity':
            return { ok: true, output: { ideas: ideas.map((idea) => idea + REIMAGINED_SUFFIX), ...carry } };
        case 'taste':
            return { ok: true, output: { ideas, scores: ideas.map(characters), ...carry } };
        case 'improvement': {
            const scores = numberArray(req.input, 'scores', errors);
            if (!scores) return { ok: false, errors };
            if (ideas.length === 0)
                return { ok: false, errors: [{ path: '/input/ideas', message: 'must not be empty' }] };
            if (scores.length !== ideas.length) {
                return { ok: false, errors: [{ path: '/input/scores', message: 'must have one score per idea' }] };
            }
            // The first of equal scores wins, so ties resolve the same way every time.
            const bestAt = scores.reduce((best, score, i) => (score > scores[best]! ? i : best), 0);
            return {
                ok: true,
                output: { best: ideas[bestAt], iteration: req.iteration, ...carry },
                continue: req.iteration < want.value,
            };
        }
    }
}

/**
 * The text generation works from: a string input itself, else `input.prompt`, else `input.best` (what
 * improvement hands back when the run loops), else the input as canonical JSON.
 */
export function promptOf(input: unknown): string {
    if (typeof input === 'string') return input;
    if (isObject(input)) {
        if (typeof input.prompt === 'string') return input.prompt;
        if (typeof input.best === 'string') return input.best;
    }
    return canonicalJson(input);
}

/** JSON with object keys sorted at every depth: equal values always give equal text. */
export function canonicalJson(value: unknown): string {
    return JSON.stringify(value, (_key, v: unknown) =>
        isObject(v)
            ? Object.fromEntries(
                  Object.keys(v)
                      .sort()
                      .map((k) => [k, v[k]]),
              )
            : v,
    );
}

/** Length in Unicode code points, so a score does not depend on how a string is encoded. */
function characters(text: string): number {
    return Array.from(text).length;
}

function wantIterations(req: StageRequest, errors: FieldError[]): { value: number; given: boolean } {
    const fromInput = isObject(req.input) ? req.input.wantIterations : undefined;
    const [value, path] =
        fromInput !== undefined
            ? [fromInput, '/input/wantIterations']
            : [req.metadata.wantIterations, '/metadata/wantIterations'];
    if (value === undefined) return { value: 1, given: false };
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
        errors.push({ path, message: 'must be a positive integer' });
        return { value: 1, given: false };
    }
    return { value, given: true };
}

function stringArray(input: unknown, field: string, errors: FieldError[]): string[] | undefined {
    const value = isObject(input) ? input[field] : undefined;
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
    errors.push({ path: `/input/${field}`, message: 'must be an array of strings' });
    return undefined;
}

function numberArray(input: unknown, field: string, errors: FieldError[]): number[] | undefined {
    const value = isObject(input) ? input[field] : undefined;
    if (Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        return value as number[];
    }
    errors.push({ path: `/input/${field}`, message: 'must be an array of numbers' });
    return undefined;
}

export function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}
