/**
 * Store decorators that seal sensitive fields before any store adapter sees them (adapters/crypto/fieldCipher.ts):
 *
 * - runs: `input`, `output`, every decision's `comment` (`checkpoints[].decisions[].comment`), the comments of info
 *   requests and their answers (`checkpoints[].infoRequest.comment`, `checkpoints[].infoAnswers[].comment`), the pause reason
 *   (`pause.reason`) and stage outputs (`putOutput`), opened again on every read, so callers only ever see plaintext;
 * - audit: `details.comment` (when a string) and the `reason` of a decision or rejection (the approver's comment) and
 *   of a pause, resume or abort (the operator's words),
 *   sealed before `append`, so the store's hash chain covers the sealed form and verifying a chain needs no key. Records are read back as stored; `openAuditDetails` opens them for display.
 *
 * Each value is bound to its run and field (and a comment to its checkpoint, decision or audit record). Plaintext
 * written before encryption was enabled still reads as it is, and is sealed the next time its run is written.
 */
import { type AuditRecord, maskPiiText, type NewAuditEvent } from '../../domain/audit';
import type { AuditLog, Page, RunStore } from '../../domain/ports';
import type { CheckpointDecisionRecord, CheckpointState, InfoAnswer, InfoRequest, RunDoc } from '../../domain/run';
import { FieldCipher, FieldCipherError, isSealed, type SealContext, type SealedValue } from './fieldCipher';
import type { CipherLoader } from './keyRing';

/** A cipher, or a loader the decorators call once per operation (`cachedCipher` in keyRing.ts caches it). */
export type CipherSource = FieldCipher | CipherLoader;

export function encryptedRunStore(runs: RunStore, cipher: CipherSource): RunStore {
    return {
        async create(run) {
            const fields = new Fields(await cipherOf(cipher));
            const result = await runs.create(sealRun(fields, run));
            return { run: await opened(cipher, fields, (f) => openRun(f, result.run)), created: result.created };
        },

        async get(id) {
            const run = await runs.get(id);
            return run && opened(cipher, new Fields(await cipherOf(cipher)), (f) => openRun(f, run));
        },

        async update(id, mutate) {
            const fields = new Fields(await cipherOf(cipher));
            // `mutate` sees plaintext; an unchanged field keeps its sealed value (the session remembers both forms).
            const write = (f: Fields) =>
                runs.update(id, (stored) => {
                    const next = mutate(openRun(f, stored));
                    return next === undefined ? undefined : sealRun(f, next);
                });
            let stored: RunDoc;
            try {
                stored = await write(fields);
            } catch (e: unknown) {
                // Nothing was written (mutate threw inside the store's transaction): retry with the ring read again.
                fields.cipher = await refreshedFor(e, cipher, fields.cipher);
                stored = await write(fields);
            }
            return opened(cipher, fields, (f) => openRun(f, stored));
        },

        async list(filter, limit, continuationToken) {
            const page: Page<RunDoc> = await runs.list(filter, limit, continuationToken);
            const fields = new Fields(await cipherOf(cipher));
            return opened(cipher, fields, (f) => ({ ...page, items: page.items.map((r) => openRun(f, r)) }));
        },

        count: (filter) => runs.count(filter),
        stateCounts: () => runs.stateCounts(),

        async changesSince(cursor, limit) {
            const changes = await runs.changesSince(cursor, limit);
            const fields = new Fields(await cipherOf(cipher));
            return opened(cipher, fields, (f) => ({ ...changes, runs: changes.runs.map((r) => openRun(f, r)) }));
        },

        async putOutput(runId, key, output) {
            const fields = new Fields(await cipherOf(cipher));
            await runs.putOutput(runId, key, fields.seal(output ?? null, outputContext(runId, key)));
        },

        async getOutput(runId, key) {
            const stored = await runs.getOutput(runId, key);
            if (stored === undefined) return undefined;
            const fields = new Fields(await cipherOf(cipher));
            return opened(cipher, fields, (f) => f.open(stored, outputContext(runId, key)));
        },

        ping: () => runs.ping(),
    };
}

