/**
 * infra/monitoring/ against the code: every metric a rule or the dashboard queries is one the app exposes (the real
 * registry, its histogram series and the Node process defaults) or a recording rule defined beside them; label values
 * in selectors are ones the code produces; every alert is routable (severity page|ticket), documented (its runbook
 * anchor exists in docs/operations.md) and tested by promtool both firing and not firing; the Bicep alerts module
 * loads every rules file, so Azure evaluates the same rules.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parse } from 'yaml';

import { createMetrics, DECISION_LABELS } from '../../adapters/telemetry/metrics';
import { RUN_STATUSES, STAGES } from '../../domain/pipeline';

const ROOT = join(__dirname, '..', '..');
const MONITORING = join(ROOT, 'infra', 'monitoring');
const RULE_FILES = readdirSync(MONITORING)
    .filter((f) => f.endsWith('.rules.yml'))
    .sort();
const TEST_FILES = readdirSync(join(MONITORING, 'tests')).filter((f) => f.endsWith('.yml'));

interface Rule {
    alert?: string;
    record?: string;
    expr: string;
    for?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
}
interface RuleFile {
    groups: { name: string; interval?: string; rules: Rule[] }[];
}

const rules: Rule[] = RULE_FILES.flatMap((f) =>
    (parse(readFileSync(join(MONITORING, f), 'utf8')) as RuleFile).groups.flatMap((g) => g.rules),
);
const alerts = rules.filter((r) => r.alert);
const dashboard = JSON.parse(readFileSync(join(MONITORING, 'grafana', 'mesh-dashboard.json'), 'utf8')) as {
    __inputs: { name: string; type: string; pluginId: string }[];
    panels: { type: string; title: string; datasource?: { uid: string }; targets?: { expr: string }[] }[];
};
const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

/** What /metrics can answer: the registry's names (histograms as their three series) and `up` from Prometheus. */
async function exposedNames(): Promise<Set<string>> {
    const json = await createMetrics().registry.getMetricsAsJSON();
    const names = new Set<string>(['up']);
    for (const m of json) {
        if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
        else names.add(m.name);
    }
    return names;
}

const KEYWORDS = new Set([
    'by',
    'without',
    'on',
    'ignoring',
    'group_left',
    'group_right',
    'and',
    'or',
    'unless',
    'bool',
    'offset',
    'inf',
    'nan',
]);

/** Selectors in a PromQL expression: each metric name with its label matchers. */
function selectors(expr: string): { name: string; matchers: { label: string; op: string; value: string }[] }[] {
    const out: { name: string; matchers: { label: string; op: string; value: string }[] }[] = [];
    const s = expr
        // label lists of aggregations and vector matching are not metric names
        .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
        // durations and subquery ranges
        .replace(/\[[^\]]*\]/g, ' ');
    const re = /(?<![\w:.])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?/g;
    for (const m of s.matchAll(re)) {
        const [, name = '', braces, call] = m;
        if (call || KEYWORDS.has(name.toLowerCase())) continue; // a function, or a keyword
        const matchers = [...(braces ?? '').matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)].map(
            ([, label = '', op = '', value = '']) => ({ label, op, value }),
        );
        out.push({ name, matchers });
    }
    // label values inside quotes were skipped by the braces; strings elsewhere (e.g. label_replace) are not used here
    return out;
}

/** The names an expression uses that are neither exposed nor recorded. */
function unknownNames(exprs: readonly string[], known: ReadonlySet<string>): string[] {
    return [...new Set(exprs.flatMap((e) => selectors(e).map((s) => s.name)))].filter((n) => !known.has(n)).sort();
}

/** Label values the code produces, for the labels with a fixed set (adapters/telemetry/*, domain/pipeline). */
const VALUES: Record<string, Record<string, readonly string[]>> = {
    mesh_runs: { status: RUN_STATUSES },
    mesh_runs_finished_total: { status: RUN_STATUSES },
    mesh_stage_duration_seconds: { stage: STAGES, outcome: ['success', 'failure', 'error'] },
    mesh_checkpoint_decision_seconds: { decision: DECISION_LABELS },
    mesh_event_deliveries_total: { outcome: ['delivered', 'failed'] },
    mesh_notifications_total: { outcome: ['sent', 'failed', 'outbox'] },
};
const baseName = (n: string): string => n.replace(/_(bucket|sum|count)$/, '');

