/**
 * Request validation against the v1 JSON Schemas. One Ajv instance for the process: every schema is added and
 * compiled once, when this module loads, so a broken schema fails at startup (and in the unit tests), not on the
 * first request that needs it.
 */
import type { HttpRequest } from '@azure/functions';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

import { type FieldError, ValidationError } from '../../domain/errors';
import { readJson } from './envelope';
import { SCHEMA_NAMES, schemaId, SchemaName, SCHEMAS, SchemaTypes } from './schemas';

export type { SchemaName, SchemaTypes };

/** At most this many field errors are reported; a body with thousands of unknown fields gets a readable answer. */
export const MAX_FIELD_ERRORS = 100;

/**
 * `strict` rejects unknown keywords, formats and ambiguous types in our own schemas; `allErrors` reports every
 * failing field at once. Values are never coerced or defaulted: a handler sees the body exactly as sent.
 */
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
for (const doc of Object.values(SCHEMAS)) ajv.addSchema(doc);

const validators: ReadonlyMap<SchemaName, ValidateFunction> = new Map(
    SCHEMA_NAMES.map((name) => {
        const fn = ajv.getSchema(schemaId(name));
        if (!fn) throw new Error(`schema ${name} is not registered`);
        return [name, fn];
    }),
);

/**
 * Readable messages for the patterns of common.schema.json, keyed by the pattern itself (which is read from the
 * schema, not repeated here); ajv's default message would quote the regular expression.
 */
const PATTERN_MESSAGES: ReadonlyMap<string, string> = new Map(
    Object.entries({
        reason: 'must not be blank',
        team: "must be 1 to 64 letters, digits, '.', '_' or '-'",
        runId: "must be 1 to 64 letters, digits, '_' or '-'",
        checkpointId: 'must be a checkpoint id: <runId>.<iteration>.<stage>.<position>.<n>',
        isoDuration: 'must be an ISO 8601 duration such as P1D, PT4H or P1DT12H',
        sha256Hex: 'must be 64 lowercase hex digits',
    }).map(([def, message]) => {
        const pattern = (SCHEMAS.common.$defs?.[def] as { pattern?: unknown } | undefined)?.pattern;
        if (typeof pattern !== 'string') throw new Error(`common.schema.json#/$defs/${def} has no pattern`);
        return [pattern, message];
    }),
);

/**
 * The failing fields of `value` under the named schema (empty when it is valid). `path` is a JSON Pointer into
 * the value, '/' for the value itself; unknown and missing properties are reported at their own path.
 */
export function schemaErrors(schemaName: SchemaName, value: unknown): FieldError[] {
    const fn = validators.get(schemaName);
    if (!fn) throw new Error(`unknown schema ${String(schemaName)}`);
    if (fn(value)) return [];
    const seen = new Set<string>();
    const out: FieldError[] = [];
    for (const e of fn.errors ?? []) {
        const f = toFieldError(e);
        const key = `${f.path}\u0000${f.message}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push(f);
        if (out.length === MAX_FIELD_ERRORS) break;
    }
    return out;
}

/**
 * Returns `value`, typed, when it satisfies the named schema; else throws `ValidationError` (400
 * VALIDATION_FAILED) listing every failing field. Without a type argument the type comes from the schema.
 */
export function validate<N extends SchemaName>(schemaName: N, value: unknown): SchemaTypes[N];
export function validate<T>(schemaName: SchemaName, value: unknown): T;
export function validate(schemaName: SchemaName, value: unknown): unknown {
    const errors = schemaErrors(schemaName, value);
    if (errors.length) throw new ValidationError(errors);
    return value;
}

/**
 * Reads the JSON body (content type, size limit and syntax checked by `readJson`) and validates it against the
 * named schema.
 */
export async function parseBody<N extends SchemaName>(
    req: HttpRequest,
    schemaName: N,
    maxBytes?: number,
): Promise<SchemaTypes[N]>;
export async function parseBody<T>(req: HttpRequest, schemaName: SchemaName, maxBytes?: number): Promise<T>;
export async function parseBody(req: HttpRequest, schemaName: SchemaName, maxBytes?: number): Promise<unknown> {
    return validate(schemaName, await readJson(req, maxBytes));
}

function toFieldError(e: ErrorObject): FieldError {
    const path = e.instancePath || '/';
    const params = e.params as Record<string, unknown>;
    switch (e.keyword) {
        case 'additionalProperties':
            return { path: childPath(e.instancePath, String(params.additionalProperty)), message: 'is not allowed' };
        case 'required':
            return { path: childPath(e.instancePath, String(params.missingProperty)), message: 'is required' };
        case 'enum':
            return { path, message: `must be one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}` };
        case 'const':
            return { path, message: `must be ${JSON.stringify(params.allowedValue)}` };
        case 'pattern':
            return { path, message: PATTERN_MESSAGES.get(String(params.pattern)) ?? 'has an invalid format' };
        default:
            return { path, message: e.message ?? 'is invalid' };
    }
}

/** The JSON Pointer of `parent`'s property `name` (RFC 6901: '~' becomes '~0', '/' becomes '~1'). */
function childPath(parent: string, name: string): string {
    return `${parent}/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`;
}
