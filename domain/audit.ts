/**
 * The audit trail: one record per state change, append-only, with a gap-free `seq` per run and a keyed hash chain
 * (an HMAC-SHA256 over each record's canonical JSON, RFC 8785, under a key kept outside the stores), so any edit,
 * deletion or forged record is detectable; each run's head is anchored outside the audit store, so truncation is too.
 */
import { timingSafeEqual } from 'node:crypto';

import canonicalize from 'canonicalize';

import { Stage } from './pipeline';

export const EVENT_TYPES = [
    'pipeline.queued',
    'pipeline.started',
    'pipeline.paused',
    'pipeline.resumed',
    'pipeline.aborted',
    'pipeline.completed',
    'pipeline.failed',
    'pipeline.rejected',
    'pipeline.timedout',
    'stage.started',
    'stage.completed',
    'stage.failed',
    'checkpoint.opened',
    'checkpoint.decided',
    'checkpoint.expired',
    'checkpoint.escalated',
    'checkpoint.info_provided',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Policy changes are audited in a chain of their own, under this pseudo run id. */
export const POLICY_CHAIN = '_policies';
/** Retention purges are audited in a chain of their own, which the purge itself never removes. */
export const RETENTION_CHAIN = '_retention';
/** The chains that belong to no run: readable by Compliance and Admin, never purged. */
export const SYSTEM_CHAINS: readonly string[] = [POLICY_CHAIN, RETENTION_CHAIN];
/**
 * Every audit record type: the SPEC events, the system chains' own, and `checkpoint.refused` (a decision the workflow
 * refused: it changed nothing, so it is audited but not published as a lifecycle event).
 */
export const AUDIT_TYPES = [...EVENT_TYPES, 'policy.updated', 'retention.purged', 'checkpoint.refused'] as const;
export type AuditType = (typeof AUDIT_TYPES)[number];

/** What a state change appends; the log adds seq, prevHash and hash. */
export interface NewAuditEvent {
    /** Idempotency key: the same id appended twice is one record. */
    eventId: string;
    runId: string;
    type: AuditType;
    at: string;
    /** Who caused it: a user id, or 'system' for timers and the orchestrator itself. */
    actor: string;
    correlationID: string;
    stage?: Stage;
    checkpointId?: string;
    reason?: string;
    details?: Record<string, unknown>;
}

export interface AuditRecord extends NewAuditEvent {
    seq: number;
    prevHash: string;
    /** The id of the chain key whose MAC `hash` is (covered by it). Absent on records written before the chain was keyed. */
    kid?: string;
    hash: string;
}

/**
 * One key of the chain: its id and the MAC under it (hex HMAC-SHA256 of the text). The adapters hold the key material
 * (adapters/audit/chainKeys.ts); the domain only calls `mac`.
 */
export interface ChainKey {
    readonly kid: string;
    mac(text: string): string;
}

/** The chain keys held: the one new records are keyed with, and every older one still verifiable. */
export interface ChainKeyRing {
    readonly current: ChainKey;
    get(kid: string): ChainKey | undefined;
}

/** A run's head as anchored outside the audit store (domain/ports.ts `ChainAnchors`). */
export interface AnchoredHead {
    seq: number;
    hash: string;
}

export interface ChainVerification {
    verified: boolean;
    head: string;
    /** The first record that does not verify, and why. */
    brokenAt?: { seq: number; reason: string };
}

/** The prevHash of a chain's first record. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * RFC 8785 (JCS) canonical JSON: object keys sorted by UTF-16 code units, no whitespace, ECMAScript number
 * form. Properties whose value is undefined are left out, as JSON.stringify does, so an absent optional field
 * and an undefined one hash alike. Throws on what JSON cannot hold (NaN, Infinity, a bare undefined).
 */
export function canonicalJson(value: unknown): string {
    const text = canonicalize(value);
    if (text === undefined) throw new TypeError('canonicalJson: the value has no JSON form');
    return text;
}

/**
 * The chain hash of a record: `key`'s MAC (hex HMAC-SHA256) over the canonical JSON of every field but `hash` (so
 * `seq`, `prevHash` and `kid` are covered, and moving or relinking a record changes it). A `hash` field, if passed, is
 * ignored. Without the key nobody can compute it, so a record forged or rewritten outside the app does not verify.
 */
export function hashRecord(record: Omit<AuditRecord, 'hash'> & { hash?: string }, key: ChainKey): string {
    const { hash: _ignored, ...rest } = record;
    return key.mac(canonicalJson(rest));
}

/**
 * The record that follows `prev` in its run's chain (the first one when `prev` is undefined), keyed with `key` (its
 * `kid` is recorded). Only the fields of `NewAuditEvent` are taken, so whatever else the caller's object carries never
 * enters the hash.
 */
export function chainNext(prev: AuditRecord | undefined, event: NewAuditEvent, key: ChainKey): AuditRecord {
    if (prev && prev.runId !== event.runId) {
        throw new Error(`chainNext: event of run ${event.runId} cannot follow a record of run ${prev.runId}`);
    }
    const body: Omit<AuditRecord, 'hash'> = {
        eventId: event.eventId,
        runId: event.runId,
        seq: prev ? prev.seq + 1 : 1,
        prevHash: prev ? prev.hash : GENESIS_HASH,
        kid: key.kid,
        type: event.type,
        at: event.at,
        actor: event.actor,
        correlationID: event.correlationID,
        ...optionalFieldsOf(event),
    };
    return { ...body, hash: hashRecord(body, key) };
}

/** The optional fields of an audit event that are set (an absent field is left out, never written as undefined). */
export function optionalFieldsOf(
    event: Pick<NewAuditEvent, 'stage' | 'checkpointId' | 'reason' | 'details'>,
): Pick<NewAuditEvent, 'stage' | 'checkpointId' | 'reason' | 'details'> {
    return {
        ...(event.stage !== undefined ? { stage: event.stage } : {}),
        ...(event.checkpointId !== undefined ? { checkpointId: event.checkpointId } : {}),
        ...(event.reason !== undefined ? { reason: event.reason } : {}),
        ...(event.details !== undefined ? { details: event.details } : {}),
    };
}

/**
 * Checks one run's records, in `seq` order as stored: seq runs 1, 2, 3… without gaps, each `prevHash` is the
 * previous record's `hash` (GENESIS_HASH for the first), every record names a key of `keys` and its `hash` is that
 * key's MAC of the record, and all records belong to the same run. A record without `kid` (written before the chain
 * was keyed) does not verify: anyone can compute its plain SHA-256. Then the chain is compared with `anchor`, the head
 * kept outside the audit store: an anchored seq beyond the last record means records were cut off the end (`brokenAt`
 * is the first missing seq); an anchored hash other than the stored record's at that seq means the chain was rewritten.
 * An anchor behind the chain is accepted (a crash between an append's commit and its anchor write leaves it one
 * behind; the records after it are still MAC-checked, and the next append moves it on). Reports the first problem.
 * `head` is the last record's stored hash (GENESIS_HASH for an empty chain).
 */
export function verifyChain(
    records: readonly AuditRecord[],
    keys: Pick<ChainKeyRing, 'get'>,
    anchor?: AnchoredHead,
): ChainVerification {
    const head = records.length ? records[records.length - 1]!.hash : GENESIS_HASH;
    let prev: AuditRecord | undefined;
    for (const [i, record] of records.entries()) {
        const reason = brokenReason(record, i + 1, prev, records[0]!.runId, keys);
        if (reason) return { verified: false, head, brokenAt: { seq: record.seq, reason } };
        prev = record;
    }
    if (anchor && anchor.seq > 0) {
        if (anchor.seq > records.length) {
            return {
                verified: false,
                head,
                brokenAt: {
                    seq: records.length + 1,
                    reason: `record missing: the anchored head is seq ${anchor.seq}, the chain ends at seq ${records.length}`,
                },
            };
        }
        if (records[anchor.seq - 1]!.hash !== anchor.hash) {
            return {
                verified: false,
                head,
                brokenAt: { seq: anchor.seq, reason: 'hash differs from the anchored head' },
            };
        }
    }
    return { verified: true, head };
}

function brokenReason(
    r: AuditRecord,
    expectedSeq: number,
    prev: AuditRecord | undefined,
    runId: string,
    keys: Pick<ChainKeyRing, 'get'>,
): string | undefined {
    if (r.runId !== runId) return `runId ${r.runId} does not belong to the chain of run ${runId}`;
    if (r.seq !== expectedSeq) {
        return r.seq > expectedSeq ? `seq gap: expected ${expectedSeq}` : `seq out of order: expected ${expectedSeq}`;
    }
    if (r.prevHash !== (prev ? prev.hash : GENESIS_HASH)) return 'prevHash does not match the previous record';
    if (typeof r.kid !== 'string') return 'record is not keyed (no kid): its hash proves nothing';
    const key = keys.get(r.kid);
    if (!key) return 'record names a chain key id the key ring does not hold';
    let actual: string;
    try {
        actual = hashRecord(r, key);
    } catch (_e: unknown) {
        return 'record is not valid JSON';
    }
    return sameHex(actual, r.hash) ? undefined : 'hash mismatch';
}

/** Constant-time comparison of two MACs (a stored `hash` may be anything). */
function sameHex(a: string, b: unknown): boolean {
    if (typeof b !== 'string' || a.length !== b.length) return false;
    return timingSafeEqual(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

// ---------------------------------------------------------------------------------------------------------------
// PII masking. Audit records are kept for months and shown to compliance readers, so details are masked before
// they are hashed and stored (DESIGN "Principles"). Over-masking a value is cheap; leaking a secret is not.
// ---------------------------------------------------------------------------------------------------------------

export const REDACTED = '[redacted]';

/** `Authorization: Bearer …` values (RFC 6750 b64token); 16+ characters, so prose like "bearer of" survives. */
const BEARER = /\b(Bearer)\s+[A-Za-z0-9._~+/-]{16,}=*/gi;
/** JWS (3 segments) and JWE (5): base64url segments whose first one encodes a JSON header (`{"` = `eyJ`). */
const JWT = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)?/g;
const EMAIL = /([A-Za-z0-9_%+-])[A-Za-z0-9._%+-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})\b/g;
/**
 * Phone candidates: E.164 (`+` and 8–15 digits), or digit groups with single separators (space, '-', '.'),
 * an optional `+country` code and an optional `(area)` code. Not glued to a word, a mask or an id such as
 * `run-20240115-1234` (`isPhone` then sorts out dates, IP addresses and decimals).
 */
const PHONE =
    /(?<![\w+*]|\w[.-])(?:\+\d{8,15}|(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{1,8}(?:[ .-]\d{1,8}){0,5})(?![\w*]|[.-]\w)/g;
const DATE_LIKE = /^(?:\d{4}([-.])\d{1,2}\1\d{1,2}|\d{1,2}([-.])\d{1,2}\2\d{4})(?!\d)/;
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

function isPhone(m: string): boolean {
    const digits = m.replace(/\D/g, '').length;
    if (digits < 8 || digits > 15) return false;
    if (m.startsWith('+') || m.includes('(')) return true;
    if (DATE_LIKE.test(m) || IPV4.test(m)) return false;
    const separators = m.match(/[ .-]/g)?.length ?? 0;
    if (separators >= 2) return true;
    // One separator: '030 1234567' is a phone number, '3.14159265' and a bare '20240115' are not.
    return separators === 1 && /^\d{3,}[ -]\d{3,}$/.test(m);
}

/** Keeps the last two digits: '+1 425-555-0100' → '+* ***-***-**00'. */
function maskPhone(m: string): string {
    let keep = 2;
    return m
        .split('')
        .reverse()
        .map((c) => (/\d/.test(c) ? (keep-- > 0 ? c : '*') : c))
        .reverse()
        .join('');
}

/** Masks e-mail addresses, phone numbers, bearer tokens and JWTs inside free text. Idempotent. */
export function maskPiiText(text: string): string {
    return text
        .replace(BEARER, `$1 ${REDACTED}`)
        .replace(JWT, REDACTED)
        .replace(EMAIL, '$1***@$2')
        .replace(PHONE, (m) => (isPhone(m) ? maskPhone(m) : m));
}

/** Splits camelCase, snake_case and kebab-case keys into lower-case words: 'x-API-Key' → ['x', 'api', 'key']. */
function wordsOf(key: string): string[] {
    return key
        .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
        .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
        .toLowerCase()
        .split(/[^a-z0-9]+/)
        .filter(Boolean);
}

const SECRET_WORDS = new Set([
    'password',
    'passwd',
    'pwd',
    'passphrase',
    'secret',
    'secrets',
    'authorization',
    'credential',
    'credentials',
    'cookie',
]);
const SECRET_JOINED = /apikey|accesskey|accountkey|privatekey|signingkey|connectionstring/;

/**
 * Whether values under this key are secrets: password, secret, authorization, credential, cookie, api/private/
 * access keys, connection strings, and `…token` (accessToken, id_token, token; but not maxTokens or tokenCount,
 * which are model usage figures).
 */
export function isSecretKey(key: string): boolean {
    const words = wordsOf(key);
    return words.some((w) => SECRET_WORDS.has(w)) || words.at(-1) === 'token' || SECRET_JOINED.test(words.join(''));
}

/**
 * A masked deep copy of audit `details`: values under secret-named keys become '[redacted]' whatever they hold,
 * and every string (at any depth, in objects and arrays) goes through `maskPiiText`. Numbers, booleans and null
 * are kept. Idempotent, so masking twice stores the same record.
 */
export function maskPii(details: Record<string, unknown>): Record<string, unknown> {
    return maskObject(details);
}

function maskObject(obj: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(obj)) {
        out[key] = value !== null && value !== undefined && isSecretKey(key) ? REDACTED : maskValue(value);
    }
    return out;
}

function maskValue(value: unknown): unknown {
    if (typeof value === 'string') return maskPiiText(value);
    if (Array.isArray(value)) return value.map(maskValue);
    if (isPlainObject(value)) return maskObject(value);
    return value;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
    if (typeof v !== 'object' || v === null) return false;
    const proto = Object.getPrototypeOf(v) as unknown;
    return proto === Object.prototype || proto === null;
}

/** One page of a run's records and the token of the next, as `AuditLog.list` answers. */
type ListPage = (
    runId: string,
    limit: number,
    continuationToken?: string,
) => Promise<{ items: AuditRecord[]; continuationToken?: string }>;

/** Every record of a run, oldest first, read page by page (what `AuditLog.all` is on every store). */
export async function* allRecords(list: ListPage, runId: string, pageSize: number): AsyncIterable<AuditRecord> {
    let token: string | undefined;
    do {
        const page = await list(runId, pageSize, token);
        yield* page.items;
        token = page.continuationToken;
    } while (token !== undefined);
}
