/**
 * Check 2 of `npm run check:ops`: every object the chart renders (local/ops/helm.ts) against the Kubernetes and KEDA
 * schemas of kubernetes-models 4.5.1 and @kubernetes-models/keda 0.4.2.
 *
 * The model class is picked by apiVersion/kind (kubernetes-models/<apiVersion>, @kubernetes-models/keda/keda.sh/...),
 * constructed from the object and validate()d: wrong types, missing required fields and bad enums fail there. An
 * apiVersion/kind without a model fails too (a typo in either, or a CRD this check does not know).
 *
 * Unknown keys: the models' validators are ajv code compiled from the OpenAPI schemas, which do not say
 * additionalProperties: false, so a misspelt key (spec.replicass) passes validate(). The strict pass runs that same
 * validate() on a Proxy of the object that records, for every nested object, which property names the validator read
 * and whether it enumerated the keys. A key in an object is unknown when the validator read properties of that object
 * (so its schema declares properties) but never this key, and never enumerated the keys (maps such as labels are
 * enumerated, free-form objects are not read at all).
 */
import { createRequire } from 'node:module';

import type { RenderedObject } from './helm';
import { type CheckResult, type Finding, result } from './types';

const load = createRequire(__filename);

interface ModelClass {
    new (data: unknown): { validate(): void };
    apiVersion: string;
    kind: string;
}

/**
 * Fields KEDA added after the CRDs @kubernetes-models/keda 0.4.2 was generated from, each documented by KEDA:
 * podIdentity.identityTenantId and identityAuthorityHost (azure-workload, KEDA >= 2.14,
 * keda.sh/docs/2.14/authentication-providers/azure-ad-workload-identity).
 */
const NEWER_THAN_MODELS: Readonly<Record<string, readonly RegExp[]>> = {
    'keda.sh/v1alpha1/TriggerAuthentication': [/^\/spec\/podIdentity\/(identityTenantId|identityAuthorityHost)$/],
    'keda.sh/v1alpha1/ClusterTriggerAuthentication': [
        /^\/spec\/podIdentity\/(identityTenantId|identityAuthorityHost)$/,
    ],
};

/** Module holding the models of one apiVersion, or undefined when the name cannot be a model path. */
function modelModule(apiVersion: string): string | undefined {
    if (!/^([a-z0-9-]+(\.[a-z0-9-]+)*\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(apiVersion)) return undefined;
    if (apiVersion.startsWith('keda.sh/')) return `@kubernetes-models/keda/${apiVersion}`;
    return `kubernetes-models/${apiVersion}`;
}

export function modelFor(apiVersion: unknown, kind: unknown): ModelClass | undefined {
    if (typeof apiVersion !== 'string' || typeof kind !== 'string' || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) {
        return undefined;
    }
    const mod = modelModule(apiVersion);
    if (mod === undefined) return undefined;
    let exports: Record<string, unknown>;
    try {
        exports = load(mod) as Record<string, unknown>;
    } catch {
        return undefined;
    }
    const cls = exports[kind] as ModelClass | undefined;
    return typeof cls === 'function' && cls.apiVersion === apiVersion && cls.kind === kind ? cls : undefined;
}

interface Seen {
    path: string;
    target: object;
    read: Set<string>;
    enumerated: boolean;
}

/** validate() on a recording Proxy: the schema's own errors, and the keys it never looked at. */
export function validateStrict(model: { validate(): void }): { error?: string; unknown: string[] } {
    const seen = new Map<object, Seen>();
    const proxies = new WeakMap<object, object>();
    const wrap = (value: unknown, path: string): unknown => {
        if (value === null || typeof value !== 'object') return value;
        const existing = proxies.get(value);
        if (existing !== undefined) return existing;
        const rec: Seen = { path, target: value, read: new Set(), enumerated: false };
        seen.set(value, rec);
        const proxy = new Proxy(value, {
            get(target, key, receiver) {
                const v: unknown = Reflect.get(target, key, receiver);
                if (typeof key !== 'string') return v;
                rec.read.add(key);
                return Object.prototype.hasOwnProperty.call(target, key) ? wrap(v, `${path}/${key}`) : v;
            },
            has(target, key) {
                if (typeof key === 'string') rec.read.add(key);
                return Reflect.has(target, key);
            },
            ownKeys(target) {
                rec.enumerated = true;
                return Reflect.ownKeys(target);
            },
        });
        proxies.set(value, proxy);
        return proxy;
    };
    let error: string | undefined;
    try {
        model.validate.call(wrap(model, ''));
    } catch (e: unknown) {
        error = e instanceof Error ? e.message : String(e);
    }
    const unknown: string[] = [];
    for (const rec of seen.values()) {
        if (Array.isArray(rec.target) || rec.enumerated || rec.read.size === 0) continue;
        for (const key of Object.keys(rec.target)) if (!rec.read.has(key)) unknown.push(`${rec.path}/${key}`);
    }
    return { error, unknown };
}

export function checkSchemas(objects: readonly RenderedObject[], rendered: number): CheckResult {
    const findings: Finding[] = [];
    const kinds = new Set<string>();
    if (rendered === 0) findings.push({ message: 'nothing rendered to validate (see the helm check)' });
    for (const { source, valuesFile, obj } of objects) {
        const meta = obj.metadata as { name?: unknown } | undefined;
        const name = typeof meta?.name === 'string' ? meta.name : '?';
        const label = `[${valuesFile}] ${String(obj.apiVersion)} ${String(obj.kind)} ${name}`;
        const cls = modelFor(obj.apiVersion, obj.kind);
        if (cls === undefined) {
            findings.push({
                file: source,
                message: `${label}: unknown apiVersion/kind (no kubernetes-models or @kubernetes-models/keda model)`,
            });
            continue;
        }
        kinds.add(`${cls.apiVersion}/${cls.kind}`);
        const { error, unknown } = validateStrict(new cls(obj));
        if (error !== undefined) findings.push({ file: source, message: `${label}: ${error}` });
        const allowed = NEWER_THAN_MODELS[`${cls.apiVersion}/${cls.kind}`] ?? [];
        for (const path of unknown) {
            if (allowed.some((re) => re.test(path))) continue;
            findings.push({ file: source, message: `${label}: unknown key ${path}` });
        }
    }
    return result(
        'schemas',
        `${objects.length} object(s) of ${kinds.size} kind(s) validated strictly (kubernetes-models 4.5.1, @kubernetes-models/keda 0.4.2)`,
        findings,
    );
}
