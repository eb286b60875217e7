/**
 * The error vocabulary of the product contract (SPEC "Envelope"). Every expected failure is a `DomainError`
 * whose `code` and `status` the HTTP envelope maps one to one; anything else is an `INTERNAL` 500.
 */

/** Every `error_code` the envelope may carry. */
export type ErrorCode =
    | 'VALIDATION_FAILED'
    | 'UNSUPPORTED_API_VERSION'
    | 'UNAUTHENTICATED'
    | 'FORBIDDEN'
    | 'NOT_FOUND'
    | 'CONFLICT'
    | 'LINK_EXPIRED'
    | 'LINK_USED'
    | 'LINK_INVALID'
    | 'RATE_LIMITED'
    | 'PAYLOAD_TOO_LARGE'
    | 'ENGINE_FAILED'
    | 'UNAVAILABLE'
    | 'INTERNAL';

/** HTTP status per error code, as fixed by the contract. */
export const STATUS_OF: Readonly<Record<ErrorCode, number>> = Object.freeze({
    VALIDATION_FAILED: 400,
    UNSUPPORTED_API_VERSION: 400,
    UNAUTHENTICATED: 401,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    CONFLICT: 409,
    LINK_EXPIRED: 410,
    LINK_USED: 410,
    LINK_INVALID: 400,
    RATE_LIMITED: 429,
    PAYLOAD_TOO_LARGE: 413,
    ENGINE_FAILED: 502,
    UNAVAILABLE: 503,
    INTERNAL: 500,
});

/** One failing field of a request: `path` is a JSON Pointer ('' = the whole document). */
export interface FieldError {
    path: string;
    message: string;
}

/**
 * Base of every expected failure. `message` is shown to the caller, so it must never hold secrets, tokens or
 * other tenants' data; `details` is for logs and audit, never sent to the client.
 */
export class DomainError extends Error {
    readonly status: number;

    constructor(
        readonly code: ErrorCode,
        message: string,
        readonly details?: Readonly<Record<string, unknown>>,
    ) {
        super(message);
        this.name = new.target.name;
        this.status = STATUS_OF[code];
    }
}

/** One or more request fields failed validation; each is listed in `data.errors`. */
export class ValidationError extends DomainError {
    readonly errors: readonly FieldError[];

    constructor(errors: readonly FieldError[] | string, message = 'Request validation failed.') {
        const list = typeof errors === 'string' ? [{ path: '', message: errors }] : errors;
        super('VALIDATION_FAILED', message);
        this.errors = Object.freeze(list.map((e) => ({ path: e.path, message: e.message })));
    }
}

export class UnsupportedApiVersionError extends DomainError {
    constructor(
        readonly requested: string,
        readonly supported: readonly string[] = ['1'],
    ) {
        super('UNSUPPORTED_API_VERSION', `Unsupported api-version; supported: ${supported.join(', ')}.`);
    }
}

export class UnauthenticatedError extends DomainError {
    constructor(message = 'Authentication required.') {
        super('UNAUTHENTICATED', message);
    }
}

export class ForbiddenError extends DomainError {
    constructor(message = 'Not allowed.') {
        super('FORBIDDEN', message);
    }
}

export class NotFoundError extends DomainError {
    constructor(message = 'Not found.') {
        super('NOT_FOUND', message);
    }
}

/** The target is in the wrong state for the action (or a concurrent change won). */
export class ConflictError extends DomainError {
    constructor(message = 'Conflict.', details?: Record<string, unknown>) {
        super('CONFLICT', message, details);
    }
}

export class LinkExpiredError extends DomainError {
    constructor(message = 'This link has expired.') {
        super('LINK_EXPIRED', message);
    }
}

export class LinkUsedError extends DomainError {
    constructor(message = 'This link has already been used.') {
        super('LINK_USED', message);
    }
}

export class LinkInvalidError extends DomainError {
    constructor(message = 'This link is not valid.') {
        super('LINK_INVALID', message);
    }
}

/** Too many requests; the envelope answers `Retry-After: retryAfterSeconds`. */
export class RateLimitedError extends DomainError {
    readonly retryAfterSeconds: number;

    constructor(retryAfterSeconds: number, message = 'Too many requests.') {
        super('RATE_LIMITED', message);
        // Retry-After must be a non-negative integer number of seconds.
        this.retryAfterSeconds = Math.max(0, Math.ceil(retryAfterSeconds));
    }
}

export class PayloadTooLargeError extends DomainError {
    constructor(
        readonly maxBytes: number,
        message = `Request body exceeds ${maxBytes} bytes.`,
    ) {
        super('PAYLOAD_TOO_LARGE', message);
    }
}

/** A mesh engine failed or answered outside its contract. */
export class EngineFailedError extends DomainError {
    constructor(message = 'A pipeline engine failed.', details?: Record<string, unknown>) {
        super('ENGINE_FAILED', message, details);
    }
}

/** A dependency (storage, identity provider, durable backend) is not answering; retry later. */
export class UnavailableError extends DomainError {
    constructor(message = 'Service temporarily unavailable.', details?: Record<string, unknown>) {
        super('UNAVAILABLE', message, details);
    }
}
