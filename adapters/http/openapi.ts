/**
 * The OpenAPI 3.1 document served at GET /openapi.json, generated from the same schemas/v1 documents that
 * validate requests and generate the TypeScript types, so the three cannot drift. Each schema file, and each entry
 * of a file's `$defs`, becomes one `components.schemas` entry named by its `title` (the name of its generated
 * type); every `$ref` is rewritten to `#/components/schemas/<title>`.
 */
import { type ErrorCode, STATUS_OF } from '../../domain/errors';
import { SUPPORTED_API_VERSIONS } from './envelope';
import { type SchemaDocument, type SchemaName, SCHEMAS } from './schemas';

type Json = Record<string, unknown>;

const COMPONENT = '#/components/schemas/';
const ref = (component: string): Json => ({ $ref: `${COMPONENT}${component}` });

/** Keywords that only make sense at a document's root; components leave them out. */
const ROOT_ONLY = new Set(['$schema', '$id', '$defs']);

/** The schemas/v1 documents as OpenAPI components, plus the component name of each schema file. */
export function bundleSchemas(): { components: Record<string, Json>; names: Record<SchemaName, string> } {
    const titles = new Map<string, string>();
    const claim = (uri: string, title: unknown): void => {
        if (typeof title !== 'string' || !/^[A-Z][A-Za-z0-9]*$/.test(title))
            throw new Error(`${uri}: needs a PascalCase title`);
        if ([...titles.values()].includes(title)) throw new Error(`${uri}: title ${title} is used twice`);
        titles.set(uri, title);
    };
    const docs = Object.entries(SCHEMAS) as [SchemaName | 'common', SchemaDocument][];
    for (const [, doc] of docs) {
        if (!isDefsOnly(doc)) claim(doc.$id, doc.title);
        for (const [key, def] of Object.entries(doc.$defs ?? {})) claim(`${doc.$id}#/$defs/${key}`, def.title);
    }

    const rewrite = (node: unknown, base: string): unknown => {
        if (Array.isArray(node)) return node.map((n) => rewrite(n, base));
        if (node === null || typeof node !== 'object') return node;
        const out: Json = {};
        for (const [k, v] of Object.entries(node as Json)) {
            if (k === '$ref' && typeof v === 'string') {
                const url = new URL(v, base);
                const target = url.hash
                    ? `${url.origin}${url.pathname}#${decodeURIComponent(url.hash.slice(1))}`
                    : url.href;
                const title = titles.get(target);
                if (!title) throw new Error(`${base}: $ref ${v} does not name a schema file or a $defs entry`);
                out.$ref = `${COMPONENT}${title}`;
            } else {
                out[k] = rewrite(v, base);
            }
        }
        return out;
    };

    const components: Record<string, Json> = {};
    const names = {} as Record<SchemaName, string>;
    for (const [name, doc] of docs) {
        if (!isDefsOnly(doc)) {
            const body = Object.fromEntries(Object.entries(doc).filter(([k]) => !ROOT_ONLY.has(k)));
            components[doc.title] = rewrite(body, doc.$id) as Json;
            if (name !== 'common') names[name] = doc.title;
        }
        for (const def of Object.values(doc.$defs ?? {})) components[def.title] = rewrite(def, doc.$id) as Json;
    }
    return { components, names };
}

/** A document that only holds `$defs` (common.schema.json) describes no body of its own. */
function isDefsOnly(doc: SchemaDocument): boolean {
    return Object.keys(doc).every((k) => ['$schema', '$id', '$defs', 'title', 'description', '$comment'].includes(k));
}

// --- Operations ------------------------------------------------------------------------------------------------

type Method = 'get' | 'put' | 'post';

interface Body {
    schema: SchemaName;
    /** Extra media types beside application/json (the approval page's form). */
    form?: boolean;
    required?: boolean;
}

