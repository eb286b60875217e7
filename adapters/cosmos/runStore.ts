/**
 * Runs (`runs`, pk `/id`), their idempotency keys (`idempotency`, pk `/id`) and stage outputs (`outputs`, pk
 * `/runId`) on Cosmos DB.
 *
 * A run item is the RunDoc plus fields the queries need, all stripped on read: `_team` (metadata.team), `_createdAt`
 * and `_updatedAt` (ISO UTC with ms, so they compare as text, as in SQLite), `_search` (id, title and team,
 * lower-cased in JS so `q` is case-insensitive beyond ASCII), `_changed` (when the item was last written, in µs),
 * `_waitRoles` and `_waitApproved` (the required roles of the checkpoint the run waits on a decision for, escalated
 * ones included, and who already approved it; empty when it waits on none: domain/waiting.ts `waitIndexOf`) and
 * `_infoOpen` (an information request is open). They are top-level because `nextAction` and `checkpoints` are
 * excluded from the index. Items written before these fields existed and still awaiting approval are rewritten once
 * per process (`backfillWaiting`) before the first `waitingFor` query, so runs waiting at an upgrade are found.
 *
 * **Idempotency.** No transaction spans two items, so a keyed create writes the key first: an item whose id is
 * sha256(createdBy \n key) (keys are per creator) holding the run id. A 409 on it means the key was used: its run is
 * answered (`created: false`), or, when that run does not exist (a crash between the two writes, or the first
 * creator still on its way), created under that id, so a key never ends up with two runs. The key item also holds
 * the request's fingerprint: a reuse with a different one is CONFLICT (an item without one, written before
 * fingerprints existed, replays as before). Of concurrent creators
 * that race for the one run id, the one whose run create succeeds says `created: true`; the others read the run.
 * Key items expire with the container's TTL (`COSMOS_TTL_DAYS_IDEMPOTENCY`), far beyond any client retry; the
 * embedded store keeps a key as long as its run. Retention deletes the key of a purged run.
 *
 * **Updates** read the item, call `mutate` and replace it with `IfMatch: <_etag>`; a 412 (someone wrote between)
 * starts over, so `mutate` may run more than once, as the port allows.
 *
 * **list** pages by keyset, like the embedded store: `ORDER BY _createdAt DESC, id DESC` (the composite index the
 * container declares) with `TOP limit+1` and, for later pages, `(createdAt, id) < (token's createdAt, token's id)`.
 * Deliberately not the SDK's continuation token: with it a page may come back short, or end with a token whose next
 * page is empty (the SDK cannot know there is no more), and its format belongs to the SDK and the gateway; the keyset
 * token gives full pages, an exact "no more", and stays valid across SDK upgrades, filter-agnostic and small.
 *
 * **changesSince** has neither a change feed (the local Cosmos-API server has none) nor a global sequence (one
 * counter item would serialise every run write across the fleet). Each write stamps `_changed` from the instance's
 * clock; as two instances' writes can become visible out of stamp order (and their clocks differ a little), a read
 * starts `changeLookbackMs` (5 s) before the newest stamp delivered so far and skips what it already delivered: the
 * cursor (base64url JSON) carries that stamp and a short hash of (id, _etag) of every version it delivered within the
 * lookback window. So no change is missed unless it becomes visible more than the lookback after its stamp, and none
 * is delivered twice; a run changed twice since the last read appears once, with its latest state (as in SQLite).
 * The cursor grows by about 30 characters per run write delivered within the lookback window, up to
 * `MAX_CURSOR_VERSIONS` versions (about 2 KB, well inside a Last-Event-ID header). Under a burst that delivers more
 * within the lookback, the cursor keeps the newest ones and a low-water stamp `l` (the oldest kept): everything older
 * counts as delivered, so the protection against late commits narrows to the kept span while the burst lasts, and a
 * read never re-delivers what it dropped.
 */
import type { Container, ItemDefinition, SqlParameter } from '@azure/cosmos';

import { ConflictError, NotFoundError } from '../../domain/errors';
import { RUN_STATUSES } from '../../domain/pipeline';
import { Page, RunFilter, RunStateCounts, RunStore } from '../../domain/ports';
import { isRole } from '../../domain/principal';
import { assertSameRequest, RunDoc } from '../../domain/run';
import { answersForTeams, waitIndexOf } from '../../domain/waiting';
import {
    backoff,
    badToken,
    clampLimit,
    decodeToken,
    encodeToken,
    isConflict,
    isNotFound,
    isoOf,
    isPreconditionFailed,
    itemId,
    MAX_ATTEMPTS,
    MAX_RUN_PAGE,
    sha256,
    strip,
} from './common';
import { CosmosContext } from './cosmosContext';

