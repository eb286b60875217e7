/**
 * `npm run check:ops`: the infrastructure checks, in order helm, schemas, bicep, dockerfile, promtool, amtool. Each
 * reads the repository at `root` and finds its inputs by convention (infra/helm/*, infra/bicep/**, infra/docker/**,
 * infra/monitoring/**), so new charts, modules, rules and tests are picked up without changing this file.
 */
import { checkBicep } from './bicep';
import { checkDockerfile } from './dockerfile';
import { checkHelm } from './helm';
import { checkAmtool, checkPromtool } from './prometheus';
import { checkSchemas } from './schemas';
import type { CheckOptions, CheckResult } from './types';

export const CHECKS = ['helm', 'schemas', 'bicep', 'dockerfile', 'promtool', 'amtool'] as const;
export type CheckName = (typeof CHECKS)[number];

export async function runChecks(opts: CheckOptions, only?: readonly CheckName[]): Promise<CheckResult[]> {
    const want = (name: CheckName): boolean => only === undefined || only.includes(name);
    const results: CheckResult[] = [];
    if (want('helm') || want('schemas')) {
        const helm = await checkHelm(opts);
        if (want('helm')) results.push(helm.result);
        if (want('schemas')) results.push(checkSchemas(helm.objects, helm.rendered));
    }
    if (want('bicep')) results.push(await checkBicep(opts));
    if (want('dockerfile')) results.push(await checkDockerfile(opts));
    if (want('promtool')) results.push(await checkPromtool(opts));
    if (want('amtool')) results.push(await checkAmtool(opts));
    return results;
}