interface Operation {
    method: Method;
    path: string;
    operationId: string;
    tag: string;
    summary: string;
    description: string;
    /** Who may call it (SPEC's endpoint table), shown in the description. */
    who: string;
    /** Parameters: names of `components.parameters`, or inline parameter objects. */
    parameters?: (string | Json)[];
    body?: Body;
    /** The success answer: status and either an enveloped schema or raw content. */
    success: { status: number; description: string; data?: SchemaName; content?: Json; headers?: Json };
    /** The error codes this operation answers with (each code's status comes from domain/errors.ts). */
    errors: ErrorCode[];
    /** Errors are HTML pages (the approval links) instead of the JSON envelope. */
    htmlErrors?: boolean;
    /** Anonymous: no bearer token. */
    anonymous?: boolean;
}

/** What every authenticated JSON operation may answer, beyond its own errors. */
const AUTHENTICATED: ErrorCode[] = [
    'UNSUPPORTED_API_VERSION',
    'UNAUTHENTICATED',
    'FORBIDDEN',
    'RATE_LIMITED',
    'UNAVAILABLE',
    'INTERNAL',
];
/** What every operation with a JSON body may answer. */
const WITH_BODY: ErrorCode[] = ['VALIDATION_FAILED', 'PAYLOAD_TOO_LARGE'];

const RUN_ID_PATH: Json = { $ref: '#/components/parameters/RunId' };
const CONTINUATION: Json = { $ref: '#/components/parameters/ContinuationToken' };