/** The id readiness reads (RunStore.ping); run ids are UUIDs, so no run ever has it. */
const READINESS_PROBE_ID = '_readiness';

/** The adapter's own fields on a run item. */
const RUN_FIELDS = [
    '_team',
    '_createdAt',
    '_updatedAt',
    '_search',
    '_changed',
    '_waitRoles',
    '_waitApproved',
    '_infoOpen',
] as const;

export type RunItem = RunDoc & {
    _team: string;
    _createdAt: string;
    _updatedAt: string;
    _search: string;
    _changed: number;
    _waitRoles: string[];
    _waitApproved: string[];
    _infoOpen: boolean;
    _etag?: string;
};

interface IdempotencyItem extends ItemDefinition {
    id: string;
    runId: string;
    /** SHA-256 of the canonical request body the key was first used with (absent on items from before). */
    fingerprint?: string;
}

interface OutputItem extends ItemDefinition {
    id: string;
    runId: string;
    key: string;
    value: unknown;
}

/** The idempotency item of a creator's key (keys are scoped per creator). */
export function idempotencyIdOf(createdBy: string, key: string): string {
    return sha256(`${createdBy}\n${key}`);
}

export function fromRunItem(item: object): RunDoc {
    return strip<RunDoc>(item, RUN_FIELDS);
}

export class CosmosRunStore implements RunStore {
    constructor(private readonly ctx: CosmosContext) {}

    async create(run: RunDoc): Promise<{ run: RunDoc; created: boolean }> {
        // The times are checked before anything is written (itemOf checks them again for each write).
        isoOf(run.createdAt, 'createdAt');
        isoOf(run.updatedAt, 'updatedAt');
        const { runs, idempotency } = await this.ctx.containers();
        const key = run.idempotencyKey;
        if (key === undefined) return { run: await this.insert(runs, run), created: true };

        const keyId = idempotencyIdOf(run.createdBy, key);
        const ours = (r: RunDoc) => r.createdBy === run.createdBy && r.idempotencyKey === key;
        for (let attempt = 1; ; attempt++) {
            if (attempt > MAX_ATTEMPTS) throw new Error(`The idempotency key of run ${run.id} kept changing.`);
            let target = run;
            let ownKey: string | undefined;
            try {
                const item: IdempotencyItem = {
                    id: keyId,
                    runId: run.id,
                    ...(run.idempotencyFingerprint ? { fingerprint: run.idempotencyFingerprint } : {}),
                };
                ownKey = (await idempotency.items.create<IdempotencyItem>(item)).etag;
            } catch (e: unknown) {
                if (!isConflict(e)) throw e;
                const used = (await idempotency.item(keyId, keyId).read<IdempotencyItem>()).resource;
                if (!used) continue; // purged between our create and read: the key is free again
                const existing = await this.get(used.runId);
                if (existing && !ours(existing)) {
                    // The key names another creator's run: a compensation below that failed. Drop it, try again.
                    await this.dropKey(idempotency, keyId, used._etag);
                    continue;
                }
                // The key is ours: a retry of the same request replays, another request with it is CONFLICT.
                assertSameRequest(used.fingerprint, run.idempotencyFingerprint);
                if (existing) return { run: existing, created: false };
                target = { ...run, id: used.runId };
            }
            try {
                return { run: await this.insert(runs, target), created: true };
            } catch (e: unknown) {
                if (!(e instanceof ConflictError)) throw e;
                const existing = await this.get(target.id);
                if (existing && ours(existing)) return { run: existing, created: false };
                // The id belongs to another run: give the key back, so a retry with a new id can use it.
                if (ownKey !== undefined) await this.dropKey(idempotency, keyId, ownKey).catch(() => undefined);
                throw e;
            }
        }
    }

    async get(id: string): Promise<RunDoc | undefined> {
        const { runs } = await this.ctx.containers();
        const { resource } = await runs.item(id, id).read<RunItem>();
        return resource ? fromRunItem(resource) : undefined;
    }

