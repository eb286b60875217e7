/** The one method of a headers object this module needs (fits `Headers` and `HttpRequest.headers`). */
export interface HeaderReader {
    get(name: string): string | null;
}

/** 1..128 characters that are safe to echo in a header, a log line and a JSON string. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** W3C Trace Context `traceparent`, version 00: version-traceid-parentid-flags. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ALL_ZEROS = /^0+$/;

/**
 * The correlation id of a request: a sane `x-correlation-id` header, else the trace id of a valid W3C
 * `traceparent`, else a fresh id from `newId`. An insane header is ignored rather than rejected, because
 * callers should not fail over a tracing aid, and echoing it unchecked would allow header/log injection.
 * `newId` is a parameter so the domain stays free of I/O and tests are deterministic.
 */
export function correlationIdFrom(headers: HeaderReader, newId: () => string): string {
    const given = headers.get('x-correlation-id')?.trim();
    if (given && SANE_ID.test(given)) return given;
    const traceId = traceIdOf(headers.get('traceparent'));
    return traceId ?? newId();
}

/** The trace id of a valid version-00 `traceparent`, or undefined (all-zero ids are invalid per the spec). */
export function traceIdOf(traceparent: string | null | undefined): string | undefined {
    // Lowercase hex only: W3C says a receiver MUST ignore a traceparent with any other characters.
    const m = TRACEPARENT.exec(traceparent ?? '');
    const traceId = m?.[1];
    const parentId = m?.[2];
    if (!traceId || !parentId || ALL_ZEROS.test(traceId) || ALL_ZEROS.test(parentId)) return undefined;
    return traceId;
}