const OPERATIONS: Operation[] = [
    {
        method: 'post',
        path: '/pipeline/run',
        operationId: 'runPipeline',
        tag: 'Pipeline',
        summary: 'Start a workflow',
        description:
            'Starts a run through every ideaflow stage (generation → filtering → creativity → taste → improvement); the checkpoint ' +
            "policy decides, from the metadata and the submitter's roles, where it stops for approval. The same Idempotency-Key " +
            'returns the same run.',
        who: 'Mesh.Developer, Mesh.DataScientist, Mesh.Operator, Mesh.Admin (a member of `metadata.team` unless Operator or Admin)',
        parameters: ['IdempotencyKey'],
        body: { schema: 'run-request', required: true },
        success: {
            status: 202,
            description: 'Accepted: the run is queued or running.',
            data: 'run-accepted',
            headers: {
                Location: {
                    description: 'The run status URL (data.statusUrl).',
                    schema: { type: 'string', format: 'uri' },
                },
            },
        },
        errors: [...WITH_BODY, ...AUTHENTICATED, 'CONFLICT'],
    },
    {
        method: 'get',
        path: '/pipeline/status/{id}',
        operationId: 'getPipelineStatus',
        tag: 'Pipeline',
        summary: "A run's status",
        description:
            "The run's status, stage progress, the checkpoint it waits for (nextAction) and its latest audit records. While it " +
            'waits on a decision, nextAction.waitingOn says on whom: the people who may decide now (required roles incl. ' +
            "escalated ones, the run's team or Mesh.Admin, never the submitter, not those who already approved), since when, " +
            'the deadline, approvals have/need and whether it escalated.',
        who: "the run's team, Mesh.Operator, Mesh.Compliance, Mesh.Admin (others get NOT_FOUND)",
        parameters: [RUN_ID_PATH],
        success: { status: 200, description: "The run's status.", data: 'run-status' },
        errors: ['VALIDATION_FAILED', ...AUTHENTICATED, 'NOT_FOUND'],
    },
    {
        method: 'post',
        path: '/pipeline/stop',
        operationId: 'stopPipeline',
        tag: 'Pipeline',
        summary: 'Pause or abort a run',
        description:
            'Pauses (at the next safe point) or aborts a run; actor, time and reason are audited. A run in the wrong state is CONFLICT.',
        who: 'Mesh.Operator, Mesh.Admin; the submitter may abort their own run',
        body: { schema: 'stop-request', required: true },
        success: { status: 202, description: 'Accepted: the run pauses or aborts.', data: 'control-accepted' },
        errors: [...WITH_BODY, ...AUTHENTICATED, 'NOT_FOUND', 'CONFLICT'],
    },
    {
        method: 'post',
        path: '/pipeline/resume',
        operationId: 'resumePipeline',
        tag: 'Pipeline',
        summary: 'Resume a paused run',
        description:
            'Resumes a paused run where it stopped; the reason is audited. A run that is not paused is CONFLICT.',
        who: 'Mesh.Operator, Mesh.Admin',
        body: { schema: 'resume-request', required: true },
        success: { status: 202, description: 'Accepted: the run resumes.', data: 'control-accepted' },
        errors: [...WITH_BODY, ...AUTHENTICATED, 'NOT_FOUND', 'CONFLICT'],
    },
    {
        method: 'get',
        path: '/pipeline/logs/{id}',
        operationId: 'getPipelineLogs',
        tag: 'Pipeline',
        summary: "A run's audit timeline",
        description:
            'The full, hash-chained audit timeline, re-verified on read against the chain keys and the head anchored ' +
            'outside the audit store (data.chain). Paged with continuationToken; `?format=ndjson` streams every record, ' +
            'one JSON object per line, unenveloped, and ends with one line `{"chain": {...}}`, the verdict. Any other ' +
            '`format` is VALIDATION_FAILED.',
        who: "the run's team, Mesh.Operator, Mesh.Compliance, Mesh.Admin (others get NOT_FOUND)",
        parameters: [
            RUN_ID_PATH,
            CONTINUATION,
            pageSize(100, 1000),
            {
                name: 'format',
                in: 'query',
                description:
                    '`ndjson` streams every record as application/x-ndjson instead of one enveloped page, then the verdict line.',
                schema: { type: 'string', enum: ['json', 'ndjson'], default: 'json' },
            },
        ],
        success: {
            status: 200,
            description: 'One page of audit records (JSON), or all of them (NDJSON).',
            data: 'logs',
            content: {
                // One AuditRecordView per line, in seq order, then one ChainVerdictLine.
                'application/x-ndjson': { schema: { oneOf: [ref('AuditRecordView'), ref('ChainVerdictLine')] } },
            },
        },
        errors: ['VALIDATION_FAILED', ...AUTHENTICATED, 'NOT_FOUND'],
    },
    {
        method: 'get',
        path: '/pipeline',
        operationId: 'listPipelines',
        tag: 'Pipeline',
        summary: 'List runs',
        description:
            'The runs the caller may see, filtered; paged with continuationToken. data.total counts every run the filters ' +
            'match (all pages).',
        who: "any Mesh role: runs of the caller's teams, or of every team for Mesh.Operator, Mesh.Compliance, Mesh.Admin",
        parameters: [
            {
                name: 'status',
                in: 'query',
                description: 'Only runs in these statuses (comma-separated).',
                schema: { type: 'string' },
                example: 'Running,AwaitingApproval',
            },
            { name: 'team', in: 'query', description: "Only this team's runs.", schema: ref('Team') },
            { name: 'stage', in: 'query', description: 'Only runs currently at this stage.', schema: ref('Stage') },
            {
                name: 'createdBy',
                in: 'query',
                description: 'Only runs submitted by this user id.',
                schema: { type: 'string' },
            },
            {
                name: 'since',
                in: 'query',
                description: 'Only runs created at or after this time.',
                schema: ref('IsoDateTime'),
            },
            {
                name: 'q',
                in: 'query',
                description: 'Free text, matched against titles.',
                schema: { type: 'string', maxLength: 200 },
            },
            {
                name: 'riskLevel',
                in: 'query',
                description: 'Only runs of these risk levels (comma-separated).',
                schema: { type: 'string' },
                example: 'high,critical',
            },
            {
                name: 'waitingFor',
                in: 'query',
                description:
                    'Only runs with an open checkpoint this user may decide now (a required role, the run team or ' +
                    'Mesh.Admin, not the submitter, not already approved). The caller as signed in, anyone else as the ' +
                    'directory knows them; an unknown id matches nothing.',
                schema: { type: 'string', minLength: 1, maxLength: 256 },
            },
            pageSize(50, 200),
            CONTINUATION,
        ],
        success: { status: 200, description: 'One page of runs.', data: 'run-list' },
        errors: ['VALIDATION_FAILED', ...AUTHENTICATED],
    },
    {
        method: 'get',
        path: '/pipeline/inbox',
        operationId: 'pipelineInbox',
        tag: 'Checkpoints',
        summary: "The caller's inbox",
        description:
            'What waits on the caller, oldest first: `decide` items for every open checkpoint they may decide now, and ' +
            '`answer` items for every open information request on a run they submitted or of their team (as Developer or ' +
            'DataScientist). Runs of teams the caller may not see never appear.',
        who: 'any Mesh role (an empty inbox for those who decide and answer nothing)',
        success: { status: 200, description: 'The inbox.', data: 'inbox' },
        errors: ['VALIDATION_FAILED', ...AUTHENTICATED],
    },
    {
        method: 'post',
        path: '/pipeline/checkpoints/{checkpointId}/decision',
        operationId: 'decideCheckpoint',
        tag: 'Checkpoints',
        summary: 'Decide a checkpoint',
        description:
            'Approves, rejects or asks for information on an open checkpoint. One person counts once toward the quorum; a checkpoint ' +
            'that is not open is CONFLICT.',
        who: "a holder of one of the checkpoint's requiredRoles, a member of the run's team (or Mesh.Admin), who is not the run's submitter",
        parameters: [{ $ref: '#/components/parameters/CheckpointId' }],
        body: { schema: 'decision-request', required: true },
        success: {
            status: 202,
            description: 'Accepted: the decision is recorded and delivered to the run.',
            data: 'decision-accepted',
        },
        errors: [...WITH_BODY, ...AUTHENTICATED, 'NOT_FOUND', 'CONFLICT'],
    },
    {
        method: 'post',
        path: '/pipeline/checkpoints/{checkpointId}/info',
        operationId: 'answerInfoRequest',
        tag: 'Checkpoints',
        summary: "Answer an approver's request for information",
        description:
            'Answers the info request a request_info decision opened on the checkpoint. The answer is audited as ' +
            "checkpoint.info_provided (sealed at rest like every comment), shown in the checkpoint's infoAnswers, and the " +
            'approvers are notified again; the checkpoint keeps waiting for a decision. CONFLICT when no info request is open, ' +
            'the checkpoint is closed or the run does not await approval.',
        who: "the run's submitter, or a Mesh.Developer or Mesh.DataScientist of the run's team",
        parameters: [{ $ref: '#/components/parameters/CheckpointId' }],
        body: { schema: 'info-request', required: true },
        success: {
            status: 202,
            description: 'Accepted: the answer is recorded and the approvers are notified.',
            data: 'info-accepted',
        },
        errors: [...WITH_BODY, ...AUTHENTICATED, 'NOT_FOUND', 'CONFLICT'],
    },
    {
        method: 'get',
        path: '/approvals/{token}',
        operationId: 'getApprovalPage',
        tag: 'Approvals',
        summary: 'Approval link: confirm page',
        description:
            'The HTML page a signed approval link opens. It changes nothing (mail scanners pre-fetch links); its form posts to the ' +
            'same URL. Errors are HTML pages showing the error code.',
        who: 'anyone holding the link',
        parameters: [{ $ref: '#/components/parameters/ApprovalToken' }],
        success: {
            status: 200,
            description: 'The confirm page.',
            content: { 'text/html': { schema: { type: 'string' } } },
        },
        errors: ['LINK_INVALID', 'LINK_EXPIRED', 'LINK_USED', 'RATE_LIMITED', 'UNAVAILABLE', 'INTERNAL'],
        htmlErrors: true,
        anonymous: true,
    },
    {
        method: 'post',
        path: '/approvals/{token}',
        operationId: 'submitApprovalLink',
        tag: 'Approvals',
        summary: 'Approval link: record the decision',
        description:
            'Records the decision the link was issued for, as its approver, with an optional comment. Links are signed, bound to one ' +
            'approver, checkpoint and decision, expire, and work once. Answers are HTML pages.',
        who: 'anyone holding the link',
        parameters: [{ $ref: '#/components/parameters/ApprovalToken' }],
        body: { schema: 'approval-link-request', form: true, required: false },
        success: {
            status: 200,
            description: 'The decision was recorded.',
            content: { 'text/html': { schema: { type: 'string' } } },
        },
        errors: [
            'VALIDATION_FAILED',
            'LINK_INVALID',
            'LINK_EXPIRED',
            'LINK_USED',
            'CONFLICT',
            'FORBIDDEN',
            'PAYLOAD_TOO_LARGE',
            'RATE_LIMITED',
            'UNAVAILABLE',
            'INTERNAL',
        ],
        htmlErrors: true,
        anonymous: true,
    },
    {
        method: 'get',
        path: '/pipeline/events',
        operationId: 'pipelineEvents',
        tag: 'Pipeline',
        summary: 'Live status changes (SSE)',
        description:
            'A Server-Sent Events stream of the status changes the caller may see: `event: status`, `data:` a RunSummary as JSON, ' +
            '`id:` a cursor; reconnect with Last-Event-ID to miss nothing. Errors before the stream starts are enveloped.',
        who: "any Mesh role: runs of the caller's teams, or of every team for Mesh.Operator, Mesh.Compliance, Mesh.Admin",
        parameters: [
            { name: 'orchestrationID', in: 'query', description: "Only this run's changes.", schema: ref('RunId') },
            {
                name: 'Last-Event-ID',
                in: 'header',
                description: 'The id of the last event received; the stream resumes after it.',
                schema: { type: 'string' },
            },
        ],
        success: {
            status: 200,
            description: 'The event stream.',
            content: {
                'text/event-stream': {
                    schema: {
                        type: 'string',
                        description: 'SSE frames; each `data:` line holds a RunSummary as JSON.',
                    },
                },
            },
        },
        errors: ['VALIDATION_FAILED', ...AUTHENTICATED],
    },
    {
        method: 'get',
        path: '/checkpoint-policies',
        operationId: 'getCheckpointPolicies',
        tag: 'Policies',
        summary: 'The checkpoint policy',
        description: 'The HITL checkpoint policy in force, with its version.',
        who: 'Mesh.Compliance, Mesh.Admin, Mesh.Operator',
        success: { status: 200, description: 'The current policy.', data: 'checkpoint-policy-versioned' },
        errors: AUTHENTICATED,
    },
    {
        method: 'put',
        path: '/checkpoint-policies',
        operationId: 'putCheckpointPolicies',
        tag: 'Policies',
        summary: 'Replace the checkpoint policy',
        description:
            'Saves a new version of the policy (audited). `expectedVersion` must be the current version, else CONFLICT. Runs keep ' +
            'the checkpoints they were submitted with.',
        who: 'Mesh.Compliance, Mesh.Admin',
        body: { schema: 'checkpoint-policy', required: true },
        success: {
            status: 200,
            description: 'The saved policy and its new version.',
            data: 'checkpoint-policy-versioned',
        },
        errors: [...WITH_BODY, ...AUTHENTICATED, 'CONFLICT'],
    },
    {
        method: 'get',
        path: '/health/live',
        operationId: 'healthLive',
        tag: 'Health',
        summary: 'Liveness probe',
        description: 'The process answers HTTP.',
        who: 'anyone',
        success: { status: 200, description: 'Live.', data: 'health' },
        errors: ['UNSUPPORTED_API_VERSION', 'INTERNAL'],
        anonymous: true,
    },
    {
        method: 'get',
        path: '/health/ready',
        operationId: 'healthReady',
        tag: 'Health',
        summary: 'Readiness probe',
        description: 'Ready only when storage and the durable backend answer; otherwise UNAVAILABLE (503).',
        who: 'anyone',
        success: { status: 200, description: 'Ready.', data: 'health' },
        errors: ['UNSUPPORTED_API_VERSION', 'UNAVAILABLE', 'INTERNAL'],
        anonymous: true,
    },
    {
        method: 'get',
        path: '/openapi.json',
        operationId: 'openApi',
        tag: 'Meta',
        summary: 'This document',
        description:
            'The OpenAPI 3.1 document, generated from the same JSON Schemas that validate requests. Not enveloped.',
        who: 'anyone',
        success: {
            status: 200,
            description: 'The OpenAPI document.',
            content: { 'application/json': { schema: { type: 'object' } } },
        },
        errors: [],
        anonymous: true,
    },
];

