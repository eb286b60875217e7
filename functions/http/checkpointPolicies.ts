import { app, HttpRequest, InvocationContext } from '@azure/functions';

import { deps } from '../../adapters/deps';
import { corsRoute, withCors } from '../../adapters/http/cors';
import { type CallInfo, enveloped, type Result } from '../../adapters/http/envelope';
import { principalOf } from '../../adapters/http/request';
import { parseBody } from '../../adapters/http/validation';
import { POLICY_CHAIN } from '../../domain/audit';
import { assertPolicySemantics, type CheckpointPolicy } from '../../domain/policy';
import { assertCanReadPolicy, assertCanWritePolicy } from '../../domain/rbac';

interface PolicyPut extends CheckpointPolicy {
    expectedVersion: number;
}

/** GET /checkpoint-policies: the current policy and its version. */
export async function getCheckpointPolicies(req: HttpRequest, _ctx: InvocationContext): Promise<Result<unknown>> {
    assertCanReadPolicy(await principalOf(req));
    return { data: await deps().policies.get() };
}

/** PUT /checkpoint-policies: a new version (optimistic: `expectedVersion` must be current), audited. */
export async function putCheckpointPolicies(
    req: HttpRequest,
    _ctx: InvocationContext,
    call: CallInfo,
): Promise<Result<unknown>> {
    const principal = await principalOf(req);
    assertCanWritePolicy(principal);
    const body = await parseBody<PolicyPut>(req, 'checkpoint-policy');
    const { expectedVersion, ...policy } = body;
    assertPolicySemantics(policy);
    const d = deps();
    const at = d.now().toISOString();
    const saved = await d.policies.put(policy, expectedVersion, principal.id, at);
    await d.audit.append({
        eventId: `${POLICY_CHAIN}/v${saved.version}`,
        runId: POLICY_CHAIN,
        type: 'policy.updated',
        at,
        actor: principal.id,
        correlationID: call.correlationID,
        details: { version: saved.version, previousVersion: expectedVersion, rules: saved.rules.map((r) => r.name) },
    });
    return { data: saved, message: `policy version ${saved.version} saved` };
}

app.http('getCheckpointPolicies', {
    route: 'checkpoint-policies',
    // The route's one OPTIONS registration (two would be ambiguous): its preflight allows PUT too.
    ...corsRoute(['GET'], enveloped(getCheckpointPolicies), ['PUT']),
});
app.http('putCheckpointPolicies', {
    route: 'checkpoint-policies',
    methods: ['PUT'],
    handler: withCors(enveloped(putCheckpointPolicies)),
});
