/**
 * The HTML pages of the signed approval links (SPEC: `/approvals/{token}` answers, errors included, are HTML pages
 * showing the error code, not the envelope). Every interpolated value goes through `escapeHtml`; the pages load
 * nothing, run no script, and may post their form only back to this host.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';

import type { DecisionOutcome } from '../../domain/decide';
import { DomainError, type ErrorCode, PayloadTooLargeError, ValidationError } from '../../domain/errors';
import type { LinkClaims, LinkReview } from '../../domain/links';
import type { Decision } from '../../domain/quorum';
import { readJson, requireUtf8 } from './envelope';
import { readCapped } from './streams';
import { validate } from './validation';

/** The security headers of every link page. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
});

/** A comment is at most 2000 characters (the schema); a form body of 16 KiB holds that in any encoding. */
const MAX_FORM_BYTES = 16 * 1024;
/** The stage output shown on the confirm page is cut after this many characters. */
const MAX_OUTPUT_CHARS = 4000;

const DECISION_LABELS: Readonly<Record<Decision, string>> = {
    approve: 'Approve',
    reject: 'Reject',
    request_info: 'Request more information',
};

const ERROR_TITLES: Partial<Record<ErrorCode, string>> = {
    LINK_INVALID: 'This link is not valid',
    LINK_EXPIRED: 'This link has expired',
    LINK_USED: 'This link has already been used',
    FORBIDDEN: 'You may not decide this checkpoint',
    CONFLICT: 'This checkpoint is not open for decisions',
    NOT_FOUND: 'Not found',
    VALIDATION_FAILED: 'The form could not be accepted',
    PAYLOAD_TOO_LARGE: 'The form is too large',
    UNAVAILABLE: 'Please try again shortly',
};

/** Text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(value: unknown): string {
    return String(value).replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * GET: what the link would decide, and a form that posts it (with an optional comment) to the same URL: the form
 * has no `action`, so it posts to the page's own address whatever proxy or route prefix stands in front.
 */
export function confirmPage(review: LinkReview, correlationID: string): HttpResponseInit {
    const { claims, run, checkpoint, latest } = review;
    const label = DECISION_LABELS[claims.d];
    const body = `
<h1>${escapeHtml(label)}: ${escapeHtml(run.metadata.title ?? run.id)}</h1>
<p>You are asked to decide a checkpoint of this run. Nothing is recorded until you press the button.</p>
${facts([
    ['Run', run.metadata.title ?? run.id],
    ['Run id', run.id],
    ['Checkpoint', `${checkpoint.position} ${checkpoint.stage} (iteration ${checkpoint.iteration})`],
    ['Requested by', run.createdByName ?? run.createdBy],
    ['Team', run.metadata.team],
    ['Risk level', run.metadata.riskLevel],
    ['Decision', label],
    ['Deciding as', claims.name ?? claims.sub],
    ['Approvals', `${countApprovals(review)} of ${checkpoint.approvals} needed`],
    ['Deadline', checkpoint.deadline ? time(checkpoint.deadline) : 'none'],
    ['Link expires', time(new Date(claims.exp * 1000).toISOString())],
])}
${latest ? `<h2>Latest output (${escapeHtml(latest.stage)}, iteration ${escapeHtml(latest.iteration)})</h2>\n<pre>${escapeHtml(summary(latest.output))}</pre>` : '<p>No stage output is available yet.</p>'}
<form method="post">
<label for="comment">Comment (optional)</label>
<textarea id="comment" name="comment" rows="4" maxlength="2000"></textarea>
<button type="submit">${escapeHtml(label)}</button>
</form>`;
    return page(200, `${label}: ${run.metadata.title ?? run.id}`, body, correlationID);
}

/** POST succeeded: the decision is recorded and on its way to the run. */
export function decidedPage(outcome: DecisionOutcome, claims: LinkClaims, correlationID: string): HttpResponseInit {
    const { run, checkpoint, event } = outcome;
    const body = `
<h1>Decision recorded</h1>
<p role="status">Your decision <strong>${escapeHtml(DECISION_LABELS[event.decision])}</strong> on the checkpoint
${escapeHtml(`${checkpoint.position} ${checkpoint.stage}`)} of ${escapeHtml(run.metadata.title ?? run.id)} is recorded.</p>
${facts([
    ['Run id', run.id],
    ['Checkpoint id', checkpoint.checkpointId],
    ['Decided by', claims.name ?? claims.sub],
    ...(event.comment ? [['Comment', event.comment] as const] : []),
])}
<p>You can close this page.</p>`;
    return page(200, 'Decision recorded', body, correlationID);
}