function pageSize(byDefault: number, max: number): Json {
    return {
        name: 'limit',
        in: 'query',
        description: `Page size (default ${byDefault}).`,
        schema: { type: 'integer', minimum: 1, maximum: max, default: byDefault },
    };
}

// --- Document --------------------------------------------------------------------------------------------------

const CORRELATION_HEADER: Json = { $ref: '#/components/headers/CorrelationId' };

/** The OpenAPI 3.1 document. A fresh object on every call; callers may cache it. */
export function buildOpenApi(): Json {
    const { components: schemas, names } = bundleSchemas();
    const paths: Record<string, Record<string, Json>> = {};
    for (const op of OPERATIONS) {
        (paths[op.path] ??= {})[op.method] = operation(op, names);
    }
    return {
        openapi: '3.1.0',
        jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
        info: {
            title: 'Mesh Orchestrator',
            version: SUPPORTED_API_VERSIONS[0],
            description:
                'Runs every AI workflow of the cognitive mesh through the ideaflow pipeline, with humans in the loop and a ' +
                'tamper-evident audit trail. Every JSON answer is an envelope {error_code, message, correlationID, data}; ' +
                `api-version (query or header) defaults to ${SUPPORTED_API_VERSIONS[0]}. Cross-origin use is off unless ` +
                'MESH_CORS_ORIGINS lists the origin: then every route answers its preflight (OPTIONS) and its responses ' +
                'carry access-control-allow-origin (bearer tokens, no credentials).',
        },
        tags: [
            { name: 'Pipeline', description: 'Start, watch, pause, resume and abort runs.' },
            { name: 'Checkpoints', description: 'Human-in-the-loop decisions over the API.' },
            { name: 'Approvals', description: 'Signed approval links from email, Teams and Slack (HTML).' },
            { name: 'Policies', description: 'The HITL checkpoint policy.' },
            { name: 'Health', description: 'Kubernetes probes.' },
            { name: 'Meta', description: 'This document.' },
        ],
        security: [{ bearerAuth: [] }],
        paths,
        components: {
            schemas,
            parameters: PARAMETERS,
            responses: errorResponses(),
            headers: {
                CorrelationId: {
                    description: "The request's correlation id (from x-correlation-id or traceparent, else generated).",
                    schema: { type: 'string' },
                },
                RetryAfter: {
                    description: 'Seconds to wait before retrying.',
                    schema: { type: 'integer', minimum: 0 },
                },
            },
            securitySchemes: {
                bearerAuth: {
                    type: 'http',
                    scheme: 'bearer',
                    bearerFormat: 'JWT',
                    description:
                        'A Microsoft Entra ID access token (locally: `npm run token`). App roles in `roles` ' +
                        '(Mesh.Developer, Mesh.DataScientist, Mesh.Operator, Mesh.Approver, Mesh.Compliance, Mesh.Admin); teams in `groups` or `team`.',
                },
            },
        },
    };
}

