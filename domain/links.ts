/**
 * Signed approval links (SPEC `/approvals/{token}`): what a link's token says, the checks its claims must pass once
 * the signature verified, minting the links of a checkpoint, and the two use-cases behind the link pages. A link is
 * bound to one approver, checkpoint and decision, expires, and works once. The approver's roles and teams travel in
 * the token, so the link decides as that approver without a bearer token: four-eyes, team and quorum rules apply
 * exactly as on the API (domain/decide.ts).
 */
import { randomUUID } from 'node:crypto';

import { assertDecidable, type DecisionOutcome, decisionOutcome } from './decide';
import { ConflictError, DomainError, ForbiddenError, LinkInvalidError, LinkUsedError } from './errors';
import { type Stage, STAGES } from './pipeline';
import type { LinkUses, RunStore } from './ports';
import { isRole, type Principal, type Role } from './principal';
import { type Decision, DECISIONS } from './quorum';
import { assertCanDecide, canSee } from './rbac';
import { CHECKPOINT_ID, type CheckpointState, type RunDoc, runIdOfCheckpoint } from './run';
import { outputKey } from './steps';

/** The JWS `typ` of a link token: an access token or an id token can never pass for a link. */
export const LINK_TYP = 'mesh-approval+jwt';
/** A link's lifetime when its checkpoint has no deadline yet. */
export const DEFAULT_LINK_TTL_S = 86_400;
/** No link lives longer than this, whatever its checkpoint's deadline. */
export const MAX_LINK_TTL_S = 7 * 86_400;

/** What a link token says (its JWT claims). */
export interface LinkClaims {
    /** Unique per link; a link works once (`LinkUses`). */
    jti: string;
    /** The approver the link is bound to. */
    sub: string;
    /** The approver's display name, recorded with the decision. */
    name?: string;
    /** The checkpoint the link decides. */
    cp: string;
    /** The checkpoint's run (always the run id `cp` starts with). */
    run: string;
    /** The decision the link records. */
    d: Decision;
    /** The approver's roles and teams when the link was minted: the link decides as this principal. */
    roles: Role[];
    teams: string[];
    /** Issued at / expires at, in seconds since the epoch. */
    iat: number;
    exp: number;
}

/** Who a link is minted for: a user, with the roles and teams they hold now. */
export interface LinkApprover {
    id: string;
    name?: string;
    roles: readonly Role[];
    teams: readonly string[];
}

export interface LinkMintOptions {
    /** Default: the current time. */
    now?: Date;
    /** Default: `randomUUID`. */
    newId?: () => string;
    /** Lifetime cap in seconds; without one a link lives until the checkpoint's deadline (else a day). */
    ttlSeconds?: number;
}

const JTI = /^[A-Za-z0-9_-]{16,64}$/;
const MAX_TEXT = 256;

/**
 * The claims of a link token, checked field by field; anything else is `LinkInvalidError`. Run on the payload of
 * a token whose signature verified: a well-signed token with a bad shape is still refused (and unknown fields are
 * dropped, never trusted).
 */
export function parseLinkClaims(payload: unknown): LinkClaims {
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw invalid();
    const c = payload as Record<string, unknown>;
    const { jti, sub, name, cp, run, d, roles, teams, iat, exp } = c;
    if (typeof jti !== 'string' || !JTI.test(jti)) throw invalid();
    if (!isText(sub)) throw invalid();
    if (name !== undefined && !isText(name)) throw invalid();
    if (typeof cp !== 'string' || !CHECKPOINT_ID.test(cp)) throw invalid();
    if (typeof run !== 'string' || run !== runIdOfCheckpoint(cp)) throw invalid();
    if (typeof d !== 'string' || !(DECISIONS as readonly string[]).includes(d)) throw invalid();
    if (!Array.isArray(roles) || !roles.every(isRole)) throw invalid();
    if (!Array.isArray(teams) || !teams.every(isText)) throw invalid();
    if (!Number.isSafeInteger(iat) || !Number.isSafeInteger(exp) || (exp as number) <= (iat as number)) throw invalid();
    return {
        jti,
        sub,
        ...(name !== undefined ? { name } : {}),
        cp,
        run,
        d: d as Decision,
        roles: [...new Set(roles)],
        teams: [...new Set(teams)],
        iat: iat as number,
        exp: exp as number,
    };
}

/** Whether the link is past its `exp` at `now` (a link is valid strictly before `exp`, as JWTs are). */
export function linkExpired(claims: Pick<LinkClaims, 'exp'>, now: Date): boolean {
    return claims.exp * 1000 <= now.getTime();
}

/** The principal a link decides as: the approver snapshot it was minted with. */
export function linkPrincipal(claims: LinkClaims): Principal {
    return {
        id: claims.sub,
        ...(claims.name !== undefined ? { name: claims.name } : {}),
        roles: [...claims.roles],
        teams: [...claims.teams],
    };
}

/**
 * The links to send `approver` for `checkpoint`, one per decision (unsigned claims; a `LinkSigner` signs them).
 * Never for the run's submitter (four-eyes), nor for anyone else who may not decide the checkpoint (a required
 * role, the run's team or Mesh.Admin): for them, and for a checkpoint whose deadline passed, the answer is [].
 * A link expires at the checkpoint's deadline (capped by `ttlSeconds` and `MAX_LINK_TTL_S`).
 */
