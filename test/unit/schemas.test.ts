import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { HttpRequest } from '@azure/functions';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

import { buildOpenApi, bundleSchemas } from '../../adapters/http/openapi';
import { COMMON, SCHEMA_NAMES, schemaId, type SchemaName, SCHEMAS } from '../../adapters/http/schemas';
import { MAX_FIELD_ERRORS, parseBody, schemaErrors, validate } from '../../adapters/http/validation';
import { AUDIT_TYPES, type AuditRecord, chainNext, verifyChain } from '../../domain/audit';
import { parseDuration } from '../../domain/duration';
import { type FieldError, STATUS_OF, ValidationError } from '../../domain/errors';
import { initialStages, POSITIONS, RISK_LEVELS, RUN_STATUSES, STAGES } from '../../domain/pipeline';
import * as domainPolicy from '../../domain/policy';
import { ROLES } from '../../domain/principal';
import { DECISIONS } from '../../domain/quorum';
import * as domainRun from '../../domain/run';
import { statusView, summaryView } from '../../domain/views';
import { type InboxItem, inboxItems, type WaitingOn, waitingOnOf } from '../../domain/waiting';
import type * as api from '../../schemas/v1/types.generated';
import { TEST_KEYS } from '../support/chainKeys';

const ROOT = join(__dirname, '..', '..');
const SCHEMA_DIR = join(ROOT, 'schemas', 'v1');
const common = SCHEMAS.common.$defs as Record<string, { enum?: unknown[]; pattern?: string }>;

