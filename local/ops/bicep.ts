/**
 * Check 3 of `npm run check:ops`: every infra/bicep/**\/*.bicep file parsed with the tree-sitter Bicep grammar
 * (tree-sitter-bicep's WASM build, run by web-tree-sitter: no native build) and linted with a few rules named after
 * Bicep's own linter. The rules query the syntax tree (declarations, identifiers, calls, string literals), not the text.
 *
 * - syntax: ERROR and MISSING nodes (line:col).
 * - no-unused-params / no-unused-vars: a param or var no expression refers to.
 * - secure-secrets-in-params: a string/object param whose name says secret, password, token or key without @secure().
 * - outputs-should-not-contain-secrets: an output whose value calls list*() (listKeys, listSecrets, ...) or refers to
 *   a @secure() param.
 * - no-hardcoded-env-urls: a string literal holding a cloud-specific host (core.windows.net, ...): use environment().
 * - referenced files: a module's local path, and the literal path of loadTextContent/loadJsonContent/
 *   loadYamlContent/loadFileAsBase64, must exist.
 *
 * Not covered (the real `bicep build` does these): types, resource API versions and properties, scopes, functions'
 * signatures, expressions that only fail at deployment.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import fg from 'fast-glob';
import { Language, type Node, Parser } from 'web-tree-sitter';

import { type CheckOptions, type CheckResult, type Finding, rel, result } from './types';

let parserPromise: Promise<Parser> | undefined;

function bicepParser(): Promise<Parser> {
    parserPromise ??= (async () => {
        await Parser.init();
        const wasm = join(dirname(require.resolve('tree-sitter-bicep/package.json')), 'tree-sitter-bicep.wasm');
        const parser = new Parser();
        // Bytes, not a path: given a path, web-tree-sitter reads it through a dynamic import() of fs/promises, which
        // jest's CommonJS runtime refuses.
        parser.setLanguage(await Language.load(readFileSync(wasm)));
        return parser;
    })();
    return parserPromise;
}

/** Bicep's no-hardcoded-env-urls default disallowed hosts (its bicepconfig.json defaults). */
const ENV_HOSTS = [
    'management.core.windows.net',
    'gallery.azure.com',
    'management.azure.com',
    'database.windows.net',
    'core.windows.net',
    'login.microsoftonline.com',
    'graph.windows.net',
    'trafficmanager.net',
    'datalake.azure.net',
    'azuredatalakestore.net',
    'azuredatalakeanalytics.net',
    'vault.azure.net',
    'api.loganalytics.io',
    'asazure.windows.net',
    'region.asazure.windows.net',
    'batch.core.windows.net',
];
/** Hosts Bicep's rule excludes (schema URLs are the same in every cloud). */
const ENV_HOSTS_ALLOWED = ['schema.management.azure.com', 'schema.azure.com'];

const SECRET_NAME =
    /(password|passwd|pwd|secret|token|accountkey|acctkey|apikey|accesskey|sharedkey|privatekey|keys?$)/i;
/** Names that only point at a secret (its name, URI, version, ...) and hold nothing secret themselves. */
const SECRET_NAME_ALLOWED = /(name|names|uri|url|id|ids|version|length|count|type|enabled|days|expiry|expiration)$/i;

const DECLARATIONS = new Set([
    'parameter_declaration',
    'variable_declaration',
    'resource_declaration',
    'module_declaration',
    'output_declaration',
]);

interface Declared {
    name: string;
    node: Node;
    kind: string;
    secure: boolean;
    type?: string;
}

function nodesOfType(node: Node, type: string): Node[] {
    return node.descendantsOfType(type).filter((n): n is Node => n !== null);
}

function pos(node: Node): { line: number; col: number } {
    return { line: node.startPosition.row + 1, col: node.startPosition.column + 1 };
}

/** The @decorators node right before a declaration (tree-sitter-bicep makes it the previous sibling). */
function decoratorNames(decl: Node): string[] {
    const prev = decl.previousNamedSibling;
    if (prev === null || prev.type !== 'decorators') return [];
    return nodesOfType(prev, 'decorator').map((d) => {
        const call = d.namedChildren[0];
        const fn = call?.type === 'call_expression' ? call.childForFieldName('function') : call;
        return (fn?.type === 'member_expression' ? fn.childForFieldName('property') : fn)?.text ?? '';
    });
}

/** Identifier nodes that refer to something (not the name being declared, not an object key, not a callee). */
function references(root: Node): Node[] {
    return nodesOfType(root, 'identifier').filter((id) => {
        const parent = id.parent;
        if (parent === null) return false;
        if (DECLARATIONS.has(parent.type) && parent.namedChildren[0]?.id === id.id) return false;
        if (parent.type === 'object_property' && parent.namedChildren[0]?.id === id.id) return false;
        if (parent.type === 'call_expression' && parent.childForFieldName('function')?.id === id.id) return false;
        return true;
    });
}

function stringText(node: Node): string {
    return node.namedChildren
        .filter((c) => c?.type === 'string_content')
        .map((c) => c?.text ?? '')
        .join('');
}

