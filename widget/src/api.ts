/**
 * The one API client the views share (STYLE.md §11): every request carries `Authorization: Bearer <token>` from the
 * host page's `tokenProvider`, errors come back as the product's envelope and are raised as `MeshApiError` (the
 * dashboard shows them and emits `mesh-error`), and a 401 asks the host for a fresh token once and retries.
 * `EventSource` cannot send a bearer header, so the event stream is read with `fetch` and resumed with
 * `Last-Event-ID` after a drop: nothing is lost on reconnect.
 */

import type { NextAction } from '../../schemas/v1/types.generated';

export type TokenProvider = () => Promise<string>;

/** What `mesh-error` carries: the envelope's error code, message and correlation id. */
export interface MeshErrorDetail {
    error_code: string;
    message: string;
    correlationID: string;
    status: number;
}

export class MeshApiError extends Error {
    constructor(readonly detail: MeshErrorDetail) {
        super(detail.message);
        this.name = 'MeshApiError';
    }
}

interface Envelope<T> {
    error_code: string | null;
    message: string;
    correlationID: string;
    data: T;
}

export interface ApiOptions {
    baseUrl: string;
    tokenProvider: TokenProvider;
    /** Told of every error before it is thrown, so one place shows it and emits `mesh-error`. */
    onError?: (e: MeshErrorDetail) => void;
}

export class MeshApi {
    constructor(private readonly o: ApiOptions) {}

    get baseUrl(): string {
        return this.o.baseUrl.replace(/\/+$/, '');
    }

    /** Calls the API and returns the envelope's `data`; a failed call throws `MeshApiError` (and reports it). */
    async call<T>(
        method: string,
        path: string,
        body?: unknown,
        opts: { quiet?: boolean; expected?: number[] } = {},
    ): Promise<T> {
        let response: Response;
        try {
            response = await this.fetchAuthorized(path, {
                method,
                headers: body === undefined ? {} : { 'content-type': 'application/json' },
                body: body === undefined ? undefined : JSON.stringify(body),
            });
        } catch (e: unknown) {
            throw this.fail(
                {
                    error_code: 'UNAVAILABLE',
                    message: `The Mesh API at ${this.baseUrl} could not be reached (${e instanceof Error ? e.message : String(e)}).`,
                    correlationID: '',
                    status: 0,
                },
                opts.quiet,
            );
        }
        const text = await response.text();
        let envelope: Envelope<T> | undefined;
        try {
            envelope = text ? (JSON.parse(text) as Envelope<T>) : undefined;
        } catch {
            envelope = undefined;
        }
        if (response.ok && envelope && envelope.error_code === null) return envelope.data;
        throw this.fail(
            {
                error_code: envelope?.error_code ?? 'INTERNAL',
                message: envelope?.message ?? `The API answered ${response.status} without an envelope.`,
                correlationID: envelope?.correlationID ?? response.headers.get('x-correlation-id') ?? '',
                status: response.status,
            },
            opts.quiet || opts.expected?.includes(response.status),
        );
    }

    /**
     * Reads a Server-Sent Events stream until `signal` aborts, reconnecting after a drop with the last event id seen
     * (so the server resends what was missed). `onEvent` gets each event's name and parsed data.
     */
    async stream(
        path: string,
        onEvent: (event: string, data: unknown) => void,
        signal: AbortSignal,
        onOpen?: () => void,
    ): Promise<void> {
        let lastEventId: string | undefined;
        let retryMs = 2000;
        while (!signal.aborted) {
            try {
                const response = await this.fetchAuthorized(path, {
                    headers: { accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
                    signal,
                });
                if (!response.ok || !response.body) {
                    const text = await response.text();
                    const env = safeJson(text) as Partial<Envelope<unknown>> | undefined;
                    this.fail({
                        error_code: env?.error_code ?? 'UNAVAILABLE',
                        message: env?.message ?? `The event stream answered ${response.status}.`,
                        correlationID: env?.correlationID ?? '',
                        status: response.status,
                    });
                    // A refusal (bad token, no access) is not retried in a tight loop.
                    if (response.status >= 400 && response.status < 500 && response.status !== 429) return;
                } else {
                    onOpen?.();
                    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
                    let buffer = '';
                    for (;;) {
                        const { value, done } = await reader.read();
                        if (done) break;
                        buffer += value;
                        let end: number;
                        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
                            const block = buffer.slice(0, end);
                            buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
                            const parsed = parseSseBlock(block);
                            if (parsed.id !== undefined) lastEventId = parsed.id;
                            if (parsed.retry !== undefined) retryMs = parsed.retry;
                            if (parsed.data !== undefined) onEvent(parsed.event ?? 'message', safeJson(parsed.data));
                        }
                    }
                }
            } catch (_e: unknown) {
                if (signal.aborted) return;
            }
            if (signal.aborted) return;
            await new Promise<void>((resolve) => {
                const t = setTimeout(resolve, retryMs);
                signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
            });
        }
    }