    async update(id: string, mutate: (run: RunDoc) => RunDoc | undefined): Promise<RunDoc> {
        const { runs } = await this.ctx.containers();
        for (let attempt = 1; ; attempt++) {
            const { resource } = await runs.item(id, id).read<RunItem>();
            if (!resource) throw new NotFoundError(`Run ${id} not found.`);
            const current = fromRunItem(resource);
            const next = mutate(current);
            if (next === undefined) return current;
            if (next.id !== id) throw new Error(`RunStore.update: mutate changed the run id ${id} to ${next.id}`);
            try {
                const written = await runs.item(id, id).replace<RunItem>(this.itemOf(next), {
                    accessCondition: { type: 'IfMatch', condition: resource._etag },
                });
                return written.resource ? fromRunItem(written.resource) : structuredClone(next);
            } catch (e: unknown) {
                if (isNotFound(e)) throw new NotFoundError(`Run ${id} not found.`);
                if (!isPreconditionFailed(e)) throw e;
                if (attempt >= MAX_ATTEMPTS) throw new ConflictError(`Run ${id} changed concurrently.`, { id });
                await backoff(attempt);
            }
        }
    }

    async list(filter: RunFilter, limit: number, continuationToken?: string): Promise<Page<RunDoc>> {
        if (filter.waitingFor) await this.backfillWaiting();
        const n = clampLimit(limit, MAX_RUN_PAGE);
        const { where, parameters, param, matchesNothing } = whereOf(filter);
        if (continuationToken !== undefined) {
            const after = decodeRunKey(continuationToken);
            const c = param(after.c);
            where.push(`(c._createdAt < ${c} OR (c._createdAt = ${c} AND c.id < ${param(after.i)}))`);
        }
        if (matchesNothing) return { items: [] };

        const { runs } = await this.ctx.containers();
        const query =
            `SELECT TOP ${param(n + 1)} * FROM c${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ` +
            'ORDER BY c._createdAt DESC, c.id DESC';
        const { resources } = await runs.items.query<RunItem>({ query, parameters }).fetchAll();
        const more = resources.length > n;
        const page = resources.slice(0, n);
        const last = page[page.length - 1];
        return {
            items: page.map(fromRunItem),
            ...(more && last ? { continuationToken: encodeToken({ c: last._createdAt, i: last.id }) } : {}),
        };
    }

    async stateCounts(): Promise<RunStateCounts> {
        const { runs } = await this.ctx.containers();
        // One indexed COUNT per status (a handful of small queries; no GROUP BY, which cross-partition queries limit).
        const [counts, oldest] = await Promise.all([
            Promise.all(RUN_STATUSES.map(async (status) => [status, await this.count({ status: [status] })] as const)),
            runs.items
                .query<string | null>(
                    "SELECT VALUE MIN(cp.openedAt) FROM c JOIN cp IN c.checkpoints WHERE c.status = 'AwaitingApproval' " +
                        "AND (cp.status = 'Open' OR cp.status = 'Escalated')",
                )
                .fetchAll(),
        ]);
        // Cross-partition aggregates may come back as partial minima; the least of them is the minimum.
        const opened = oldest.resources.filter((at): at is string => typeof at === 'string').sort();
        return { byStatus: Object.fromEntries(counts.filter(([, n]) => n > 0)), oldestOpenedAt: opened[0] };
    }

    async count(filter: RunFilter): Promise<number> {
        if (filter.waitingFor) await this.backfillWaiting();
        const { where, parameters, matchesNothing } = whereOf(filter);
        if (matchesNothing) return 0;
        const { runs } = await this.ctx.containers();
        const query = `SELECT VALUE COUNT(1) FROM c${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`;
        const { resources } = await runs.items.query<number>({ query, parameters }).fetchAll();
        // Cross-partition aggregates may come back as partial counts; their sum is the count.
        return resources.reduce((sum, n) => sum + n, 0);
    }

    private backfilled: Promise<void> | undefined;

    /**
     * Rewrites, once per process, the runs awaiting approval whose items predate `_waitRoles`, so `waitingFor` finds
     * them (the rewrite changes nothing but the adapter's fields; SSE readers may see the run once more, unchanged). A
     * failure is not remembered: the next query tries again.
     */
    private backfillWaiting(): Promise<void> {
        this.backfilled ??= (async () => {
            const { runs } = await this.ctx.containers();
            const { resources } = await runs.items
                .query<string>(
                    "SELECT VALUE c.id FROM c WHERE c.status = 'AwaitingApproval' AND NOT IS_DEFINED(c._waitRoles)",
                )
                .fetchAll();
            for (const id of resources) await this.update(id, (run) => ({ ...run }));
        })().catch((e: unknown) => {
            this.backfilled = undefined;
            throw e;
        });
        return this.backfilled;
    }

