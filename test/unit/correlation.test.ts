import { correlationIdFrom, traceIdOf } from '../../domain/correlation';

const headers = (h: Record<string, string>) => new Headers(h);
const gen = () => 'generated-id';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

describe('correlationIdFrom', () => {
    it('uses a sane x-correlation-id header', () => {
        expect(correlationIdFrom(headers({ 'x-correlation-id': 'abc-123:x.y_z' }), gen)).toBe('abc-123:x.y_z');
    });

    it('prefers x-correlation-id over traceparent', () => {
        const h = headers({ 'x-correlation-id': 'mine', traceparent: TRACEPARENT });
        expect(correlationIdFrom(h, gen)).toBe('mine');
    });

    it.each([['has space'], ['a'.repeat(129)], ['new\u00e9line'], ['<script>'], ['a/b']])(
        'ignores an insane header %j',
        (bad) => {
            expect(correlationIdFrom(headers({ 'x-correlation-id': bad }), gen)).toBe('generated-id');
        },
    );

    it('accepts exactly 128 characters', () => {
        const id = 'a'.repeat(128);
        expect(correlationIdFrom(headers({ 'x-correlation-id': id }), gen)).toBe(id);
    });

    it('falls back to the traceparent trace id when the header is insane', () => {
        const h = headers({ 'x-correlation-id': 'bad value', traceparent: TRACEPARENT });
        expect(correlationIdFrom(h, gen)).toBe(TRACE_ID);
    });

    it('generates an id when nothing usable is present', () => {
        expect(correlationIdFrom(headers({}), gen)).toBe('generated-id');
    });
});

describe('traceIdOf', () => {
    it('reads a valid version-00 traceparent', () => {
        expect(traceIdOf(TRACEPARENT)).toBe(TRACE_ID);
    });

    it.each([
        ['wrong version', `01-${TRACE_ID}-00f067aa0ba902b7-01`],
        ['all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
        ['all-zero parent id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
        ['uppercase hex', `00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01`],
        ['short trace id', `00-${TRACE_ID.slice(1)}-00f067aa0ba902b7-01`],
        ['garbage', 'nope'],
        ['empty', ''],
    ])('rejects %s', (_name, value) => {
        expect(traceIdOf(value)).toBeUndefined();
    });

    it('handles null', () => {
        expect(traceIdOf(null)).toBeUndefined();
    });
});