describe('schemas/v1', () => {
    it('registers every schema file, each draft 2020-12 with the $id of its name', () => {
        const files = readdirSync(SCHEMA_DIR)
            .filter((f) => f.endsWith('.schema.json'))
            .map((f) => f.slice(0, -'.schema.json'.length));
        expect(Object.keys(SCHEMAS).sort()).toEqual(files.sort());
        for (const name of [...SCHEMA_NAMES, COMMON] as const) {
            expect(SCHEMAS[name].$id).toBe(schemaId(name));
            expect(SCHEMAS[name].$schema).toBe('https://json-schema.org/draft/2020-12/schema');
        }
    });

    it('keeps schemas/v1/types.generated.ts in step with the schemas (npm run gen:types)', () => {
        const generated = execFileSync(process.execPath, [join(ROOT, 'scripts', 'gen-types.js'), '--stdout'], {
            encoding: 'utf8',
        });
        expect(generated).toBe(readFileSync(join(SCHEMA_DIR, 'types.generated.ts'), 'utf8'));
    });

    it('names every OpenAPI component after its generated type', () => {
        const exported = new Set(
            [
                ...readFileSync(join(SCHEMA_DIR, 'types.generated.ts'), 'utf8').matchAll(
                    /^export (?:interface|type) (\w+)/gm,
                ),
            ].map((m) => m[1]),
        );
        expect(Object.keys(bundleSchemas().components).filter((c) => !exported.has(c))).toEqual([]);
    });

    it.each<[string, readonly unknown[]]>([
        ['stage', STAGES],
        ['runStatus', RUN_STATUSES],
        ['riskLevel', RISK_LEVELS],
        ['position', POSITIONS],
        ['role', ROLES],
        ['channel', domainPolicy.CHANNELS],
        ['onTimeout', domainPolicy.ON_TIMEOUT],
        ['decision', DECISIONS],
        ['auditEventType', AUDIT_TYPES],
        ['errorCode', Object.keys(STATUS_OF)],
    ])('common.%s lists exactly the domain values', (def, values) => {
        expect(common[def]?.enum).toEqual([...values]);
    });

    it('uses the domain id patterns for run and checkpoint ids', () => {
        expect(common.runId?.pattern).toBe(domainRun.RUN_ID.source);
        expect(common.checkpointId?.pattern).toBe(domainRun.CHECKPOINT_ID.source);
    });

    it('accepts as an ISO 8601 duration what the domain parses', () => {
        const samples = [
            'P1D',
            'PT4H',
            'PT30M',
            'P1DT12H',
            'P2W',
            'P1W2D',
            'PT0.5S',
            'P',
            'PT',
            'P1DT',
            '1D',
            'P1H',
            'p1d',
        ];
        samples.push('P1.5D', 'PT1.S', 'PT4H ', ' P1D', 'P1DT2H3M4S');
        const pattern = new RegExp(common.isoDuration!.pattern!, 'u');
        for (const s of samples) expect([s, pattern.test(s)]).toEqual([s, parseDuration(s) !== undefined]);
    });

    it('closes every object of a request body (except the free-form run input)', () => {
        const { components, names } = bundleSchemas();
        const open: string[] = [];
        const walk = (node: unknown, at: string, seen: Set<string>): void => {
            if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${at}/${i}`, seen));
            if (node === null || typeof node !== 'object') return;
            const o = node as Record<string, unknown>;
            if (typeof o.$ref === 'string') {
                const name = o.$ref.split('/').pop()!;
                if (!seen.has(name)) walk(components[name], name, new Set([...seen, name]));
                return;
            }
            if (o.type === 'object' && o.additionalProperties !== false && at !== 'RunRequest/properties/input')
                open.push(at);
            for (const [k, v] of Object.entries(o)) if (k !== 'examples') walk(v, `${at}/${k}`, seen);
        };
        const requests: SchemaName[] = [
            'run-request',
            'stop-request',
            'resume-request',
            'decision-request',
            'checkpoint-policy',
            'approval-link-request',
        ];
        for (const r of requests) walk(components[names[r]], names[r], new Set([names[r]]));
        expect(open).toEqual([]);
    });

    it('validates the examples it documents', () => {
        for (const name of SCHEMA_NAMES) {
            for (const example of (SCHEMAS[name].examples as unknown[] | undefined) ?? []) {
                expect([name, schemaErrors(name, example)]).toEqual([name, []]);
            }
        }
    });
});

// --- Requests ---------------------------------------------------------------------------------------------------

const run = (over: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}) => ({
    input: { prompt: 'x' },
    metadata: { team: 'alpha', riskLevel: 'high', complianceTags: ['pii'], ...metadata },
    ...over,
});
const tags = (n: number) => Array.from({ length: n }, (_, i) => `tag-${i}`);
const rule = (over: Record<string, unknown> = {}) => ({
    name: 'r',
    match: { riskLevels: ['high'] },
    position: 'before',
    requiredRoles: ['Mesh.Approver'],
    approvals: 1,
    timeout: 'P1D',
    onTimeout: 'reject',
    channels: ['email'],
    ...over,
});
const policy = (over: Record<string, unknown> = {}, expectedVersion: unknown = 0) => ({
    rules: [rule(over)],
    expectedVersion,
});
const stop = (over: Record<string, unknown> = {}) => ({
    orchestrationID: 'run-1',
    action: 'pause',
    reason: 'why',
    ...over,
});

/** A case: the schema, a body, and either `[]` (valid) or the errors expected (message optional). */
type Case = [string, SchemaName, unknown, Partial<FieldError>[]];

const CASES: Case[] = [
    ['a minimal run', 'run-request', run(), []],
    [
        'a run at every limit',
        'run-request',
        run({ maxIterations: 10 }, { title: 't'.repeat(200), complianceTags: tags(32), team: 'a'.repeat(64) }),
        [],
    ],
    [
        'an unknown top-level field',
        'run-request',
        run({ colour: 'red' }),
        [{ path: '/colour', message: 'is not allowed' }],
    ],
    [
        'an unknown metadata field',
        'run-request',
        run({}, { colour: 'red' }),
        [{ path: '/metadata/colour', message: 'is not allowed' }],
    ],
    ['no metadata', 'run-request', { input: {} }, [{ path: '/metadata', message: 'is required' }]],
    [
        'no team',
        'run-request',
        { input: {}, metadata: { riskLevel: 'low', complianceTags: [] } },
        [{ path: '/metadata/team', message: 'is required' }],
    ],
    ['input of the wrong type', 'run-request', run({ input: 'text' }), [{ path: '/input', message: 'must be object' }]],
    ['a body that is not an object', 'run-request', [run()], [{ path: '/', message: 'must be object' }]],
    [
        'maxIterations 0',
        'run-request',
        run({ maxIterations: 0 }),
        [{ path: '/maxIterations', message: 'must be >= 1' }],
    ],
    [
        'maxIterations 11',
        'run-request',
        run({ maxIterations: 11 }),
        [{ path: '/maxIterations', message: 'must be <= 10' }],
    ],
    [
        'maxIterations 1.5',
        'run-request',
        run({ maxIterations: 1.5 }),
        [{ path: '/maxIterations', message: 'must be integer' }],
    ],
    [
        'a bad risk level',
        'run-request',
        run({}, { riskLevel: 'extreme' }),
        [{ path: '/metadata/riskLevel', message: 'must be one of: low, medium, high, critical' }],
    ],
    [
        'a team with a space',
        'run-request',
        run({}, { team: 'a b' }),
        [{ path: '/metadata/team', message: "must be 1 to 64 letters, digits, '.', '_' or '-'" }],
    ],
    ['a team of 65 characters', 'run-request', run({}, { team: 'a'.repeat(65) }), [{ path: '/metadata/team' }]],
    [
        'an oversize title',
        'run-request',
        run({}, { title: 't'.repeat(201) }),
        [{ path: '/metadata/title', message: 'must NOT have more than 200 characters' }],
    ],
    [
        'too many tags',
        'run-request',
        run({}, { complianceTags: tags(33) }),
        [{ path: '/metadata/complianceTags', message: 'must NOT have more than 32 items' }],
    ],
    ['duplicate tags', 'run-request', run({}, { complianceTags: ['a', 'a'] }), [{ path: '/metadata/complianceTags' }]],
    ['an empty tag', 'run-request', run({}, { complianceTags: [''] }), [{ path: '/metadata/complianceTags/0' }]],
    [
        'a tag of 65 characters',
        'run-request',
        run({}, { complianceTags: ['t'.repeat(65)] }),
        [{ path: '/metadata/complianceTags/0' }],
    ],

    ['a pause', 'stop-request', stop(), []],
    ['an abort', 'stop-request', stop({ action: 'abort' }), []],
    [
        'an unknown action',
        'stop-request',
        stop({ action: 'kill' }),
        [{ path: '/action', message: 'must be one of: pause, abort' }],
    ],
    [
        'no reason',
        'stop-request',
        { orchestrationID: 'run-1', action: 'pause' },
        [{ path: '/reason', message: 'is required' }],
    ],
    ['an empty reason', 'stop-request', stop({ reason: '' }), [{ path: '/reason', message: 'must not be blank' }]],
    [
        'a whitespace-only reason',
        'stop-request',
        stop({ reason: ' \t\n ' }),
        [{ path: '/reason', message: 'must not be blank' }],
    ],
    ['a reason of 1000 characters', 'stop-request', stop({ reason: 'r'.repeat(1000) }), []],
    ['a reason of 1001 characters', 'stop-request', stop({ reason: 'r'.repeat(1001) }), [{ path: '/reason' }]],
    [
        'a reason of the wrong type',
        'stop-request',
        stop({ reason: 42 }),
        [{ path: '/reason', message: 'must be string' }],
    ],
    [
        'a run id with a slash',
        'stop-request',
        stop({ orchestrationID: '../x' }),
        [{ path: '/orchestrationID', message: "must be 1 to 64 letters, digits, '_' or '-'" }],
    ],
    ['an unknown stop field', 'stop-request', stop({ force: true }), [{ path: '/force', message: 'is not allowed' }]],

    ['a resume', 'resume-request', { orchestrationID: 'run-1', reason: 'done' }, []],
    [
        'a whitespace-only resume reason',
        'resume-request',
        { orchestrationID: 'run-1', reason: '   ' },
        [{ path: '/reason', message: 'must not be blank' }],
    ],
    [
        'a resume with an action',
        'resume-request',
        { orchestrationID: 'run-1', reason: 'x', action: 'pause' },
        [{ path: '/action' }],
    ],

    ['an approval without comment', 'decision-request', { decision: 'approve' }, []],
    ['a request_info with comment', 'decision-request', { decision: 'request_info', comment: 'why?' }, []],
    [
        'a bad decision',
        'decision-request',
        { decision: 'maybe' },
        [{ path: '/decision', message: 'must be one of: approve, reject, request_info' }],
    ],
    [
        'a comment of the wrong type',
        'decision-request',
        { decision: 'reject', comment: 1 },
        [{ path: '/comment', message: 'must be string' }],
    ],
    [
        'an oversize comment',
        'decision-request',
        { decision: 'reject', comment: 'c'.repeat(2001) },
        [{ path: '/comment' }],
    ],

    ['a policy', 'checkpoint-policy', policy(), []],
    [
        'an escalating policy',
        'checkpoint-policy',
        policy({ onTimeout: 'escalate', escalateTo: ['Mesh.Admin'], timeout: 'PT4H' }),
        [],
    ],
    [
        'a bad duration',
        'checkpoint-policy',
        policy({ timeout: '1 day' }),
        [{ path: '/rules/0/timeout', message: 'must be an ISO 8601 duration such as P1D, PT4H or P1DT12H' }],
    ],
    ['a bare P duration', 'checkpoint-policy', policy({ timeout: 'P' }), [{ path: '/rules/0/timeout' }]],
    ['a duration ending in T', 'checkpoint-policy', policy({ timeout: 'P1DT' }), [{ path: '/rules/0/timeout' }]],
    ['a quorum of 0', 'checkpoint-policy', policy({ approvals: 0 }), [{ path: '/rules/0/approvals' }]],
    ['a quorum of 11', 'checkpoint-policy', policy({ approvals: 11 }), [{ path: '/rules/0/approvals' }]],
    ['no required roles', 'checkpoint-policy', policy({ requiredRoles: [] }), [{ path: '/rules/0/requiredRoles' }]],
    [
        'an unknown role',
        'checkpoint-policy',
        policy({ requiredRoles: ['Mesh.God'] }),
        [{ path: '/rules/0/requiredRoles/0' }],
    ],
    ['no channels', 'checkpoint-policy', policy({ channels: [] }), [{ path: '/rules/0/channels' }]],
    [
        'duplicate channels',
        'checkpoint-policy',
        policy({ channels: ['email', 'email'] }),
        [{ path: '/rules/0/channels' }],
    ],
    ['a bad position', 'checkpoint-policy', policy({ position: 'during' }), [{ path: '/rules/0/position' }]],
    [
        'an unknown rule field',
        'checkpoint-policy',
        policy({ priority: 1 }),
        [{ path: '/rules/0/priority', message: 'is not allowed' }],
    ],
    [
        'an unknown match field',
        'checkpoint-policy',
        policy({ match: { risk: ['high'] } }),
        [{ path: '/rules/0/match/risk', message: 'is not allowed' }],
    ],
    [
        'an empty match list',
        'checkpoint-policy',
        policy({ match: { stages: [] } }),
        [{ path: '/rules/0/match/stages' }],
    ],
    [
        'a negative version',
        'checkpoint-policy',
        policy({}, -1),
        [{ path: '/expectedVersion', message: 'must be >= 0' }],
    ],
    ['no version', 'checkpoint-policy', { rules: [] }, [{ path: '/expectedVersion', message: 'is required' }]],

    ['a link comment', 'approval-link-request', { comment: 'ok' }, []],
    [
        'a link decision',
        'approval-link-request',
        { decision: 'approve' },
        [{ path: '/decision', message: 'is not allowed' }],
    ],
];

describe('validate', () => {
    it.each(CASES)('%s (%s)', (_what, schema, body, expected) => {
        const errors = schemaErrors(schema, body);
        if (expected.length === 0) {
            expect(errors).toEqual([]);
            expect(validate(schema, body)).toBe(body);
            return;
        }
        for (const e of expected) expect(errors).toContainEqual(expect.objectContaining(e));
        // Every reported field is one the case expects: no noise from other branches of the schema.
        expect([...new Set(errors.map((e) => e.path))].sort()).toEqual(
            [...new Set(expected.map((e) => e.path))].sort(),
        );
        expect(() => validate(schema, body)).toThrow(ValidationError);
    });

    it('throws VALIDATION_FAILED listing every failing field', () => {
        const body = run({ maxIterations: 0, extra: 1 }, { riskLevel: 'x' });
        try {
            validate('run-request', body);
            throw new Error('expected a ValidationError');
        } catch (e: unknown) {
            expect(e).toBeInstanceOf(ValidationError);
            const v = e as ValidationError;
            expect(v.code).toBe('VALIDATION_FAILED');
            expect(v.status).toBe(400);
            expect(v.errors.map((f) => f.path).sort()).toEqual(['/extra', '/maxIterations', '/metadata/riskLevel']);
        }
    });

    it('escapes property names in paths (RFC 6901)', () => {
        expect(schemaErrors('decision-request', { decision: 'approve', 'a/b~c': 1 })).toEqual([
            { path: '/a~1b~0c', message: 'is not allowed' },
        ]);
    });

    it(`reports at most ${MAX_FIELD_ERRORS} fields`, () => {
        const body: Record<string, unknown> = { decision: 'approve' };
        for (let i = 0; i < MAX_FIELD_ERRORS + 50; i++) body[`x${i}`] = i;
        expect(schemaErrors('decision-request', body)).toHaveLength(MAX_FIELD_ERRORS);
    });

    it('types the result from the schema name, or from an explicit type argument', () => {
        const r = validate('run-request', run());
        const team: string = r.metadata.team;
        const d = validate<{ decision: string }>('decision-request', { decision: 'approve' });
        expect([team, d.decision]).toEqual(['alpha', 'approve']);
    });
});

describe('parseBody', () => {
    const post = (body: string, contentType = 'application/json') =>
        new HttpRequest({
            method: 'POST',
            url: 'http://localhost/pipeline/stop',
            headers: { 'content-type': contentType },
            body: { string: body },
        });

    it('reads and validates a JSON body', async () => {
        const body = await parseBody(post(JSON.stringify(stop())), 'stop-request');
        expect(body.action).toBe('pause');
    });

    it('rejects an invalid body with its fields', async () => {
        await expect(parseBody(post(JSON.stringify(stop({ reason: ' ' }))), 'stop-request')).rejects.toMatchObject({
            code: 'VALIDATION_FAILED',
            errors: [{ path: '/reason', message: 'must not be blank' }],
        });
    });

    it('keeps readJson checks: content type and syntax', async () => {
        await expect(parseBody(post('{}', 'text/plain'), 'stop-request')).rejects.toBeInstanceOf(ValidationError);
        await expect(parseBody(post('{'), 'stop-request')).rejects.toMatchObject({
            errors: [{ path: '', message: 'request body is not valid JSON' }],
        });
    });
});

// --- Responses and domain types -----------------------------------------------------------------------------------

/** Compile-time: `accepts<T>(x)` compiles only if T accepts x. */
function accepts<T>(_value: T): void {}
/** A stand-in value of type T, for type-level checks that never look at it. */
const value = <T>(): T => ({}) as T;

describe('response schemas', () => {
    const records: AuditRecord[] = [];
    const base = { runId: 'run-1', at: '2025-01-31T12:00:00.000Z', actor: 'system', correlationID: 'c-1' } as const;
    records.push(chainNext(undefined, { ...base, eventId: 'e1', type: 'pipeline.queued' }, TEST_KEYS.current));
    records.push(
        chainNext(
            records[0],
            { ...base, eventId: 'e2', type: 'stage.started', stage: 'generation' },
            TEST_KEYS.current,
        ),
    );

    it('describe the audit records and chain verification the domain produces', () => {
        const logs: api.RunLogs = { events: records, chain: verifyChain(records, TEST_KEYS) };
        expect(schemaErrors('logs', logs)).toEqual([]);
        expect(schemaErrors('logs', { ...logs, chain: { verified: false, head: 'x' } })).toEqual([
            { path: '/chain/head', message: 'must be 64 lowercase hex digits' },
        ]);
    });

    it('describe the default policy, as stored and as a PUT body', () => {
        const stored: domainPolicy.VersionedPolicy = {
            ...domainPolicy.DEFAULT_POLICY,
            version: 0,
            updatedAt: base.at,
            updatedBy: 'system',
        };
        expect(schemaErrors('checkpoint-policy-versioned', stored)).toEqual([]);
        expect(schemaErrors('checkpoint-policy', { ...domainPolicy.DEFAULT_POLICY, expectedVersion: 0 })).toEqual([]);
    });

    it('describe the envelope of a success and of a validation failure', () => {
        expect(
            schemaErrors('envelope', { error_code: null, message: 'ok', correlationID: 'c', data: { any: 1 } }),
        ).toEqual([]);
        const failure = new ValidationError([{ path: '/reason', message: 'must not be blank' }]);
        expect(
            schemaErrors('envelope', {
                error_code: failure.code,
                message: failure.message,
                correlationID: 'c',
                data: null,
            }),
        ).toEqual([]);
        expect(schemaErrors('error-data', { errors: failure.errors })).toEqual([]);
        expect(schemaErrors('error-data', null)).toEqual([]);
    });

    it('describe the status view and list summary of domain/views.ts', () => {
        const at = base.at;
        const checkpointId = 'run-1.1.taste.before.0';
        const doc: domainRun.RunDoc = {
            id: 'run-1',
            status: 'AwaitingApproval',
            metadata: { team: 'alpha', riskLevel: 'high', complianceTags: ['pii'] },
            createdBy: 'alice',
            createdByRoles: ['Mesh.Developer'],
            createdAt: at,
            updatedAt: at,
            maxIterations: 1,
            iteration: 1,
            currentStage: 'taste',
            stages: initialStages(),
            checkpoints: [
                {
                    checkpointId,
                    key: 'taste.before.0',
                    iteration: 1,
                    stage: 'taste',
                    position: 'before',
                    requiredRoles: ['Mesh.Approver'],
                    approvals: 2,
                    timeoutMs: 86_400_000,
                    onTimeout: 'escalate',
                    escalateTo: ['Mesh.Admin'],
                    channels: ['email'],
                    rule: 'critical',
                    status: 'Open',
                    openedAt: at,
                    deadline: at,
                    escalated: false,
                    decisions: [{ actorId: 'bob', decision: 'approve', channel: 'link', at }],
                },
            ],
            nextAction: {
                type: 'approval',
                checkpointId,
                stage: 'taste',
                position: 'before',
                requiredRoles: ['Mesh.Approver'],
                deadline: at,
            },
            input: {},
            correlationID: 'c-1',
            traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        };
        expect(schemaErrors('run-status', statusView(doc, records))).toEqual([]);
        const done: domainRun.RunDoc = {
            ...doc,
            status: 'Completed',
            currentStage: null,
            nextAction: null,
            output: { ideas: [] },
        };
        expect(schemaErrors('run-status', statusView(done, records))).toEqual([]);
        expect(
            schemaErrors('run-list', {
                total: 2,
                items: [summaryView(doc), summaryView(done)],
                continuationToken: 'next',
            }),
        ).toEqual([]);
        expect(schemaErrors('run-list', { items: [] })).not.toEqual([]); // total is required
        // Waiting on whom: nextAction.waitingOn, an open info request, and the inbox.
        const asking: domainRun.RunDoc = {
            ...doc,
            metadata: { ...doc.metadata, title: 'a title' },
            checkpoints: doc.checkpoints.map((c) => ({ ...c, infoRequest: { by: 'bob', at, comment: 'which data?' } })),
        };
        const directory = [{ id: 'amir', name: 'Amir', roles: ['Mesh.Approver' as const], teams: ['alpha'] }];
        const waitingOn = waitingOnOf(asking, directory);
        expect(waitingOn?.approvers).toEqual([{ id: 'amir', name: 'Amir' }]);
        expect(
            schemaErrors('run-status', statusView(asking, records, { ...(waitingOn ? { waitingOn } : {}) })),
        ).toEqual([]);
        const approver = { id: 'amir', roles: ['Mesh.Approver' as const], teams: ['alpha'] };
        const items = [...inboxItems(approver, [asking]), ...inboxItems({ ...approver, id: 'alice' }, [asking])];
        expect(items.map((i) => i.action)).toEqual(['decide', 'answer']);
        expect(schemaErrors('inbox', { items })).toEqual([]);
        expect(schemaErrors('inbox', { items: [{ ...items[0], action: 'other' }] })).not.toEqual([]);
    });

    it('generate types the domain values fit, and that fit the domain', () => {
        // These lines are the test: `tsc -p tsconfig.json --noEmit` rejects them if the schemas and the domain types part
        // ways (ts-jest only transpiles, since the tsconfig sets isolatedModules).
        accepts<api.PolicyRule>(domainPolicy.DEFAULT_POLICY.rules[0]!);
        accepts<domainPolicy.PolicyRule>(value<api.PolicyRule>());
        accepts<api.RuleMatch>(value<domainPolicy.RuleMatch>());
        accepts<api.AuditRecordView>(records[0]!);
        accepts<api.ChainVerification>(verifyChain(records, TEST_KEYS));
        accepts<api.RunMetadata>(value<domainRun.RunMetadata>());
        accepts<domainRun.RunMetadata>(value<api.RunMetadata>());
        accepts<api.NextAction>(value<domainRun.NextAction>());
        accepts<api.WaitingOn>(value<WaitingOn>());
        accepts<api.InboxItem>(value<InboxItem>());
        accepts<api.InfoRequest>(value<NonNullable<domainRun.CheckpointState['infoRequest']>>());
        accepts<domainRun.NextAction>(value<api.NextAction>());
        accepts<api.StageState[]>(value<domainRun.RunDoc['stages']>());
        accepts<api.RunStatus>(value<domainRun.RunDoc['status']>());
        accepts<domainRun.RunDoc['status']>(value<api.RunStatus>());
        expect(true).toBe(true);
    });
});

// --- OpenAPI -----------------------------------------------------------------------------------------------------

/** SPEC's endpoint table. */
const SPEC_ENDPOINTS = [
    'post /pipeline/run',
    'get /pipeline/status/{id}',
    'post /pipeline/stop',
    'post /pipeline/resume',
    'get /pipeline/logs/{id}',
    'get /pipeline',
    'get /pipeline/inbox',
    'post /pipeline/checkpoints/{checkpointId}/decision',
    'post /pipeline/checkpoints/{checkpointId}/info',
    'get /approvals/{token}',
    'post /approvals/{token}',
    'get /pipeline/events',
    'get /checkpoint-policies',
    'put /checkpoint-policies',
    'get /health/live',
    'get /health/ready',
    'get /openapi.json',
];

/** A JSON document walked by path. */
type Doc = Record<string, any>;

function resolvePointer(doc: Doc, ref: string): unknown {
    return ref
        .slice(2)
        .split('/')
        .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce<unknown>((node, key) => (node as Doc | undefined)?.[key], doc);
}

function refsOf(node: unknown, out: string[] = []): string[] {
    if (Array.isArray(node)) node.forEach((n) => refsOf(n, out));
    else if (node !== null && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
            if (k === '$ref' && typeof v === 'string') out.push(v);
            else refsOf(v, out);
        }
    }
    return out;
}

describe('buildOpenApi', () => {
    const doc: Doc = buildOpenApi();
    const operations = Object.entries(doc.paths as Doc).flatMap(([path, item]) =>
        Object.entries(item as Doc).map(([method, op]) => ({ key: `${method} ${path}`, path, op: op as Doc })),
    );
    const deref = <T>(node: T): T => {
        const r = (node as Doc).$ref;
        return typeof r === 'string' ? (resolvePointer(doc, r) as T) : node;
    };

    it('is an OpenAPI 3.1 document with a JWT bearer scheme', () => {
        expect(doc.openapi).toBe('3.1.0');
        expect(doc.info.version).toBe('1');
        expect(doc.components.securitySchemes.bearerAuth).toEqual(
            expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }),
        );
        expect(doc.security).toEqual([{ bearerAuth: [] }]);
    });

    it('has every SPEC endpoint, and only those', () => {
        expect(operations.map((o) => o.key).sort()).toEqual([...SPEC_ENDPOINTS].sort());
    });

    it('resolves every $ref within the document', () => {
        const refs = refsOf(doc);
        expect(refs.length).toBeGreaterThan(100);
        expect(refs.filter((r) => !r.startsWith('#/') || resolvePointer(doc, r) === undefined)).toEqual([]);
    });

    it('embeds every schema file and shared definition, without root-only keywords', () => {
        const { components, names } = bundleSchemas();
        expect(doc.components.schemas).toEqual(components);
        for (const n of SCHEMA_NAMES) expect(doc.components.schemas[names[n]]).toBeDefined();
        for (const c of Object.values(doc.components.schemas as Doc)) {
            expect(Object.keys(c as Doc)).not.toEqual(expect.arrayContaining(['$id']));
            expect(c).not.toHaveProperty('$schema');
            expect(c).not.toHaveProperty('$defs');
        }
    });

    it('gives each operation a unique operationId, its path parameters and the common parameters', () => {
        expect(new Set(operations.map((o) => o.op.operationId)).size).toBe(operations.length);
        for (const { key, path, op } of operations) {
            const params = (op.parameters as Doc[]).map(deref);
            const names = params.map((p) => `${p.in}:${p.name}`);
            expect([key, names]).toEqual([
                key,
                expect.arrayContaining(['query:api-version', 'header:api-version', 'header:x-correlation-id']),
            ]);
            for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
                expect([key, params.find((p) => p.in === 'path' && p.name === name)?.required]).toEqual([key, true]);
            }
            expect(new Set(names).size).toBe(names.length);
        }
    });

    it('documents the run, logs and list parameters', () => {
        const names = (key: string) =>
            (operations.find((o) => o.key === key)!.op.parameters as Doc[]).map(deref).map((p) => `${p.in}:${p.name}`);
        expect(names('post /pipeline/run')).toContain('header:Idempotency-Key');
        expect(names('get /pipeline/logs/{id}')).toEqual(
            expect.arrayContaining(['query:continuationToken', 'query:format', 'path:id']),
        );
        expect(names('get /pipeline')).toEqual(
            expect.arrayContaining([
                'query:status',
                'query:team',
                'query:stage',
                'query:createdBy',
                'query:since',
                'query:q',
                'query:riskLevel',
                'query:waitingFor',
            ]),
        );
        expect(names('get /pipeline')).toContain('query:continuationToken');
        const logs = operations.find((o) => o.key === 'get /pipeline/logs/{id}')!.op;
        expect(Object.keys(logs.responses['200'].content)).toEqual(['application/json', 'application/x-ndjson']);
    });

    it('wraps JSON answers in the envelope and answers each error code with its status', () => {
        for (const { key, op } of operations) {
            const [status, success] = Object.entries(op.responses as Doc).find(([s]) => s.startsWith('2'))!;
            const json = success.content['application/json']?.schema;
            if (json && key !== 'get /openapi.json') {
                expect([key, json.allOf[0]]).toEqual([key, { $ref: '#/components/schemas/Envelope' }]);
            }
            expect(['200', '202']).toContain(status);
            for (const [code, response] of Object.entries(op.responses as Doc)) {
                expect(typeof deref(response).description).toBe('string');
                if (code.startsWith('2')) continue;
                const schema = deref(response).content['application/json']?.schema;
                if (!schema) continue; // the HTML pages of the approval links
                const codes = schema.allOf[1].properties.error_code.enum as string[];
                for (const c of codes)
                    expect([key, c, STATUS_OF[c as keyof typeof STATUS_OF]]).toEqual([key, c, Number(code)]);
            }
        }
        expect(Object.keys(doc.components.responses).sort()).toEqual(Object.keys(STATUS_OF).sort());
    });

    it('validates like the request validator (its components compile with ajv)', () => {
        const ajv = new Ajv2020({ strict: false, allErrors: true });
        addFormats(ajv);
        ajv.addSchema({ ...doc, $id: 'https://mesh.local/openapi.json' });
        const { names } = bundleSchemas();
        for (const [, schema, body, expected] of CASES) {
            const fn = ajv.getSchema(`https://mesh.local/openapi.json#/components/schemas/${names[schema]}`)!;
            expect([schema, body, fn(body)]).toEqual([schema, body, expected.length === 0]);
        }
    });
});