const PARAMETERS: Record<string, Json> = {
    ApiVersionQuery: {
        name: 'api-version',
        in: 'query',
        description:
            'The API version (the query parameter wins over the header). Unknown versions are UNSUPPORTED_API_VERSION.',
        schema: { type: 'string', enum: [...SUPPORTED_API_VERSIONS], default: SUPPORTED_API_VERSIONS[0] },
    },
    ApiVersionHeader: {
        name: 'api-version',
        in: 'header',
        description: 'The API version, when not given in the query.',
        schema: { type: 'string', enum: [...SUPPORTED_API_VERSIONS], default: SUPPORTED_API_VERSIONS[0] },
    },
    CorrelationId: {
        name: 'x-correlation-id',
        in: 'header',
        description:
            'Correlates this request with its audit records and events; echoed in the answer. Generated when absent or not sane.',
        schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
    },
    Traceparent: {
        name: 'traceparent',
        in: 'header',
        description: 'W3C Trace Context; its trace id is the correlation id when x-correlation-id is absent.',
        schema: { type: 'string', pattern: '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$' },
    },
    IdempotencyKey: {
        name: 'Idempotency-Key',
        in: 'header',
        description: 'Retries with the same key return the same run instead of starting another.',
        schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,128}$' },
    },
    RunId: { name: 'id', in: 'path', required: true, description: "The run's orchestrationID.", schema: ref('RunId') },
    CheckpointId: { name: 'checkpointId', in: 'path', required: true, schema: ref('CheckpointId') },
    ApprovalToken: {
        name: 'token',
        in: 'path',
        required: true,
        description: 'The signed approval token from the link.',
        schema: { type: 'string', minLength: 1 },
    },
    ContinuationToken: {
        name: 'continuationToken',
        in: 'query',
        description: 'The continuationToken of the previous page.',
        schema: { type: 'string' },
    },
};