    /** `fetch` with the bearer token; a 401 asks the host page for a token again, once, and retries. */
    private async fetchAuthorized(path: string, init: RequestInit): Promise<Response> {
        const send = async (): Promise<Response> => {
            const token = await this.o.tokenProvider();
            const headers = new Headers(init.headers);
            headers.set('authorization', `Bearer ${token}`);
            return fetch(this.baseUrl + path, { ...init, headers, mode: 'cors', credentials: 'omit' });
        };
        const first = await send();
        if (first.status !== 401) return first;
        await first.body?.cancel();
        return send();
    }

    private fail(detail: MeshErrorDetail, quiet = false): MeshApiError {
        if (!quiet) this.o.onError?.(detail);
        return new MeshApiError(detail);
    }
}

function parseSseBlock(block: string): { id?: string; event?: string; data?: string; retry?: number } {
    const out: { id?: string; event?: string; data?: string; retry?: number } = {};
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
        if (!line || line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'id') out.id = value;
        else if (field === 'event') out.event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'retry' && /^\d+$/.test(value)) out.retry = Number(value);
    }
    if (data.length) out.data = data.join('\n');
    return out;
}

function safeJson(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return undefined;
    }
}

/** The claims the widget reads from the caller's token, only to hide controls: the API still decides. */
export interface Caller {
    sub: string;
    name: string;
    roles: string[];
    teams: string[];
}

/** Decodes (never verifies) a JWT's payload. */
export function callerOf(token: string): Caller {
    try {
        const part = token.split('.')[1] ?? '';
        const json = atob(
            part
                .replace(/-/g, '+')
                .replace(/_/g, '/')
                .padEnd(Math.ceil(part.length / 4) * 4, '='),
        );
        const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)))) as Record<
            string,
            unknown
        >;
        const list = (v: unknown): string[] =>
            Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [];
        const sub = [claims.oid, claims.sub].find((v): v is string => typeof v === 'string') ?? '';
        return {
            sub,
            name: typeof claims.name === 'string' ? claims.name : sub,
            roles: list(claims.roles),
            teams: [...new Set([...list(claims.team), ...list(claims.groups)])],
        };
    } catch {
        return { sub: '', name: '', roles: [], teams: [] };
    }
}

export const can = {
    operate: (c: Caller): boolean => c.roles.includes('Mesh.Operator') || c.roles.includes('Mesh.Admin'),
    submit: (c: Caller): boolean =>
        ['Mesh.Developer', 'Mesh.DataScientist', 'Mesh.Operator', 'Mesh.Admin'].some((r) => c.roles.includes(r)),
    decide: (c: Caller, requiredRoles: readonly string[]): boolean =>
        c.roles.includes('Mesh.Admin') || requiredRoles.some((r) => c.roles.includes(r)),
};

/** One run as `GET /pipeline` and the event stream show it. */
export interface RunSummary {
    orchestrationID: string;
    status: string;
    currentStage: string | null;
    team: string;
    title: string | null;
    riskLevel: string;
    createdBy: string;
    createdAt: string;
    updatedAt: string;
    nextAction: NextAction | null;
}

// The API's own shapes, generated from its JSON Schemas (type-only: nothing of it reaches the bundle).
export type { InfoRequest, NextAction, WaitingOn } from '../../schemas/v1/types.generated';