    async changesSince(
        cursor: string | undefined,
        limit: number,
    ): Promise<{ runs: RunDoc[]; cursor: string | undefined }> {
        const from = cursor === undefined ? undefined : decodeChangeCursor(cursor);
        const n = clampLimit(limit, MAX_RUN_PAGE);
        const { runs } = await this.ctx.containers();
        const lookback = this.ctx.changeLookbackMs * 1000;
        // version → its stamp
        const seen = new Map((from?.s ?? []).map(([version, age]) => [version, from!.t - age]));
        const iterator = runs.items.query<RunItem>(
            {
                query: 'SELECT * FROM c WHERE c._changed >= @from ORDER BY c._changed ASC',
                parameters: [{ name: '@from', value: from ? Math.max(0, from.t - lookback, from.l ?? 0) : 0 }],
            },
            { maxItemCount: n + seen.size },
        );
        const fresh: RunItem[] = [];
        while (fresh.length < n && iterator.hasMoreResults()) {
            const { resources } = await iterator.fetchNext();
            for (const item of resources) {
                if (fresh.length >= n) break;
                if (!seen.has(versionOf(item))) fresh.push(item);
            }
        }
        if (fresh.length === 0) return { runs: [], cursor };

        let t = from?.t ?? 0;
        for (const item of fresh) {
            t = Math.max(t, item._changed);
            seen.set(versionOf(item), item._changed);
        }
        // Canonical (oldest first, then by name), so equal positions give equal cursors.
        const window = [...seen]
            .filter(([, changed]) => changed >= t - lookback)
            .map(([version, changed]): [string, number] => [version, t - changed])
            .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0));
        // Over the cap: keep the newest versions; the oldest kept stamp becomes the low-water mark.
        const kept = window.slice(-MAX_CURSOR_VERSIONS);
        const l = window.length > kept.length ? t - kept[0]![1] : from?.l;
        const next: ChangeCursor = { t, s: kept, ...(l !== undefined ? { l } : {}) };
        return { runs: fresh.map(fromRunItem), cursor: encodeToken(next) };
    }

    async putOutput(runId: string, key: string, output: unknown): Promise<void> {
        const { outputs } = await this.ctx.containers();
        // Outputs are plain values kept beside the run (not the audit trail), so a rewrite simply replaces.
        await outputs.items.upsert<OutputItem>({ id: itemId(key), runId, key, value: output ?? null });
    }

    async getOutput(runId: string, key: string): Promise<unknown> {
        const { outputs } = await this.ctx.containers();
        const { resource } = await outputs.item(itemId(key), runId).read<OutputItem>();
        return resource?.value;
    }

    /**
     * A point read of an id no run has (1 RU, a 404 the SDK returns rather than throws): it proves the data path
     * answers for this identity. Not `container.read()`: readiness probes every few seconds from every pod would
     * spend the account's metadata request budget, whose throttling (429) hits every client of the account.
     */
    async ping(): Promise<void> {
        const { runs } = await this.ctx.containers();
        await runs.item(READINESS_PROBE_ID, READINESS_PROBE_ID).read();
    }

    /**
     * Deletes the key item if it is still the version read (`etag`). Callers that compensate ignore a failure: a key
     * left pointing at another creator's run is dropped by the next create with that key.
     */
    private async dropKey(idempotency: Container, keyId: string, etag: string | undefined): Promise<void> {
        try {
            await idempotency
                .item(keyId, keyId)
                .delete(etag ? { accessCondition: { type: 'IfMatch', condition: etag } } : undefined);
        } catch (e: unknown) {
            if (!isNotFound(e) && !isPreconditionFailed(e)) throw e;
        }
    }

    /** Creates the run item; a 409 (the id is taken) is CONFLICT. */
    private async insert(runs: Container, run: RunDoc): Promise<RunDoc> {
        try {
            const { resource } = await runs.items.create<RunItem>(this.itemOf(run));
            return resource ? fromRunItem(resource) : structuredClone(run);
        } catch (e: unknown) {
            if (isConflict(e)) throw new ConflictError(`Run ${run.id} already exists.`, { id: run.id });
            throw e;
        }
    }

    private itemOf(run: RunDoc): RunItem {
        const title = run.metadata.title ?? '';
        const index = waitIndexOf(run);
        return {
            ...run,
            _waitRoles: index.waiting?.roles ?? [],
            _waitApproved: index.waiting?.approved ?? [],
            _infoOpen: index.infoOpen,
            _team: run.metadata.team,
            _createdAt: isoOf(run.createdAt, 'createdAt'),
            _updatedAt: isoOf(run.updatedAt, 'updatedAt'),
            _search: `${run.id}\n${title}\n${run.metadata.team}`.toLowerCase(),
            _changed: this.ctx.clock.next(),
        };
    }
}

