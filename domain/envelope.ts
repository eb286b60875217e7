import { DomainError, type ErrorCode, ValidationError } from './errors';

/** The shape of every enveloped JSON response, success or error (SPEC "Envelope"). */
export interface Envelope<T> {
    error_code: ErrorCode | null;
    message: string;
    correlationID: string;
    data: T;
}

/** A success envelope. */
export function ok<T>(data: T, correlationID: string, message = 'ok'): Envelope<T> {
    return { error_code: null, message, correlationID, data };
}

/** What an error envelope carries in `data`: the field list for validation failures, else nothing. */
export type ErrorData = { errors: { path: string; message: string }[] } | null;

/** An error envelope for a `DomainError`. Only the code, the safe message and validation errors are exposed. */
export function fail(error: DomainError, correlationID: string): Envelope<ErrorData> {
    const data: ErrorData =
        error instanceof ValidationError
            ? { errors: error.errors.map((e) => ({ path: e.path, message: e.message })) }
            : null;
    return { error_code: error.code, message: error.message, correlationID, data };
}