export async function lintBicep(file: string, source: string, root: string): Promise<Finding[]> {
    const parser = await bicepParser();
    const tree = parser.parse(source);
    if (tree === null) return [{ file: rel(root, file), message: 'could not parse' }];
    const findings: Finding[] = [];
    const at = (node: Node, message: string): void => {
        findings.push({ file: rel(root, file), ...pos(node), message });
    };
    try {
        const top = tree.rootNode;
        // syntax
        const walk = (node: Node): void => {
            if (node.isMissing) at(node, `syntax: missing ${node.type}`);
            else if (node.isError) at(node, `syntax: unexpected ${JSON.stringify(node.text.slice(0, 40))}`);
            if (node.hasError || node.isMissing) for (const c of node.children) if (c !== null) walk(c);
        };
        if (top.hasError) {
            walk(top);
            return findings;
        }

        const declared: Declared[] = [];
        for (const decl of top.namedChildren) {
            if (decl === null || !DECLARATIONS.has(decl.type)) continue;
            const nameNode = decl.namedChildren[0];
            if (nameNode === null || nameNode === undefined) continue;
            const typeNode = decl.namedChildren.find((c) => c?.type === 'type');
            declared.push({
                name: nameNode.text,
                node: decl,
                kind: decl.type,
                secure: decoratorNames(decl).includes('secure'),
                type: typeNode?.text,
            });
        }
        const used = new Set(references(top).map((id) => id.text));

        for (const d of declared) {
            if (d.kind === 'parameter_declaration' && !used.has(d.name)) {
                at(d.node, `no-unused-params: parameter "${d.name}" is declared but never used`);
            }
            if (d.kind === 'variable_declaration' && !used.has(d.name)) {
                at(d.node, `no-unused-vars: variable "${d.name}" is declared but never used`);
            }
            if (
                d.kind === 'parameter_declaration' &&
                !d.secure &&
                (d.type === 'string' || d.type === 'object') &&
                SECRET_NAME.test(d.name) &&
                !SECRET_NAME_ALLOWED.test(d.name)
            ) {
                at(d.node, `secure-secrets-in-params: parameter "${d.name}" looks like a secret: mark it @secure()`);
            }
        }

        const secureParams = new Set(
            declared.filter((d) => d.kind === 'parameter_declaration' && d.secure).map((d) => d.name),
        );
        for (const d of declared.filter((x) => x.kind === 'output_declaration')) {
            for (const call of nodesOfType(d.node, 'call_expression')) {
                const fn = call.childForFieldName('function');
                const name = (fn?.type === 'member_expression' ? fn.childForFieldName('property') : fn)?.text ?? '';
                if (/^list/i.test(name)) {
                    at(call, `outputs-should-not-contain-secrets: output "${d.name}" calls ${name}()`);
                }
            }
            for (const id of references(d.node)) {
                if (secureParams.has(id.text)) {
                    at(
                        id,
                        `outputs-should-not-contain-secrets: output "${d.name}" returns @secure() param "${id.text}"`,
                    );
                }
            }
        }

        for (const str of nodesOfType(top, 'string')) {
            const text = stringText(str).toLowerCase();
            if (ENV_HOSTS_ALLOWED.some((a) => text.includes(a))) continue;
            const host = ENV_HOSTS.find((h) => new RegExp(`(^|[./@])${h.replace(/\./g, '\\.')}($|[/:?#])`).test(text));
            if (host !== undefined) {
                at(str, `no-hardcoded-env-urls: "${host}" differs between clouds: use environment()`);
            }
        }

        // loadTextContent('x'), loadJsonContent, ...: a literal path must exist (bicep build fails otherwise).
        for (const call of nodesOfType(top, 'call_expression')) {
            const fn = call.childForFieldName('function')?.text ?? '';
            if (!/^(sys\.)?load(TextContent|JsonContent|YamlContent|FileAsBase64)$/.test(fn)) continue;
            const first = call.childForFieldName('arguments')?.namedChildren[0];
            if (first?.type !== 'string' || first.namedChildren.some((c) => c?.type !== 'string_content')) continue;
            if (!existsSync(resolve(dirname(file), stringText(first)))) {
                at(first, `${fn}: file ${stringText(first)} does not exist`);
            }
        }

        for (const d of declared.filter((x) => x.kind === 'module_declaration')) {
            const pathNode = d.node.namedChildren.find((c) => c?.type === 'string');
            const path = pathNode === null || pathNode === undefined ? '' : stringText(pathNode);
            if (/^(br|ts)[:/]/.test(path) || path === '') continue;
            const target = resolve(dirname(file), path);
            try {
                readFileSync(target);
            } catch {
                at(pathNode ?? d.node, `module "${d.name}": file ${path} does not exist`);
            }
        }
        return findings;
    } finally {
        tree.delete();
    }
}

export async function checkBicep(opts: CheckOptions): Promise<CheckResult> {
    const files = (await fg('infra/bicep/**/*.bicep', { cwd: opts.root })).sort();
    if (files.length === 0) return result('bicep', 'no Bicep files', [{ message: 'no infra/bicep/**/*.bicep found' }]);
    const findings: Finding[] = [];
    for (const f of files) {
        const abs = join(opts.root, f);
        findings.push(...(await lintBicep(abs, readFileSync(abs, 'utf8'), opts.root)));
    }
    return result('bicep', `${files.length} file(s) parsed (tree-sitter-bicep 1.1.0) and linted`, findings);
}
