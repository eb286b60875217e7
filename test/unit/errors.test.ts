import { fail, ok } from '../../domain/envelope';
import {
    ConflictError,
    DomainError,
    EngineFailedError,
    ErrorCode,
    ForbiddenError,
    LinkExpiredError,
    LinkInvalidError,
    LinkUsedError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    STATUS_OF,
    UnauthenticatedError,
    UnavailableError,
    UnsupportedApiVersionError,
    ValidationError,
} from '../../domain/errors';

describe('domain errors', () => {
    it.each<[DomainError, ErrorCode, number]>([
        [new ValidationError('bad'), 'VALIDATION_FAILED', 400],
        [new UnsupportedApiVersionError('2'), 'UNSUPPORTED_API_VERSION', 400],
        [new UnauthenticatedError(), 'UNAUTHENTICATED', 401],
        [new ForbiddenError(), 'FORBIDDEN', 403],
        [new NotFoundError(), 'NOT_FOUND', 404],
        [new ConflictError(), 'CONFLICT', 409],
        [new LinkExpiredError(), 'LINK_EXPIRED', 410],
        [new LinkUsedError(), 'LINK_USED', 410],
        [new LinkInvalidError(), 'LINK_INVALID', 400],
        [new RateLimitedError(5), 'RATE_LIMITED', 429],
        [new PayloadTooLargeError(10), 'PAYLOAD_TOO_LARGE', 413],
        [new EngineFailedError(), 'ENGINE_FAILED', 502],
        [new UnavailableError(), 'UNAVAILABLE', 503],
    ])('%s carries %s / %d', (err, code, status) => {
        expect(err).toBeInstanceOf(DomainError);
        expect(err).toBeInstanceOf(Error);
        expect(err.code).toBe(code);
        expect(err.status).toBe(status);
        expect(STATUS_OF[code]).toBe(status);
    });

    it('maps INTERNAL to 500', () => {
        expect(STATUS_OF.INTERNAL).toBe(500);
    });

    it('names errors after their class', () => {
        expect(new NotFoundError().name).toBe('NotFoundError');
    });

    it('ValidationError keeps a list of field errors, or wraps a single message at the root', () => {
        expect(new ValidationError([{ path: '/a', message: 'm' }]).errors).toEqual([{ path: '/a', message: 'm' }]);
        expect(new ValidationError('whole body').errors).toEqual([{ path: '', message: 'whole body' }]);
    });

    it('RateLimitedError rounds Retry-After up to whole seconds', () => {
        expect(new RateLimitedError(1.2).retryAfterSeconds).toBe(2);
        expect(new RateLimitedError(-3).retryAfterSeconds).toBe(0);
    });
});

describe('envelope', () => {
    it('ok() builds a success envelope', () => {
        expect(ok({ a: 1 }, 'c1')).toEqual({ error_code: null, message: 'ok', correlationID: 'c1', data: { a: 1 } });
        expect(ok(null, 'c1', 'accepted').message).toBe('accepted');
    });

    it('fail() exposes code and message, and field errors only for validation failures', () => {
        expect(fail(new NotFoundError('no run'), 'c2')).toEqual({
            error_code: 'NOT_FOUND',
            message: 'no run',
            correlationID: 'c2',
            data: null,
        });
        const v = fail(new ValidationError([{ path: '/x', message: 'required' }]), 'c3');
        expect(v.error_code).toBe('VALIDATION_FAILED');
        expect(v.data).toEqual({ errors: [{ path: '/x', message: 'required' }] });
    });

    it('fail() never exposes details', () => {
        const env = fail(new ConflictError('wrong state', { secret: 'x' }), 'c');
        expect(JSON.stringify(env)).not.toContain('secret');
    });
});
