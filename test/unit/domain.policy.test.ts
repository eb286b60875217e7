import { ValidationError } from '../../domain/errors';
import {
    assertPolicySemantics,
    type CheckpointPolicy,
    checkpointsFor,
    type CheckpointSpec,
    DEFAULT_POLICY,
    type PolicyRule,
    ruleMatches,
    type RunFacts,
} from '../../domain/policy';

const DAY_MS = 86_400_000;

const run = (over: Partial<RunFacts> = {}): RunFacts => ({
    riskLevel: 'low',
    complianceTags: [],
    team: 'alpha',
    submitterRoles: ['Mesh.Developer'],
    ...over,
});

const rule = (name: string, over: Partial<PolicyRule> = {}): PolicyRule => ({
    name,
    match: {},
    position: 'before',
    requiredRoles: ['Mesh.Approver'],
    approvals: 1,
    timeout: 'PT4H',
    onTimeout: 'reject',
    channels: ['email'],
    ...over,
});

const policy = (...rules: PolicyRule[]): CheckpointPolicy => ({ rules });
const where = (specs: CheckpointSpec[]) => specs.map((s) => `${s.key} ${s.rule}`);

describe('checkpointsFor with DEFAULT_POLICY', () => {
    it.each(['low', 'medium'] as const)('a %s-risk run has no checkpoints', (riskLevel) => {
        expect(checkpointsFor(DEFAULT_POLICY, run({ riskLevel }))).toEqual([]);
        expect(
            checkpointsFor(DEFAULT_POLICY, run({ riskLevel, complianceTags: ['pii'], submitterRoles: ['Mesh.Admin'] })),
        ).toEqual([]);
    });

    it('a high-risk run stops before taste and after improvement: one Mesh.Approver, P1D, onTimeout reject', () => {
        const common = {
            requiredRoles: ['Mesh.Approver'],
            approvals: 1,
            timeoutMs: DAY_MS,
            onTimeout: 'reject',
            escalateTo: [],
            channels: ['email', 'teams'],
        };
        expect(checkpointsFor(DEFAULT_POLICY, run({ riskLevel: 'high' }))).toEqual([
            {
                key: 'taste.before.0',
                rule: 'high-risk review before taste',
                stage: 'taste',
                position: 'before',
                ...common,
            },
            {
                key: 'improvement.after.0',
                rule: 'high-risk review after improvement',
                stage: 'improvement',
                position: 'after',
                ...common,
            },
        ]);
    });

    it('a critical run needs two approvers and escalates to Mesh.Admin on timeout', () => {
        const common = {
            requiredRoles: ['Mesh.Approver'],
            approvals: 2,
            timeoutMs: DAY_MS,
            onTimeout: 'escalate',
            escalateTo: ['Mesh.Admin'],
            channels: ['email', 'teams'],
        };
        expect(checkpointsFor(DEFAULT_POLICY, run({ riskLevel: 'critical' }))).toEqual([
            {
                key: 'taste.before.0',
                rule: 'critical-risk review before taste',
                stage: 'taste',
                position: 'before',
                ...common,
            },
            {
                key: 'improvement.after.0',
                rule: 'critical-risk review after improvement',
                stage: 'improvement',
                position: 'after',
                ...common,
            },
        ]);
    });

    it('the defaults depend on the risk level only', () => {
        const other = run({ riskLevel: 'high', complianceTags: ['pii'], team: 'beta', submitterRoles: ['Mesh.Admin'] });
        expect(checkpointsFor(DEFAULT_POLICY, other)).toEqual(
            checkpointsFor(DEFAULT_POLICY, run({ riskLevel: 'high' })),
        );
    });

    it('passes its own semantic checks', () => {
        expect(() => assertPolicySemantics(DEFAULT_POLICY)).not.toThrow();
    });
});