/** Any failure as a page: a domain error shows its code and message; anything else is logged and shown as INTERNAL. */
export function errorPage(e: unknown, ctx: InvocationContext, correlationID: string): HttpResponseInit {
    if (!(e instanceof DomainError)) {
        ctx.error(`[${correlationID}] approval link failed`, e);
        return errorBody(500, 'INTERNAL', 'Something went wrong', 'An internal error occurred.', [], correlationID);
    }
    if (e.status >= 500) ctx.warn(`[${correlationID}] ${e.code}: ${e.message}`, e.details ?? {});
    const fields = e instanceof ValidationError ? e.errors.map((f) => `${f.path}: ${f.message}`) : [];
    return errorBody(
        e.status,
        e.code,
        ERROR_TITLES[e.code] ?? 'Something went wrong',
        e.message,
        fields,
        correlationID,
    );
}

/**
 * The optional comment of a POST: the confirm page's form (`application/x-www-form-urlencoded`), JSON, or no body
 * at all. Validated against approval-link-request (at most 2000 characters); blank means none.
 */
export async function readLinkComment(req: HttpRequest): Promise<string | undefined> {
    const type = (req.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    let body: unknown;
    if (type === 'application/json') {
        body = await readJson(req, MAX_FORM_BYTES);
    } else {
        requireUtf8(req);
        if (Number(req.headers.get('content-length') ?? NaN) > MAX_FORM_BYTES)
            throw new PayloadTooLargeError(MAX_FORM_BYTES);
        const bytes = await readCapped(
            req.body as ReadableStream<Uint8Array> | null,
            MAX_FORM_BYTES,
            () => new PayloadTooLargeError(MAX_FORM_BYTES),
        );
        if (type !== 'application/x-www-form-urlencoded' && bytes.length > 0)
            throw new ValidationError('content-type must be application/x-www-form-urlencoded or application/json');
        const comment = new URLSearchParams(bytes.toString('utf8')).get('comment');
        body = comment === null ? {} : { comment };
    }
    const { comment } = validate<{ comment?: string }>('approval-link-request', body);
    return comment?.trim() || undefined;
}

function errorBody(
    status: number,
    code: string,
    title: string,
    message: string,
    fields: string[],
    correlationID: string,
): HttpResponseInit {
    const body = `
<h1>${escapeHtml(title)}</h1>
<p role="alert">${escapeHtml(message)}</p>
${fields.length ? `<ul>${fields.map((f) => `<li>${escapeHtml(f)}</li>`).join('')}</ul>` : ''}
<p>Error code: <code id="error-code">${escapeHtml(code)}</code> (HTTP ${escapeHtml(status)})</p>`;
    return page(status, title, body, correlationID);
}

function page(status: number, title: string, main: string, correlationID: string): HttpResponseInit {
    const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)} · Mesh Orchestrator</title>
<style>
body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0}
pre{background:#f3f3f3;padding:.75rem;overflow:auto;white-space:pre-wrap}
label{display:block;font-weight:600;margin-top:1rem}textarea{width:100%;box-sizing:border-box;font:inherit}
button{margin-top:.75rem;padding:.5rem 1.25rem;font:inherit;font-weight:600}
button:focus,textarea:focus{outline:3px solid #005fcc;outline-offset:2px}
footer{margin-top:2rem;color:#555;font-size:.875rem}
</style>
</head>
<body>
<main>${main}
</main>
<footer>Mesh Orchestrator · correlation id <code>${escapeHtml(correlationID)}</code></footer>
</body>
</html>
`;
    return { status, body: html, headers: { ...PAGE_HEADERS, 'x-correlation-id': correlationID } };
}

/** Markup built here from escaped parts; every plain string is escaped. */
interface Html {
    html: string;
}

function facts(rows: readonly (readonly [string, string | Html])[]): string {
    const row = ([k, v]: readonly [string, string | Html]) =>
        `<dt>${escapeHtml(k)}</dt><dd>${typeof v === 'string' ? escapeHtml(v) : v.html}</dd>`;
    return `<dl>\n${rows.map(row).join('\n')}\n</dl>`;
}

/** An ISO time as a `<time>` element. */
function time(iso: string): Html {
    const shown = iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
    return { html: `<time datetime="${escapeHtml(iso)}">${escapeHtml(shown)}</time>` };
}

function countApprovals(review: LinkReview): number {
    return new Set(review.checkpoint.decisions.filter((d) => d.decision === 'approve').map((d) => d.actorId)).size;
}

/** A stage output as readable text: strings as they are, anything else as indented JSON; cut when long. */
function summary(output: unknown): string {
    const text = typeof output === 'string' ? output : (JSON.stringify(output, null, 2) ?? String(output));
    return text.length > MAX_OUTPUT_CHARS ? `${text.slice(0, MAX_OUTPUT_CHARS)}\n… (${text.length} characters)` : text;
}
