/**
 * Submitting a run: who may, which checkpoints the policy places on it (fixed now, for the run's life), and
 * the idempotent creation of its projection and first audit record.
 */
import { createHash } from 'node:crypto';

import { canonicalJson } from './audit';
import { initialStages } from './pipeline';
import { checkpointsFor, type CheckpointSpec } from './policy';
import type { AuditLog, PolicyStore, RunStore } from './ports';
import type { Principal } from './principal';
import { assertCanSubmit } from './rbac';
import { checkpointIdOf, type RunDoc, type RunMetadata } from './run';

export interface SubmitRequest {
    input: Record<string, unknown>;
    metadata: RunMetadata;
    maxIterations?: number;
}

export interface SubmitContext {
    runId: string;
    correlationID: string;
    traceparent: string;
    idempotencyKey?: string;
    at: string;
}

export async function submitRun(
    ports: { runs: RunStore; audit: AuditLog; policies: PolicyStore },
    p: Principal,
    body: SubmitRequest,
    c: SubmitContext,
): Promise<{ run: RunDoc; created: boolean }> {
    assertCanSubmit(p, body.metadata.team);
    const policy = await ports.policies.get();
    const specs = checkpointsFor(policy, {
        riskLevel: body.metadata.riskLevel,
        complianceTags: body.metadata.complianceTags,
        team: body.metadata.team,
        submitterRoles: p.roles,
    });
    const run: RunDoc = {
        id: c.runId,
        status: 'Queued',
        metadata: body.metadata,
        createdBy: p.id,
        ...(p.name ? { createdByName: p.name } : {}),
        createdByRoles: p.roles,
        createdAt: c.at,
        updatedAt: c.at,
        maxIterations: body.maxIterations ?? 1,
        iteration: 1,
        currentStage: null,
        stages: initialStages(),
        checkpoints: specs.map((s) => ({
            checkpointId: checkpointIdOf(c.runId, 1, s),
            key: s.key,
            iteration: 1,
            stage: s.stage,
            position: s.position,
            requiredRoles: s.requiredRoles,
            approvals: s.approvals,
            timeoutMs: s.timeoutMs,
            rule: s.rule,
            onTimeout: s.onTimeout,
            escalateTo: s.escalateTo,
            channels: s.channels,
            status: 'Pending',
            openedAt: null,
            deadline: null,
            escalated: false,
            decisions: [],
        })),
        nextAction: null,
        input: body.input,
        correlationID: c.correlationID,
        traceparent: c.traceparent,
        ...(c.idempotencyKey
            ? { idempotencyKey: c.idempotencyKey, idempotencyFingerprint: requestFingerprint(body) }
            : {}),
    };
    const result = await ports.runs.create(run);
    // Appending is idempotent by eventId, so a retried submission that crashed here completes the record.
    await ports.audit.append({
        eventId: `${result.run.id}/0`,
        runId: result.run.id,
        type: 'pipeline.queued',
        at: result.run.createdAt,
        actor: result.run.createdBy,
        correlationID: result.run.correlationID,
        details: {
            team: result.run.metadata.team,
            riskLevel: result.run.metadata.riskLevel,
            complianceTags: result.run.metadata.complianceTags,
            checkpoints: result.run.checkpoints.map((x) => x.key),
            maxIterations: result.run.maxIterations,
        },
    });
    return result;
}

/** SHA-256 (hex) of the RFC 8785 canonical JSON of a validated submit request: what an Idempotency-Key stands for. */
export function requestFingerprint(body: SubmitRequest): string {
    return createHash('sha256').update(canonicalJson(body), 'utf8').digest('hex');
}

/** The orchestration input of a run: its own fixed checkpoint specs, never the policy as it is now. */
export function checkpointSpecsOf(run: RunDoc): CheckpointSpec[] {
    return run.checkpoints
        .filter((c) => c.iteration === 1)
        .map((c) => ({
            key: c.key,
            rule: c.rule,
            stage: c.stage,
            position: c.position,
            requiredRoles: c.requiredRoles,
            approvals: c.approvals,
            timeoutMs: c.timeoutMs,
            onTimeout: c.onTimeout,
            escalateTo: c.escalateTo,
            channels: c.channels,
        }));
}