describe('rule matching', () => {
    it('an empty match places the rule at every stage, in pipeline order', () => {
        expect(checkpointsFor(policy(rule('everywhere')), run()).map((s) => s.key)).toEqual([
            'generation.before.0',
            'filtering.before.0',
            'creativity.before.0',
            'taste.before.0',
            'improvement.before.0',
        ]);
    });

    it('complianceTags match when the run carries any of them', () => {
        const r = rule('regulated', { match: { complianceTags: ['pii', 'hipaa'], stages: ['taste'] } });
        expect(ruleMatches(r, run({ complianceTags: ['hipaa'] }), 'taste')).toBe(true);
        expect(ruleMatches(r, run({ complianceTags: ['gdpr', 'pii'] }), 'taste')).toBe(true);
        expect(ruleMatches(r, run({ complianceTags: ['gdpr'] }), 'taste')).toBe(false);
        expect(ruleMatches(r, run({ complianceTags: [] }), 'taste')).toBe(false);
        expect(ruleMatches(r, run({ complianceTags: ['PII'] }), 'taste')).toBe(false); // tags are exact strings
        expect(checkpointsFor(policy(r), run({ complianceTags: ['pii'] }))).toHaveLength(1);
    });

    it('teams match the run’s team', () => {
        const r = rule('team rule', { match: { teams: ['alpha', 'gamma'] } });
        expect(ruleMatches(r, run({ team: 'alpha' }), 'generation')).toBe(true);
        expect(ruleMatches(r, run({ team: 'gamma' }), 'generation')).toBe(true);
        expect(ruleMatches(r, run({ team: 'beta' }), 'generation')).toBe(false);
    });

    it('submitterRoles match when the submitter holds any of them', () => {
        const r = rule('data science', { match: { submitterRoles: ['Mesh.DataScientist', 'Mesh.Operator'] } });
        expect(ruleMatches(r, run({ submitterRoles: ['Mesh.Developer', 'Mesh.DataScientist'] }), 'taste')).toBe(true);
        expect(ruleMatches(r, run({ submitterRoles: ['Mesh.Operator'] }), 'taste')).toBe(true);
        expect(ruleMatches(r, run({ submitterRoles: ['Mesh.Developer'] }), 'taste')).toBe(false);
        expect(ruleMatches(r, run({ submitterRoles: [] }), 'taste')).toBe(false);
    });

    it('stages and riskLevels restrict where and for whom', () => {
        const r = rule('late high', { match: { stages: ['taste', 'improvement'], riskLevels: ['high', 'critical'] } });
        expect(ruleMatches(r, run({ riskLevel: 'high' }), 'taste')).toBe(true);
        expect(ruleMatches(r, run({ riskLevel: 'critical' }), 'improvement')).toBe(true);
        expect(ruleMatches(r, run({ riskLevel: 'high' }), 'generation')).toBe(false);
        expect(ruleMatches(r, run({ riskLevel: 'medium' }), 'taste')).toBe(false);
    });

    it('every criterion must match (and)', () => {
        const r = rule('all', {
            match: {
                riskLevels: ['high'],
                complianceTags: ['pii'],
                teams: ['alpha'],
                submitterRoles: ['Mesh.Developer'],
                stages: ['taste'],
            },
        });
        const all = run({ riskLevel: 'high', complianceTags: ['pii'] });
        expect(ruleMatches(r, all, 'taste')).toBe(true);
        expect(ruleMatches(r, { ...all, riskLevel: 'low' }, 'taste')).toBe(false);
        expect(ruleMatches(r, { ...all, complianceTags: [] }, 'taste')).toBe(false);
        expect(ruleMatches(r, { ...all, team: 'beta' }, 'taste')).toBe(false);
        expect(ruleMatches(r, { ...all, submitterRoles: ['Mesh.Operator'] }, 'taste')).toBe(false);
        expect(ruleMatches(r, all, 'creativity')).toBe(false);
    });

    it('several matching rules add several checkpoints, numbered per stage and position in policy order', () => {
        const p = policy(
            rule('A after taste', { match: { stages: ['taste'] }, position: 'after' }),
            rule('B before taste', { match: { stages: ['taste'] } }),
            rule('C pii', { match: { stages: ['taste', 'generation'], complianceTags: ['pii'] } }),
            rule('D other team', { match: { stages: ['taste'], teams: ['beta'] } }),
            rule('E after taste, 2 approvers', {
                match: { stages: ['taste'] },
                position: 'after',
                approvals: 2,
                timeout: 'P1DT2H',
            }),
        );
        const specs = checkpointsFor(p, run({ complianceTags: ['pii'] }));
        expect(where(specs)).toEqual([
            'generation.before.0 C pii',
            'taste.before.0 B before taste',
            'taste.before.1 C pii',
            'taste.after.0 A after taste',
            'taste.after.1 E after taste, 2 approvers',
        ]);
        expect(specs[4]).toMatchObject({ approvals: 2, timeoutMs: 93_600_000 });
        expect(where(checkpointsFor(p, run()))).toEqual([
            'taste.before.0 B before taste',
            'taste.after.0 A after taste',
            'taste.after.1 E after taste, 2 approvers',
        ]);
    });

    it('copies the rule’s settings into each checkpoint', () => {
        const r = rule('escalating', {
            requiredRoles: ['Mesh.Approver', 'Mesh.Compliance'],
            approvals: 3,
            timeout: 'PT30M',
            onTimeout: 'escalate',
            escalateTo: ['Mesh.Admin'],
            channels: ['slack', 'webhook'],
            match: { stages: ['filtering'] },
            position: 'after',
        });
        expect(checkpointsFor(policy(r), run())).toEqual([
            {
                key: 'filtering.after.0',
                rule: 'escalating',
                stage: 'filtering',
                position: 'after',
                requiredRoles: ['Mesh.Approver', 'Mesh.Compliance'],
                approvals: 3,
                timeoutMs: 1_800_000,
                onTimeout: 'escalate',
                escalateTo: ['Mesh.Admin'],
                channels: ['slack', 'webhook'],
            },
        ]);
    });
});

