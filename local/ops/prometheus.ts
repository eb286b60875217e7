/**
 * Check 5 of `npm run check:ops`: infra/monitoring with the Prometheus tools (Debian packages prometheus and
 * prometheus-alertmanager; .ci/run installs them).
 *
 * promtool: `promtool check rules` on every infra/monitoring/**\/*.rules.yml (syntax, PromQL, templates), then
 * `promtool test rules` on every YAML file there with a top-level rule_files (the unit tests: alerts expected to fire
 * or not, given input series). amtool: `amtool check-config infra/monitoring/alertmanager.yml`.
 * A missing folder, file or tool FAILS: a check that silently skips would pass on a machine that checked nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import fg from 'fast-glob';
import { parse } from 'yaml';

import { type CheckOptions, type CheckResult, type Finding, rel, result, run, type RunResult } from './types';

const MONITORING = 'infra/monitoring';

/**
 * Tool output as findings: "file: line:col: msg" lines keep their position; everything else that is not progress
 * noise ("Checking x", "SUCCESS", "Unit Testing: x") is joined into one finding (promtool prints a failed unit test
 * as a multi-line dump of expected and actual alerts).
 */
function toolFindings(root: string, cwd: string, r: RunResult, what: string): Finding[] {
    const out: Finding[] = [];
    const rest: string[] = [];
    for (const raw of `${r.stdout}\n${r.stderr}`.split('\n')) {
        const line = raw.trim();
        if (line === '' || line === 'FAILED:' || /^(SUCCESS|Unit Testing: )/.test(line)) continue;
        if (line.startsWith('Checking ') && !line.includes('FAILED')) continue;
        const m = /^([^\s:]+\.ya?ml):\s*(\d+):(\d+): (.*)$/.exec(line);
        if (m !== null) {
            const file = rel(root, join(cwd, m[1] as string));
            out.push({ file, line: Number(m[2]), col: Number(m[3]), message: m[4] as string });
        } else rest.push(line);
    }
    if (rest.length > 0) out.push({ message: `${what}: ${rest.join(' ').replace(/\s+/g, ' ').slice(0, 600)}` });
    return out.length > 0 ? out : [{ message: `${what} exited with ${String(r.code)}` }];
}

function missingTool(tool: string, pkg: string, r: RunResult): Finding[] {
    return [{ message: `${tool} could not run (${r.spawnError ?? ''}): install the Debian package ${pkg}` }];
}

export async function checkPromtool(opts: CheckOptions): Promise<CheckResult> {
    const { root } = opts;
    const promtool = opts.promtool ?? 'promtool';
    if (!existsSync(join(root, MONITORING))) {
        return result('promtool', 'nothing checked', [{ message: `${MONITORING}/ is missing` }]);
    }
    const version = await run(promtool, ['--version'], root);
    if (version.spawnError !== undefined)
        return result('promtool', 'not run', missingTool('promtool', 'prometheus', version));

    const ruleFiles = (await fg(`${MONITORING}/**/*.rules.{yml,yaml}`, { cwd: root })).sort();
    const yamlFiles = (await fg(`${MONITORING}/**/*.{yml,yaml}`, { cwd: root })).sort();
    const testFiles = yamlFiles.filter((f) => {
        try {
            const doc: unknown = parse(readFileSync(join(root, f), 'utf8'));
            return doc !== null && typeof doc === 'object' && 'rule_files' in doc;
        } catch {
            return false;
        }
    });
    const findings: Finding[] = [];
    if (ruleFiles.length === 0) findings.push({ message: `no ${MONITORING}/**/*.rules.yml` });
    if (testFiles.length === 0)
        findings.push({ message: `no promtool test file (YAML with rule_files) in ${MONITORING}/` });
    if (ruleFiles.length > 0) {
        const r = await run(promtool, ['check', 'rules', ...ruleFiles], root);
        if (r.code !== 0) findings.push(...toolFindings(root, root, r, 'promtool check rules'));
    }
    for (const t of testFiles) {
        // rule_files in a test are relative to the test file.
        const cwd = join(root, dirname(t));
        const r = await run(promtool, ['test', 'rules', t.slice(dirname(t).length + 1)], cwd);
        if (r.code !== 0) {
            findings.push(
                ...toolFindings(root, cwd, r, `promtool test rules ${t}`).map((f) => ({ file: f.file ?? t, ...f })),
            );
        }
    }
    return result(
        'promtool',
        `${ruleFiles.length} rule file(s) checked, ${testFiles.length} test file(s) run (${version.stdout.split('\n')[0]?.trim() ?? ''})`,
        findings,
    );
}

export async function checkAmtool(opts: CheckOptions): Promise<CheckResult> {
    const { root } = opts;
    const amtool = opts.amtool ?? 'amtool';
    const file = `${MONITORING}/alertmanager.yml`;
    if (!existsSync(join(root, file))) return result('amtool', 'nothing checked', [{ message: `${file} is missing` }]);
    const r = await run(amtool, ['check-config', file], root);
    if (r.spawnError !== undefined)
        return result('amtool', 'not run', missingTool('amtool', 'prometheus-alertmanager', r));
    const findings =
        r.code === 0 ? [] : toolFindings(root, root, r, 'amtool check-config').map((f) => ({ file, ...f }));
    return result('amtool', `${file} checked`, findings);
}