export function linksFor(
    run: RunDoc,
    checkpoint: CheckpointState,
    approver: LinkApprover,
    decisions: readonly Decision[] = DECISIONS,
    opts: LinkMintOptions = {},
): LinkClaims[] {
    const principal: Principal = {
        id: approver.id,
        ...(approver.name !== undefined ? { name: approver.name } : {}),
        roles: [...new Set(approver.roles)],
        teams: [...new Set(approver.teams)],
    };
    if (approver.id === run.createdBy || !mayDecide(principal, run, checkpoint)) return [];
    const iat = Math.floor((opts.now ?? new Date()).getTime() / 1000);
    const deadline = checkpoint.deadline === null ? NaN : Math.floor(Date.parse(checkpoint.deadline) / 1000);
    const ttl = Math.min(opts.ttlSeconds ?? (Number.isNaN(deadline) ? DEFAULT_LINK_TTL_S : Infinity), MAX_LINK_TTL_S);
    const exp = Math.min(iat + Math.floor(ttl), Number.isNaN(deadline) ? Infinity : deadline);
    if (!(exp > iat)) return [];
    const newId = opts.newId ?? randomUUID;
    return [...new Set(decisions)].map((d) => ({
        jti: newId(),
        sub: principal.id,
        ...(principal.name !== undefined ? { name: principal.name } : {}),
        cp: checkpoint.checkpointId,
        run: run.id,
        d,
        roles: principal.roles,
        teams: principal.teams,
        iat,
        exp,
    }));
}

/** What the link pages need from the outside world. */
export interface LinkPorts {
    runs: Pick<RunStore, 'get' | 'getOutput'>;
    linkUses: LinkUses;
    now: () => Date;
}

/** What the confirm page shows about a link. */
export interface LinkReview {
    claims: LinkClaims;
    run: RunDoc;
    checkpoint: CheckpointState;
    /** The output of the stage just before the checkpoint, when one is stored. */
    latest?: { stage: Stage; iteration: number; output: unknown };
}

/**
 * GET /approvals/{token}: what the link would decide, if it still can. Changes nothing (mail scanners pre-fetch
 * links), but answers as the POST would: LINK_USED, FORBIDDEN or CONFLICT before the approver types a comment.
 */
export async function reviewLink(ports: LinkPorts, claims: LinkClaims): Promise<LinkReview> {
    if (await ports.linkUses.used(claims.jti)) throw new LinkUsedError();
    const { run, checkpoint } = linkTarget(claims, await ports.runs.get(claims.run));
    const from = stageBefore(checkpoint);
    const stored = from && (await ports.runs.getOutput(run.id, outputKey(from.iteration, from.stage)));
    const output = isObject(stored) && 'output' in stored ? stored.output : undefined;
    return { claims, run, checkpoint, ...(from && output !== undefined ? { latest: { ...from, output } } : {}) };
}

/**
 * POST /approvals/{token}: checks the decision as the link's approver, then consumes the link (exactly one of any
 * number of concurrent uses wins) and returns the decision event for the caller to raise. A link that was used
 * answers LINK_USED, also when its own earlier use is why the checkpoint no longer takes decisions.
 */
export async function decideByLink(
    ports: LinkPorts,
    claims: LinkClaims,
    comment: string | undefined,
    correlationID: string,
): Promise<DecisionOutcome> {
    if (await ports.linkUses.used(claims.jti)) throw new LinkUsedError();
    let outcome: DecisionOutcome;
    try {
        const { run, checkpoint } = linkTarget(claims, await ports.runs.get(claims.run));
        const request = { decision: claims.d, ...(comment ? { comment } : {}) };
        outcome = decisionOutcome(linkPrincipal(claims), run, checkpoint, request, 'link', correlationID);
    } catch (e: unknown) {
        // A concurrent use of this link may have decided (and closed) the checkpoint since the first look.
        if (e instanceof DomainError && (await ports.linkUses.used(claims.jti))) throw new LinkUsedError();
        throw e;
    }
    if (!(await ports.linkUses.use(claims.jti, ports.now().toISOString()))) throw new LinkUsedError();
    return outcome;
}

/**
 * The run and checkpoint a link decides, checked as its approver would be on the API. A signed link names a run
 * that existed, so the answers differ from the API's: a run or checkpoint that is gone is not open (CONFLICT), and
 * an approver who may not see the run is FORBIDDEN (the link holder learns nothing the link did not say).
 */
function linkTarget(claims: LinkClaims, run: RunDoc | undefined): { run: RunDoc; checkpoint: CheckpointState } {
    if (!run?.checkpoints.some((c) => c.checkpointId === claims.cp))
        throw new ConflictError('The checkpoint this link is for is not open for decisions.');
    const principal = linkPrincipal(claims);
    if (!canSee(principal, run)) throw new ForbiddenError('The approver of this link may not see this run.');
    return assertDecidable(principal, run, claims.cp, claims.d);
}

/** The stage whose output the approver judges: the checkpoint's own stage after it, else the one before. */
function stageBefore(c: Pick<CheckpointState, 'stage' | 'position' | 'iteration'>) {
    if (c.position === 'after') return { stage: c.stage, iteration: c.iteration };
    const i = STAGES.indexOf(c.stage);
    if (i > 0) return { stage: STAGES[i - 1]!, iteration: c.iteration };
    return c.iteration > 1 ? { stage: 'improvement' as const, iteration: c.iteration - 1 } : undefined;
}

function mayDecide(p: Principal, run: RunDoc, checkpoint: CheckpointState): boolean {
    try {
        assertCanDecide(p, run, checkpoint);
        return true;
    } catch (e: unknown) {
        if (e instanceof ForbiddenError) return false;
        throw e;
    }
}

function isText(v: unknown): v is string {
    return typeof v === 'string' && v.length > 0 && v.length <= MAX_TEXT;
}

function isObject(v: unknown): v is Record<string, unknown> {
    return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(): LinkInvalidError {
    return new LinkInvalidError();
}