describe('assertPolicySemantics', () => {
    const errorsOf = (p: CheckpointPolicy) => {
        try {
            assertPolicySemantics(p);
        } catch (e: unknown) {
            expect(e).toBeInstanceOf(ValidationError);
            return (e as ValidationError).errors;
        }
        return [];
    };

    it('accepts valid rules, and an empty policy', () => {
        expect(
            errorsOf(
                policy(rule('a'), rule('b', { onTimeout: 'escalate', escalateTo: ['Mesh.Admin'], timeout: 'P1W' })),
            ),
        ).toEqual([]);
        expect(errorsOf(policy())).toEqual([]);
    });

    it.each(['P', 'PT', '1D', 'P-1D', 'PT0S', 'soon'])('rejects the timeout %j', (timeout) => {
        expect(errorsOf(policy(rule('ok'), rule('bad', { timeout })))).toEqual([
            { path: '/rules/1/timeout', message: 'must be a positive ISO 8601 duration such as P1D or PT4H' },
        ]);
    });

    it('requires escalateTo when onTimeout is escalate', () => {
        const message = "is required when onTimeout is 'escalate'";
        expect(errorsOf(policy(rule('no target', { onTimeout: 'escalate' })))).toEqual([
            { path: '/rules/0/escalateTo', message },
        ]);
        expect(errorsOf(policy(rule('empty target', { onTimeout: 'escalate', escalateTo: [] })))).toEqual([
            { path: '/rules/0/escalateTo', message },
        ]);
        expect(errorsOf(policy(rule('not escalating', { onTimeout: 'approve' })))).toEqual([]);
    });

    it('lists every failing field, rule by rule, as VALIDATION_FAILED', () => {
        const p = policy(rule('a', { timeout: 'x', onTimeout: 'escalate' }), rule('b'), rule('c', { timeout: 'PT' }));
        expect(() => assertPolicySemantics(p)).toThrow(
            expect.objectContaining({ code: 'VALIDATION_FAILED', status: 400 }) as Error,
        );
        expect(errorsOf(p).map((e) => e.path)).toEqual(['/rules/0/timeout', '/rules/0/escalateTo', '/rules/2/timeout']);
    });
});
