/**
 * Check 4 of `npm run check:ops`: each infra/docker/**\/Dockerfile*.
 *
 * - dockerfile-utils validate(): its error diagnostics fail (warnings are printed as findings too, but only errors
 *   fail: they would fail the build).
 * - every COPY/ADD source taken from the build context (no --from, not a URL) exists in the repository: some file
 *   tracked by git (git ls-files) is that path or under it, and the Dockerfile's own .dockerignore
 *   (<Dockerfile>.dockerignore, else .dockerignore at the root) does not exclude it. An untracked folder would be
 *   missing on a fresh clone and in CI.
 * - the final stage has a USER that is not root (0 / root).
 * - each base image is pinned: a tag or digest, never latest (ARG defaults before the first FROM are substituted).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import type * as DockerfileAst from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import fg from 'fast-glob';

import { type CheckOptions, type CheckResult, type Finding, result, run } from './types';

// The parser dockerfile-utils itself is built on, resolved from dockerfile-utils so both use the same copy.
const ast = createRequire(require.resolve('dockerfile-utils'))('dockerfile-ast') as typeof DockerfileAst;

/** validate() returns LSP diagnostics: DiagnosticSeverity.Error is 1 (ValidationSeverity is for its settings). */
const LSP_ERROR = 1;

/** A .dockerignore pattern as Docker reads it: relative to the context root, `**` any depth, `!` re-includes. */
interface IgnoreRule {
    negate: boolean;
    re: RegExp;
}

function globToRegExp(glob: string): RegExp {
    let re = '';
    for (let i = 0; i < glob.length; i++) {
        const c = glob[i] as string;
        if (c === '*' && glob[i + 1] === '*') {
            re += '.*';
            i++;
            if (glob[i + 1] === '/') i++;
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return new RegExp(`^${re}$`);
}

export function parseDockerignore(text: string): IgnoreRule[] {
    return text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => {
            const negate = l.startsWith('!');
            const pattern = (negate ? l.slice(1) : l).trim().replace(/^\/+/, '').replace(/\/+$/, '');
            return { negate, re: globToRegExp(pattern) };
        });
}

/** Excluded when the path or one of its parent folders matches the last rule that matches it. */
export function ignored(rules: readonly IgnoreRule[], path: string): boolean {
    const parts = path.split('/');
    let out = false;
    for (const rule of rules) {
        for (let n = 1; n <= parts.length; n++) {
            if (rule.re.test(parts.slice(0, n).join('/'))) {
                out = !rule.negate;
                break;
            }
        }
    }
    return out;
}

function substitute(text: string, vars: ReadonlyMap<string, string>): string {
    return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, a?: string, b?: string) => {
        const v = vars.get((a ?? b) as string);
        return v ?? m;
    });
}

