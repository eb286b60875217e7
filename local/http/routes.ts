/**
 * Azure Functions route templates: literal segments, `{name}`, optional `{name?}`, catch-all `{*rest}`,
 * and the common constraints (`{id:int}`, `{id:guid}`, `{id:alpha}`, `{id:bool}`, `{id:regex(...)}` is not
 * supported and matches anything). Matching is case-insensitive on literals, like ASP.NET routing.
 */
export interface CompiledRoute {
    template: string;
    match(path: string): Record<string, string> | undefined;
    /** More literal segments first, then fewer parameters: the most specific route wins. */
    specificity: number;
}

const CONSTRAINTS: Record<string, RegExp> = {
    int: /^-?\d+$/,
    long: /^-?\d+$/,
    guid: /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i,
    alpha: /^[a-z]+$/i,
    bool: /^(true|false)$/i,
};

interface Segment {
    literal?: string;
    param?: string;
    optional?: boolean;
    catchAll?: boolean;
    constraint?: RegExp;
}

export function compileRoute(template: string): CompiledRoute {
    const segments: Segment[] = template
        .split('/')
        .filter(Boolean)
        .map((s) => {
            const m = /^\{(\*)?([A-Za-z_][\w]*)(?::([a-z]+)(?:\([^)]*\))?)?(\?)?\}$/.exec(s);
            if (!m) return { literal: s.toLowerCase() };
            return {
                param: m[2],
                catchAll: m[1] === '*',
                optional: m[4] === '?' || m[1] === '*',
                constraint: m[3] ? CONSTRAINTS[m[3]] : undefined,
            };
        });
    const literals = segments.filter((s) => s.literal !== undefined).length;
    return {
        template,
        specificity: literals * 100 - segments.filter((s) => s.catchAll).length * 10 - segments.length,
        match(path: string) {
            const parts = path.split('/').filter(Boolean);
            const params: Record<string, string> = {};
            for (let i = 0; i < segments.length; i++) {
                const seg = segments[i]!;
                const part = parts[i];
                if (seg.catchAll) {
                    if (parts.length > i) params[seg.param!] = parts.slice(i).map(decode).join('/');
                    return params;
                }
                if (part === undefined) {
                    if (seg.optional) continue;
                    return undefined;
                }
                if (seg.literal !== undefined) {
                    if (decode(part).toLowerCase() !== seg.literal) return undefined;
                    continue;
                }
                const value = decode(part);
                if (seg.constraint && !seg.constraint.test(value)) return undefined;
                params[seg.param!] = value;
            }
            return parts.length <= segments.length ? params : undefined;
        },
    };
}

function decode(s: string): string {
    try {
        return decodeURIComponent(s);
    } catch {
        return s;
    }
}