const COMMON_PARAMETERS = ['ApiVersionQuery', 'ApiVersionHeader', 'CorrelationId', 'Traceparent'];

function operation(op: Operation, names: Record<SchemaName, string>): Json {
    const out: Json = {
        operationId: op.operationId,
        tags: [op.tag],
        summary: op.summary,
        description: `${op.description}\n\nWho: ${op.who}.`,
        parameters: [...COMMON_PARAMETERS, ...(op.parameters ?? [])].map((p) =>
            typeof p === 'string' ? { $ref: `#/components/parameters/${p}` } : p,
        ),
    };
    if (op.anonymous) out.security = [];
    if (op.body) {
        const schema = ref(names[op.body.schema]);
        out.requestBody = {
            required: op.body.required ?? true,
            content: {
                'application/json': { schema },
                ...(op.body.form ? { 'application/x-www-form-urlencoded': { schema } } : {}),
            },
        };
    }
    const responses: Json = {};
    const s = op.success;
    const content: Json = {
        ...(s.data ? { 'application/json': { schema: envelopeOf(ref(names[s.data])) } } : {}),
        ...(s.content ?? {}),
    };
    responses[String(s.status)] = {
        description: s.description,
        headers: { ...(s.data ? { 'x-correlation-id': CORRELATION_HEADER } : {}), ...(s.headers ?? {}) },
        content,
    };
    for (const [status, codes] of byStatus(op.errors)) {
        responses[String(status)] =
            op.htmlErrors || codes.length > 1
                ? errorResponse(codes, op.htmlErrors ?? false)
                : { $ref: `#/components/responses/${codes[0]}` };
    }
    out.responses = responses;
    return out;
}