export function lintDockerfile(
    fileRel: string,
    content: string,
    tracked: readonly string[],
    rules: readonly IgnoreRule[],
): Finding[] {
    const findings: Finding[] = [];
    const at = (line: number, message: string): void => {
        findings.push({ file: fileRel, line: line + 1, message });
    };
    for (const d of validate(content)) {
        if (d.severity === LSP_ERROR) {
            const message = typeof d.message === 'string' ? d.message : d.message.value;
            at(d.range.start.line, `dockerfile-utils: ${message}`);
        }
    }

    const df = ast.DockerfileParser.parse(content);
    const args = new Map<string, string>();
    for (const arg of df.getInitialARGs()) {
        const prop = arg.getProperty();
        const value = prop?.getValue();
        if (prop !== null && prop !== undefined && value !== null && value !== undefined) {
            args.set(prop.getName(), value);
        }
    }
    const froms = df.getFROMs();
    const stages = new Set(froms.map((f) => f.getBuildStage()?.toLowerCase()).filter((s) => s !== undefined));
    if (froms.length === 0) at(0, 'no FROM');
    for (const from of froms) {
        const line = from.getRange().start.line;
        const image = substitute(from.getArguments()[0]?.getValue() ?? '', args);
        if (stages.has(image.toLowerCase()) || image === 'scratch') continue;
        if (image.includes('$')) {
            at(line, `base image ${image}: unresolved variable (give the ARG a pinned default)`);
            continue;
        }
        const [name, digest] = image.split('@');
        const lastSlash = (name as string).lastIndexOf('/');
        const colon = (name as string).indexOf(':', lastSlash + 1);
        const tag = colon < 0 ? undefined : (name as string).slice(colon + 1);
        if (digest === undefined && (tag === undefined || tag === 'latest')) {
            at(
                line,
                `base image ${image} is not pinned (${tag === undefined ? 'no tag' : 'latest'}): give a tag or digest`,
            );
        }
    }

    for (const ins of df.getInstructions()) {
        const keyword = ins.getKeyword();
        if (keyword !== 'COPY' && keyword !== 'ADD') continue;
        const copy = ins as DockerfileAst.Copy;
        const flags = copy.getFlags().map((f) => f.getName());
        if (flags.includes('from')) continue;
        const json = copy.getJSONStrings();
        const values =
            json.length > 0 ? json.map((s) => s.getJSONValue()) : copy.getArguments().map((a) => a.getValue());
        const sources = values.slice(0, -1);
        for (const src of sources) {
            if (src.startsWith('<<') || /^[a-z]+:\/\//i.test(src) || src.startsWith('git@') || src.includes('$'))
                continue;
            const path = src.replace(/^\.\//, '').replace(/\/+$/, '');
            const line = ins.getRange().start.line;
            if (path === '' || path === '.') continue;
            const re = /[*?[]/.test(path) ? globToRegExp(path) : undefined;
            const inContext = tracked.filter(
                (f) => (re === undefined ? f === path || f.startsWith(`${path}/`) : re.test(f)) && !ignored(rules, f),
            );
            if (inContext.length > 0) continue;
            const anyTracked = tracked.some((f) =>
                re === undefined ? f === path || f.startsWith(`${path}/`) : re.test(f),
            );
            at(
                line,
                anyTracked
                    ? `${keyword} ${src}: excluded from the build context by the .dockerignore`
                    : `${keyword} ${src}: not in the repository (no file tracked by git at or under ${path})`,
            );
        }
    }

    const last = froms[froms.length - 1];
    if (last !== undefined) {
        const lastLine = last.getRange().start.line;
        const users = df
            .getInstructions()
            .filter((i) => i.getKeyword() === 'USER' && i.getRange().start.line > lastLine);
        const user = users[users.length - 1]?.getArguments()[0]?.getValue();
        if (user === undefined) at(lastLine, 'final stage has no USER: it runs as root');
        else if (/^(root|0)(:.*)?$/.test(user))
            at(users[users.length - 1]!.getRange().start.line, `final stage runs as root (USER ${user})`);
    }
    return findings;
}

export async function checkDockerfile(opts: CheckOptions): Promise<CheckResult> {
    const { root } = opts;
    const files = (await fg('infra/docker/**/Dockerfile*', { cwd: root }))
        .filter((f) => !f.endsWith('.dockerignore'))
        .sort();
    if (files.length === 0)
        return result('dockerfile', 'no Dockerfile', [{ message: 'no infra/docker/**/Dockerfile*' }]);
    const git = await run('git', ['ls-files', '-z'], root);
    if (git.code !== 0) {
        return result('dockerfile', 'git ls-files failed', [
            { message: `git ls-files failed in ${root}: ${git.spawnError ?? git.stderr.trim()}` },
        ]);
    }
    const tracked = git.stdout.split('\0').filter((f) => f !== '');
    const findings: Finding[] = [];
    for (const f of files) {
        const own = join(root, `${f}.dockerignore`);
        const shared = join(root, '.dockerignore');
        const ignoreFile = existsSync(own) ? own : existsSync(shared) ? shared : undefined;
        const rules = ignoreFile === undefined ? [] : parseDockerignore(readFileSync(ignoreFile, 'utf8'));
        findings.push(...lintDockerfile(f, readFileSync(join(root, f), 'utf8'), tracked, rules));
    }
    return result(
        'dockerfile',
        `${files.length} Dockerfile(s): dockerfile-utils, build context, USER, pinned bases`,
        findings,
    );
}
