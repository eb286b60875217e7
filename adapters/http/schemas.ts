/**
 * The v1 JSON Schemas (schemas/v1/*.schema.json): the one source of request and response shapes. Request
 * validation (validation.ts), the TypeScript types (schemas/v1/types.generated.ts, from scripts/gen-types.js) and
 * the OpenAPI document (openapi.ts) all come from these documents. They are imported rather than read from disk,
 * so tsc copies them into dist/schemas/v1/ beside the code that loads them.
 */
import approvalLinkRequest from '../../schemas/v1/approval-link-request.schema.json';
import auditRecord from '../../schemas/v1/audit-record.schema.json';
import checkpointPolicy from '../../schemas/v1/checkpoint-policy.schema.json';
import checkpointPolicyVersioned from '../../schemas/v1/checkpoint-policy-versioned.schema.json';
import common from '../../schemas/v1/common.schema.json';
import controlAccepted from '../../schemas/v1/control-accepted.schema.json';
import decisionAccepted from '../../schemas/v1/decision-accepted.schema.json';
import decisionRequest from '../../schemas/v1/decision-request.schema.json';
import envelope from '../../schemas/v1/envelope.schema.json';
import errorData from '../../schemas/v1/error-data.schema.json';
import health from '../../schemas/v1/health.schema.json';
import inbox from '../../schemas/v1/inbox.schema.json';
import infoAccepted from '../../schemas/v1/info-accepted.schema.json';
import infoRequest from '../../schemas/v1/info-request.schema.json';
import logs from '../../schemas/v1/logs.schema.json';
import resumeRequest from '../../schemas/v1/resume-request.schema.json';
import runAccepted from '../../schemas/v1/run-accepted.schema.json';
import runList from '../../schemas/v1/run-list.schema.json';
import runRequest from '../../schemas/v1/run-request.schema.json';
import runStatus from '../../schemas/v1/run-status.schema.json';
import stopRequest from '../../schemas/v1/stop-request.schema.json';
import type { SchemaTypes } from '../../schemas/v1/types.generated';

export type { SchemaTypes };

/** A schema's name: its file name without `.schema.json` (e.g. 'run-request'). */
export type SchemaName = keyof SchemaTypes;

/** The document that holds only shared `$defs`; it describes no body of its own. */
export const COMMON = 'common';

/** Every `$id` starts with this; a name's `$id` is `${SCHEMA_BASE_URI}${name}.schema.json`. */
export const SCHEMA_BASE_URI = 'https://mesh.local/schemas/v1/';

/** What this code relies on in a schema document (the rest is plain JSON Schema 2020-12). */
export interface SchemaDocument {
    $id: string;
    title: string;
    $defs?: Record<string, { title: string }>;
    [keyword: string]: unknown;
}

/**
 * Every v1 document by name. The annotation makes tsc reject a schema name without a document and a document
 * without a generated type, so a new schema file cannot be half wired in.
 */
export const SCHEMAS: Readonly<Record<SchemaName | typeof COMMON, SchemaDocument>> = Object.freeze({
    'approval-link-request': approvalLinkRequest,
    'audit-record': auditRecord,
    'checkpoint-policy': checkpointPolicy,
    'checkpoint-policy-versioned': checkpointPolicyVersioned,
    common,
    'control-accepted': controlAccepted,
    'decision-accepted': decisionAccepted,
    'decision-request': decisionRequest,
    envelope,
    'error-data': errorData,
    health,
    inbox,
    'info-accepted': infoAccepted,
    'info-request': infoRequest,
    logs,
    'resume-request': resumeRequest,
    'run-accepted': runAccepted,
    'run-list': runList,
    'run-request': runRequest,
    'run-status': runStatus,
    'stop-request': stopRequest,
});

/** The names of the documents that describe a body (all but `common`). */
export const SCHEMA_NAMES: readonly SchemaName[] = Object.freeze(
    Object.keys(SCHEMAS).filter((n): n is SchemaName => n !== COMMON),
);

export function schemaId(name: SchemaName | typeof COMMON): string {
    return `${SCHEMA_BASE_URI}${name}.schema.json`;
}
