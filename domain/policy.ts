/**
 * The HITL checkpoint policy: an ordered list of rules; every rule that matches a run adds a checkpoint.
 * Evaluated once, when the run is submitted, so a running workflow keeps the checkpoints it started with.
 */
import { parseDuration } from './duration';
import { ValidationError } from './errors';
import { Position, RiskLevel, Stage, STAGES } from './pipeline';
import { Role } from './principal';

export const CHANNELS = ['email', 'teams', 'slack', 'webhook'] as const;
export type Channel = (typeof CHANNELS)[number];
export const ON_TIMEOUT = ['reject', 'escalate', 'approve'] as const;
export type OnTimeout = (typeof ON_TIMEOUT)[number];

/** What a rule matches on; an absent criterion matches everything. */
export interface RuleMatch {
    riskLevels?: RiskLevel[];
    /** Matches when the run carries any of these tags. */
    complianceTags?: string[];
    teams?: string[];
    /** Matches when the submitter holds any of these roles. */
    submitterRoles?: Role[];
    stages?: Stage[];
}

export interface PolicyRule {
    name: string;
    match: RuleMatch;
    position: Position;
    requiredRoles: Role[];
    /** Quorum: how many distinct approvers. */
    approvals: number;
    /** ISO 8601 duration. */
    timeout: string;
    onTimeout: OnTimeout;
    escalateTo?: Role[];
    channels: Channel[];
}

export interface CheckpointPolicy {
    rules: PolicyRule[];
    /**
     * Whether events and the audit trail as Compliance reads it show e-mail addresses, phone numbers and tokens in
     * what people typed (`show`), or mask them (`mask`, the default when absent). See domain/privacy.ts.
     */
    personalData?: 'mask' | 'show';
}

/** A stored policy: versioned, so every change is a new version and concurrent edits conflict. */
export interface VersionedPolicy extends CheckpointPolicy {
    version: number;
    updatedAt: string;
    updatedBy: string;
}

/** SPEC's defaults: high and critical runs stop before taste and after improvement. */
export const DEFAULT_POLICY: CheckpointPolicy = {
    rules: [
        rule('high-risk review', ['high'], 1, 'reject'),
        rule('critical-risk review', ['critical'], 2, 'escalate', ['Mesh.Admin']),
    ].flatMap((r) => [
        {
            ...r,
            name: `${r.name} before taste`,
            match: { ...r.match, stages: ['taste'] as Stage[] },
            position: 'before' as const,
        },
        {
            ...r,
            name: `${r.name} after improvement`,
            match: { ...r.match, stages: ['improvement'] as Stage[] },
            position: 'after' as const,
        },
    ]),
};

function rule(
    name: string,
    riskLevels: RiskLevel[],
    approvals: number,
    onTimeout: OnTimeout,
    escalateTo?: Role[],
): PolicyRule {
    return {
        name,
        match: { riskLevels },
        position: 'before',
        requiredRoles: ['Mesh.Approver'],
        approvals,
        timeout: 'P1D',
        onTimeout,
        ...(escalateTo ? { escalateTo } : {}),
        channels: ['email', 'teams'],
    };
}

/** The facts of a run that rules match on. */
export interface RunFacts {
    riskLevel: RiskLevel;
    complianceTags: string[];
    team: string;
    submitterRoles: Role[];
}

/** One checkpoint a run will stop at, fixed at submission. */
export interface CheckpointSpec {
    /** Unique within the run and iteration: `<stage>.<position>.<n>`. */
    key: string;
    rule: string;
    stage: Stage;
    position: Position;
    requiredRoles: Role[];
    approvals: number;
    timeoutMs: number;
    onTimeout: OnTimeout;
    escalateTo: Role[];
    channels: Channel[];
}

export function ruleMatches(r: PolicyRule, run: RunFacts, stage: Stage): boolean {
    const m = r.match;
    return (
        (!m.stages || m.stages.includes(stage)) &&
        (!m.riskLevels || m.riskLevels.includes(run.riskLevel)) &&
        (!m.teams || m.teams.includes(run.team)) &&
        (!m.complianceTags || m.complianceTags.some((t) => run.complianceTags.includes(t))) &&
        (!m.submitterRoles || m.submitterRoles.some((role) => run.submitterRoles.includes(role)))
    );
}

/** Every checkpoint the policy places on this run, in pipeline order (before, then after, each stage). */
export function checkpointsFor(policy: CheckpointPolicy, run: RunFacts): CheckpointSpec[] {
    const out: CheckpointSpec[] = [];
    for (const stage of STAGES) {
        for (const position of ['before', 'after'] as const) {
            policy.rules
                .filter((r) => r.position === position && ruleMatches(r, run, stage))
                .forEach((r, n) =>
                    out.push({
                        key: `${stage}.${position}.${n}`,
                        rule: r.name,
                        stage,
                        position,
                        requiredRoles: r.requiredRoles,
                        approvals: r.approvals,
                        timeoutMs: parseDuration(r.timeout) ?? 0,
                        onTimeout: r.onTimeout,
                        escalateTo: r.escalateTo ?? [],
                        channels: r.channels,
                    }),
                );
        }
    }
    return out;
}

/** Checks what JSON Schema cannot: durations parse, escalation has a target, quorum fits the rule. */
export function assertPolicySemantics(policy: CheckpointPolicy): void {
    const errors = policy.rules.flatMap((r, i) => {
        const e: { path: string; message: string }[] = [];
        if (parseDuration(r.timeout) === undefined)
            e.push({
                path: `/rules/${i}/timeout`,
                message: 'must be a positive ISO 8601 duration such as P1D or PT4H',
            });
        if (r.onTimeout === 'escalate' && !r.escalateTo?.length)
            e.push({ path: `/rules/${i}/escalateTo`, message: "is required when onTimeout is 'escalate'" });
        return e;
    });
    if (errors.length) throw new ValidationError(errors);
}

/** The policy without version stamps, should a caller pass a VersionedPolicy back in to be saved. */
export function policyBody(policy: CheckpointPolicy): CheckpointPolicy {
    const {
        version: _v,
        updatedAt: _a,
        updatedBy: _b,
        ...body
    } = policy as Partial<VersionedPolicy> & CheckpointPolicy;
    return body;
}