/** A success envelope around `data`. */
function envelopeOf(data: Json): Json {
    return { allOf: [ref('Envelope'), { type: 'object', properties: { error_code: { type: 'null' }, data } }] };
}

function byStatus(codes: readonly ErrorCode[]): Map<number, ErrorCode[]> {
    const out = new Map<number, ErrorCode[]>();
    for (const code of new Set(codes)) {
        const status = STATUS_OF[code];
        out.set(status, [...(out.get(status) ?? []), code]);
    }
    return new Map([...out].sort(([a], [b]) => a - b));
}

/** One reusable error response per error code: `components.responses.<CODE>`. */
function errorResponses(): Record<string, Json> {
    return Object.fromEntries(
        (Object.keys(STATUS_OF) as ErrorCode[]).map((code) => [code, errorResponse([code], false)]),
    );
}

function errorResponse(codes: ErrorCode[], html: boolean): Json {
    const description = codes.join(', ');
    const retryAfter = codes.includes('RATE_LIMITED')
        ? { 'Retry-After': { $ref: '#/components/headers/RetryAfter' } }
        : {};
    if (html) {
        return {
            description: `${description} (an HTML page showing the code)`,
            headers: retryAfter,
            content: { 'text/html': { schema: { type: 'string' } } },
        };
    }
    const headers: Json = { 'x-correlation-id': CORRELATION_HEADER, ...retryAfter };
    const schema = {
        allOf: [
            ref('Envelope'),
            { type: 'object', properties: { error_code: { type: 'string', enum: codes }, data: ref('ErrorData') } },
        ],
    };
    return { description, headers, content: { 'application/json': { schema } } };
}