/** The WHERE terms of a run filter (shared by `list` and `count`); `matchesNothing` when a list filter is empty. */
function whereOf(filter: RunFilter): {
    where: string[];
    parameters: SqlParameter[];
    param: (value: string | number) => string;
    matchesNothing: boolean;
} {
    const where: string[] = [];
    const parameters: SqlParameter[] = [];
    let matchesNothing = false;
    const param = (value: string | number) => {
        const name = `@p${parameters.length}`;
        parameters.push({ name, value });
        return name;
    };
    const anyOf = (field: string, values: readonly string[]) => {
        // An empty list matches nothing: a caller limited to no teams sees no runs.
        if (values.length === 0) matchesNothing = true;
        else where.push(`${field} IN (${values.map(param).join(', ')})`);
    };
    if (filter.status) anyOf('c.status', filter.status);
    if (filter.teams) anyOf('c._team', filter.teams);
    if (filter.team !== undefined) where.push(`c._team = ${param(filter.team)}`);
    if (filter.stage !== undefined) where.push(`c.currentStage = ${param(filter.stage)}`);
    if (filter.createdBy !== undefined) where.push(`c.createdBy = ${param(filter.createdBy)}`);
    if (filter.since !== undefined) where.push(`c._createdAt >= ${param(isoOf(filter.since, 'since'))}`);
    if (filter.q !== undefined && filter.q !== '') where.push(`CONTAINS(c._search, ${param(filter.q.toLowerCase())})`);
    if (filter.riskLevel) anyOf('c.metadata.riskLevel', filter.riskLevel);
    const w = filter.waitingFor;
    if (w) {
        // domain/waiting.ts mayDecideNow, as a query: a required role, the team (or Admin), not the submitter, not approved.
        const roles = w.roles.filter(isRole);
        if (roles.length === 0) matchesNothing = true;
        else {
            where.push(`(${roles.map((r) => `ARRAY_CONTAINS(c._waitRoles, ${param(r)})`).join(' OR ')})`);
            if (!w.roles.includes('Mesh.Admin')) anyOf('c._team', w.teams);
            const id = param(w.id);
            where.push(`c.createdBy != ${id}`, `NOT ARRAY_CONTAINS(c._waitApproved, ${id})`);
        }
    }
    const a = filter.answerableBy;
    if (a) {
        // domain/waiting.ts mayAnswer: the submitter, or a Developer/DataScientist of the run's team.
        const teams = answersForTeams(a);
        where.push(
            `c._infoOpen = true AND (c.createdBy = ${param(a.id)}${teams.length ? ` OR c._team IN (${teams.map(param).join(', ')})` : ''})`,
        );
    }
    return { where, parameters, param, matchesNothing };
}

/** The keyset position of a run in the list order (createdAt desc, id desc): the embedded store's token format. */
interface RunKey {
    c: string;
    i: string;
}

function decodeRunKey(token: string): RunKey {
    const key = decodeToken(token) as Partial<RunKey> | null | undefined;
    if (typeof key?.c === 'string' && typeof key.i === 'string') return { c: key.c, i: key.i };
    throw badToken('continuationToken');
}

/**
 * A changes cursor: `t`, the newest stamp delivered (µs), and `s`, the versions delivered within the lookback before
 * it, each with its age relative to `t` (µs; small numbers keep the cursor short: it travels as SSE Last-Event-ID).
 */
/** How many delivered versions a change cursor remembers (each about 30 characters). */
export const MAX_CURSOR_VERSIONS = 64;

interface ChangeCursor {
    /** The newest stamp delivered. */
    t: number;
    /** Versions delivered within the lookback, with their age relative to `t`. */
    s: [string, number][];
    /** Low-water stamp: anything stamped before it counts as delivered (set once the cursor hit its cap). */
    l?: number;
}

function decodeChangeCursor(cursor: string): ChangeCursor {
    const value = decodeToken(cursor) as { t?: unknown; s?: unknown; l?: unknown } | null | undefined;
    const t = value?.t;
    const s = value?.s;
    const l = value?.l;
    const isAge = (age: unknown) => typeof age === 'number' && Number.isSafeInteger(age) && age >= 0;
    const isEntry = (e: unknown): e is [string, number] =>
        Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && isAge(e[1]);
    if (typeof t !== 'number' || !isAge(t) || !Array.isArray(s) || !s.every(isEntry)) throw badToken('cursor');
    if (l !== undefined && !(isAge(l) && (l as number) <= t)) throw badToken('cursor');
    return { t, s, ...(l !== undefined ? { l: l as number } : {}) };
}

/** A short, fixed-size name of one version of a run (72 bits of sha256(id, _etag): no collision in a window). */
function versionOf(item: RunItem): string {
    return Buffer.from(sha256(`${item.id}\n${item._etag ?? ''}`).slice(0, 18), 'hex').toString('base64url');
}