/**
 * Seals `details.comment` (a string: PII-masked first, as the store would have masked it) before delegating, so the
 * store chains and stores the sealed form. `list`, `latest` and `all` return records as stored: verify them as they
 * are, then `openAuditDetails` for display.
 */
export function encryptedAuditLog(audit: AuditLog, cipher: CipherSource): AuditLog {
    return {
        async append(event) {
            const comment = event.details?.comment;
            const reason = COMMENT_REASONS.has(event.type) ? event.reason : undefined;
            if (typeof comment !== 'string' && reason === undefined) return audit.append(event);
            const c = await cipherOf(cipher);
            let sealed: NewAuditEvent = event;
            if (typeof comment === 'string') {
                const value = sealMaskStable(c, maskPiiText(comment), auditCommentContext(event));
                sealed = { ...sealed, details: { ...event.details, comment: value } };
            }
            if (reason !== undefined && !isSealedText(reason))
                sealed = { ...sealed, reason: sealedText(c.seal(reason, auditReasonContext(event))) };
            return audit.append(sealed);
        },
        list: (runId, limit, continuationToken) => audit.list(runId, limit, continuationToken),
        latest: (runId, limit) => audit.latest(runId, limit),
        all: (runId) => audit.all(runId),
    };
}

/**
 * A display copy of `record` with `details.comment` opened (records without a sealed comment come back as they are).
 * The chain hash covers the STORED, sealed form: verify the records as stored (`verifyChain`) before opening them,
 * and never hash or verify what this returns. Throws `FieldCipherError` if the comment does not open.
 */
export async function openAuditDetails(record: AuditRecord, cipher: CipherSource): Promise<AuditRecord> {
    const comment = record.details?.comment;
    const reason = record.reason;
    const sealedReason = reason !== undefined && isSealedText(reason);
    if (!isSealed(comment) && !sealedReason) return record;
    const fields = new Fields(await cipherOf(cipher));
    return opened(cipher, fields, (f) => ({
        ...record,
        ...(isSealed(comment)
            ? { details: { ...record.details, comment: f.open(comment, auditCommentContext(record)) } }
            : {}),
        ...(sealedReason ? { reason: f.open(sealedOfText(reason), auditReasonContext(record)) as string } : {}),
    }));
}

/**
 * The audit types whose `reason` is what a person typed: an approver's comment (a decision, and the rejection it
 * caused), an operator's pause, resume or abort reason, and a submitter's answer to an info request. Sealed like every other comment. Other reasons (a failure,
 * a timeout) are the system's own words.
 */
const COMMENT_REASONS: ReadonlySet<string> = new Set([
    'checkpoint.decided',
    'pipeline.rejected',
    'pipeline.paused',
    'pipeline.resumed',
    'pipeline.aborted',
    'checkpoint.info_provided',
]);

/** `reason` is a string in the record's type, so its sealed form is text: this prefix and the sealed JSON, base64url. */
const SEALED_TEXT_PREFIX = 'sealed:';