/** `name{label="value"}` matchers whose value the code never produces. */
function impossibleValues(exprs: readonly string[]): string[] {
    const bad: string[] = [];
    for (const e of exprs)
        for (const sel of selectors(e))
            for (const m of sel.matchers) {
                const allowed = VALUES[baseName(sel.name)]?.[m.label];
                if (!allowed || m.label === 'le') continue;
                const values = m.op === '=' || m.op === '!=' ? [m.value] : m.value.split('|');
                for (const v of values)
                    if (!/[.*+?()[\]]/.test(v) && !allowed.includes(v)) bad.push(`${sel.name}{${m.label}="${v}"}`);
            }
    return bad;
}

describe('infra/monitoring uses only what the app exposes', () => {
    let known: Set<string>;
    beforeAll(async () => {
        known = await exposedNames();
        for (const r of rules) if (r.record) known.add(r.record);
    });

    it('finds the rules and the dashboard queries', () => {
        expect(RULE_FILES).toEqual(['mesh.rules.yml', 'slo.rules.yml']);
        expect(alerts.length).toBeGreaterThanOrEqual(12);
        expect(dashboardExprs.length).toBeGreaterThanOrEqual(20);
    });

    it('every metric in a rule or a dashboard query is exposed by the registry or recorded by a rule', () => {
        expect(
            unknownNames(
                rules.map((r) => r.expr),
                known,
            ),
        ).toEqual([]);
        expect(unknownNames(dashboardExprs, known)).toEqual([]);
    });

    it('names a misspelt or invented metric', () => {
        expect(unknownNames(['sum(rate(mesh_runs_finished_totl{status="Failed"}[5m]))'], known)).toEqual([
            'mesh_runs_finished_totl',
        ]);
        expect(unknownNames(['mesh:availability_errors:ratio_rate7m > 0.001'], known)).toEqual([
            'mesh:availability_errors:ratio_rate7m',
        ]);
        expect(
            unknownNames(['histogram_quantile(0.99, sum by (stage, le) (rate(mesh_stage_latency_bucket[5m])))'], known),
        ).toEqual(['mesh_stage_latency_bucket']);
        // functions, keywords, label lists and durations are not metric names
        expect(
            unknownNames(
                [
                    '(sum by (route) (rate(mesh_http_request_duration_seconds_count{status=~"5.."}[1h])) or vector(0)) > 14.4 * 0.001 and on () absent(up)',
                ],
                known,
            ),
        ).toEqual([]);
    });

    it('uses only label values the code produces (no dead-lettered outcome, no lower-case status)', () => {
        expect(impossibleValues([...rules.map((r) => r.expr), ...dashboardExprs])).toEqual([]);
        expect(
            impossibleValues([
                'rate(mesh_event_deliveries_total{outcome="dead_lettered"}[5m])',
                'mesh_runs{status="running"}',
                'rate(mesh_stage_duration_seconds_count{outcome=~"failure|timeout"}[5m])',
            ]),
        ).toEqual([
            'mesh_event_deliveries_total{outcome="dead_lettered"}',
            'mesh_runs{status="running"}',
            'mesh_stage_duration_seconds_count{outcome="timeout"}',
        ]);
    });
});