function sealedText(value: SealedValue): string {
    return SEALED_TEXT_PREFIX + Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function isSealedText(text: string): boolean {
    return text.startsWith(SEALED_TEXT_PREFIX) && isSealed(sealedOfTextOrUndefined(text));
}

function sealedOfTextOrUndefined(text: string): unknown {
    try {
        return JSON.parse(Buffer.from(text.slice(SEALED_TEXT_PREFIX.length), 'base64url').toString('utf8')) as unknown;
    } catch {
        return undefined;
    }
}

function sealedOfText(text: string): SealedValue {
    return sealedOfTextOrUndefined(text) as SealedValue;
}

// ---------------------------------------------------------------------------------------------------------------
// Contexts: what each sealed value is bound to (its GCM additional authenticated data).
// ---------------------------------------------------------------------------------------------------------------

function outputContext(runId: string, key: string): SealContext {
    return { runId, field: `outputs[${key}]` };
}

function decisionCommentContext(runId: string, checkpointId: string, d: CheckpointDecisionRecord): SealContext {
    return { runId, field: `checkpoints[${checkpointId}].decisions[${d.actorId}@${d.at}].comment` };
}

function infoRequestCommentContext(runId: string, checkpointId: string, r: InfoRequest): SealContext {
    return { runId, field: `checkpoints[${checkpointId}].infoRequest[${r.by}@${r.at}].comment` };
}

function infoAnswerCommentContext(runId: string, checkpointId: string, a: InfoAnswer): SealContext {
    return { runId, field: `checkpoints[${checkpointId}].infoAnswers[${a.by}@${a.at}].comment` };
}

function auditCommentContext(event: Pick<NewAuditEvent, 'runId' | 'eventId'>): SealContext {
    return { runId: event.runId, field: `audit[${event.eventId}].details.comment` };
}

function pauseReasonContext(runId: string, pauseId: string): SealContext {
    return { runId, field: `pause[${pauseId}].reason` };
}

function auditReasonContext(event: Pick<NewAuditEvent, 'runId' | 'eventId'>): SealContext {
    return { runId: event.runId, field: `audit[${event.eventId}].reason` };
}

// ---------------------------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------------------------

function sealRun(f: Fields, run: RunDoc): RunDoc {
    return mapRun(run, (value, ctx) => f.seal(value, ctx));
}

function openRun(f: Fields, run: RunDoc): RunDoc {
    return mapRun(run, (value, ctx) => f.open(value, ctx));
}

/** A copy of `run` with each sensitive field passed through `map`; parts without one are shared, not copied. */
function mapRun(run: RunDoc, map: (value: unknown, ctx: SealContext) => unknown): RunDoc {
    const next: RunDoc = { ...run };
    if (run.input !== undefined) next.input = map(run.input, { runId: run.id, field: 'input' });
    if (run.output !== undefined) next.output = map(run.output, { runId: run.id, field: 'output' });
    if (run.pause !== undefined)
        // The stored form holds a sealed object where the type says string.
        next.pause = {
            ...run.pause,
            reason: map(run.pause.reason, pauseReasonContext(run.id, run.pause.pauseId)) as string,
        };
    const commented = (c: CheckpointState) =>
        c.decisions.some((d) => d.comment !== undefined) ||
        c.infoRequest?.comment !== undefined ||
        (c.infoAnswers?.length ?? 0) > 0;
    if (run.checkpoints.some(commented)) {
        // The stored form holds a sealed object where the types say string.
        const decision = (c: CheckpointState, d: CheckpointDecisionRecord): CheckpointDecisionRecord =>
            d.comment === undefined
                ? d
                : { ...d, comment: map(d.comment, decisionCommentContext(run.id, c.checkpointId, d)) as string };
        const request = (c: CheckpointState, r: InfoRequest): InfoRequest =>
            r.comment === undefined
                ? r
                : { ...r, comment: map(r.comment, infoRequestCommentContext(run.id, c.checkpointId, r)) as string };
        const answer = (c: CheckpointState, a: InfoAnswer): InfoAnswer => ({
            ...a,
            comment: map(a.comment, infoAnswerCommentContext(run.id, c.checkpointId, a)) as string,
        });
        next.checkpoints = run.checkpoints.map((c) =>
            commented(c)
                ? {
                      ...c,
                      decisions: c.decisions.map((d) => decision(c, d)),
                      ...(c.infoRequest ? { infoRequest: request(c, c.infoRequest) } : {}),
                      ...(c.infoAnswers ? { infoAnswers: c.infoAnswers.map((a) => answer(c, a)) } : {}),
                  }
                : c,
        );
    }
    return next;
}

// ---------------------------------------------------------------------------------------------------------------
// One operation's view of the cipher
// ---------------------------------------------------------------------------------------------------------------

/**
 * Seals and opens for one store operation, remembering both forms of every value it handled: a value `mutate` left
 * unchanged keeps its sealed form (no new ciphertext, no rewrite), and the run a write returns opens without
 * decrypting what this operation just sealed.
 */
class Fields {
    private readonly sealedByPlain = new Map<string, SealedValue>();
    private readonly plainBySealed = new Map<string, unknown>();

    constructor(public cipher: FieldCipher) {}

    /** Plaintext (written before encryption was on) is returned as it is. */
    open(value: unknown, ctx: SealContext): unknown {
        if (!isSealed(value)) return value;
        const id = sealedId(value, ctx);
        if (this.plainBySealed.has(id)) return this.plainBySealed.get(id);
        const json = this.cipher.openJson(value, ctx);
        const plain = JSON.parse(json) as unknown;
        this.plainBySealed.set(id, plain);
        this.sealedByPlain.set(plainId(json, ctx), value);
        return plain;
    }

    /**
     * A value already sealed for this context passes through (sealing is idempotent). Anything else, including data
     * that merely looks sealed (a user's input may), is sealed.
     */
    seal(value: unknown, ctx: SealContext): SealedValue {
        if (isSealed(value) && this.opens(value, ctx)) return value;
        const json = JSON.stringify(value) as string | undefined;
        if (json === undefined) throw new TypeError(`Cannot seal ${ctx.field}: the value has no JSON form.`);
        const known = this.sealedByPlain.get(plainId(json, ctx));
        if (known) return known;
        const sealed = this.cipher.sealJson(json, ctx);
        this.sealedByPlain.set(plainId(json, ctx), sealed);
        this.plainBySealed.set(sealedId(sealed, ctx), value);
        return sealed;
    }

    private opens(value: SealedValue, ctx: SealContext): boolean {
        try {
            this.open(value, ctx);
            return true;
        } catch (e: unknown) {
            if (e instanceof FieldCipherError) return false;
            throw e;
        }
    }
}

function plainId(json: string, ctx: SealContext): string {
    return `${ctx.runId}\u0000${ctx.field}\u0000${json}`;
}

/** GCM tags are unique per seal (fresh key and IV), so context, kid and tag name one sealed value. */
function sealedId(sealed: SealedValue, ctx: SealContext): string {
    return `${ctx.runId}\u0000${ctx.field}\u0000${sealed.kid}\u0000${sealed.tag}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Cipher loading, and one retry when a value names a kid this instance's ring lacks (another rotated first)
// ---------------------------------------------------------------------------------------------------------------

function cipherOf(source: CipherSource): Promise<FieldCipher> {
    return typeof source === 'function' ? source() : Promise.resolve(source);
}

/** A re-read cipher when `e` is an unknown kid and the ring could be read again; else rethrows `e`. */
async function refreshedFor(e: unknown, source: CipherSource, used: FieldCipher): Promise<FieldCipher> {
    if (!(e instanceof FieldCipherError && e.code === 'UNKNOWN_KID') || typeof source !== 'function') throw e;
    const fresh = await source({ refresh: true });
    if (fresh === used) throw e;
    return fresh;
}

/** Runs the (synchronous) opening with the operation's cipher, and once more after a refresh for an unknown kid. */
async function opened<T>(source: CipherSource, fields: Fields, open: (f: Fields) => T): Promise<T> {
    try {
        return open(fields);
    } catch (e: unknown) {
        fields.cipher = await refreshedFor(e, source, fields.cipher);
        return open(fields);
    }
}

/**
 * Seals an audit comment so that the store's PII masking (which runs over every string in `details`) leaves the
 * sealed form as it is: base64url text could, very rarely, contain a run of digits shaped like a phone number.
 * Each attempt draws a fresh key and IV; kids are checked to be mask-stable when the ring is loaded.
 */
function sealMaskStable(cipher: FieldCipher, plaintext: string, ctx: SealContext): SealedValue {
    for (let attempt = 0; attempt < 8; attempt++) {
        const sealed = cipher.seal(plaintext, ctx);
        if ([sealed.kid, sealed.wk, sealed.iv, sealed.ct, sealed.tag].every((v) => maskPiiText(v) === v)) return sealed;
    }
    throw new Error(`Cannot seal ${ctx.field} in a form PII masking leaves intact (key id '${cipher.currentKid}').`);
}