describe('every alert', () => {
    const operations = existsSync(join(ROOT, 'docs', 'operations.md'))
        ? readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8')
        : '';
    /** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
    const anchors = new Set(
        [...operations.matchAll(/^#{1,6}\s+(.+)$/gm)].map(([, h = '']) =>
            h
                .trim()
                .toLowerCase()
                .replace(/[^\w\- ]/g, '')
                .replace(/ /g, '-'),
        ),
    );

    it.each(alerts.map((a) => [`${a.alert!} (${a.labels?.severity})`, a] as const))(
        '%s is routable and documented',
        (_name, a) => {
            expect(['page', 'ticket']).toContain(a.labels?.severity);
            expect(a.annotations?.summary).toBeTruthy();
            expect(a.annotations?.description).toBeTruthy();
            expect(a.for).toMatch(/^\d+[mh]$/); // Azure needs PT<for> (alerts.bicep): minutes or hours
            const url = a.annotations?.runbook_url ?? '';
            expect(url).toMatch(/^docs\/operations\.md#[a-z0-9-]+$/);
            expect(anchors).toContain(url.split('#')[1]);
        },
    );

    it('that only Azure raises (alerts.bicep metric alerts) has its runbook entry too', () => {
        const bicep = readFileSync(join(ROOT, 'infra', 'bicep', 'modules', 'alerts.bicep'), 'utf8');
        const refs = [...bicep.matchAll(/docs\/operations\.md#([a-z0-9-]+)/g)].map(([, a]) => a);
        expect(refs.length).toBeGreaterThanOrEqual(2);
        for (const a of refs) expect(anchors).toContain(a);
    });

    it('has a promtool test where it fires and one where it does not', () => {
        const cases = new Map<string, { fires: boolean; quiet: boolean }>();
        for (const f of TEST_FILES) {
            const doc = parse(readFileSync(join(MONITORING, 'tests', f), 'utf8')) as {
                tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
            };
            for (const t of doc.tests)
                for (const c of t.alert_rule_test ?? []) {
                    const seen = cases.get(c.alertname) ?? { fires: false, quiet: false };
                    if (c.exp_alerts?.length) seen.fires = true;
                    else seen.quiet = true;
                    cases.set(c.alertname, seen);
                }
        }
        const names = [...new Set(alerts.map((a) => a.alert!))].sort();
        expect(names.map((n) => [n, cases.get(n)])).toEqual(names.map((n) => [n, { fires: true, quiet: true }]));
    });
});

describe('the Azure Monitor alerts', () => {
    const bicep = readFileSync(join(ROOT, 'infra', 'bicep', 'modules', 'alerts.bicep'), 'utf8');

    it('load every rules file as it is, so Azure evaluates the rules promtool tests', () => {
        const loaded = [...bicep.matchAll(/loadYamlContent\('\.\.\/\.\.\/monitoring\/([^']+)'\)/g)].map(([, f]) => f);
        expect(loaded.sort()).toEqual(RULE_FILES);
        // every group of every file goes into ruleGroups
        expect(bicep).toMatch(/var ruleGroups = concat\(sloRules\.groups, meshRules\.groups\)/);
    });

    it('map every severity the rules use and every group interval to ISO 8601', () => {
        const severities = new Set(alerts.map((a) => a.labels!.severity));
        for (const s of severities) expect(bicep).toMatch(new RegExp(`\\n\\s+${s}: \\d\\n`));
        for (const f of RULE_FILES)
            for (const g of (parse(readFileSync(join(MONITORING, f), 'utf8')) as RuleFile).groups)
                expect([g.name, g.interval]).toEqual([g.name, expect.stringMatching(/^\d+m$/)]);
    });

    it('are wired into main.bicep', () => {
        const main = readFileSync(join(ROOT, 'infra', 'bicep', 'main.bicep'), 'utf8');
        expect(main).toMatch(/module alerts 'modules\/alerts\.bicep' = if \(!empty\(alertEmailAddress\)\)/);
    });
});

describe('the Grafana dashboard', () => {
    it('takes its data source as the DS_PROMETHEUS input, on every panel and query', () => {
        expect(dashboard.__inputs).toEqual([
            expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }),
        ]);
        for (const p of dashboard.panels.filter((x) => x.type !== 'row'))
            expect([p.title, p.datasource?.uid]).toEqual([p.title, '${DS_PROMETHEUS}']);
    });

    const promtool = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));
    // promtool is installed by .ci/run; without it this syntax check is left to npm run check:ops.
    (promtool ? it : it.skip)('has queries that are valid PromQL (promtool check rules)', () => {
        const dir = mkdtempSync(join(tmpdir(), 'mesh-dash-'));
        try {
            const file = join(dir, 'dashboard.rules.yml');
            const groups = [
                {
                    name: 'dashboard',
                    rules: dashboardExprs.map((expr, i) => ({ record: `dashboard:query:${i}`, expr })),
                },
            ];
            writeFileSync(file, JSON.stringify({ groups }));
            const out = execFileSync(promtool!, ['check', 'rules', file], { encoding: 'utf8' });
            expect(out).toContain(`SUCCESS: ${dashboardExprs.length} rules found`);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});
