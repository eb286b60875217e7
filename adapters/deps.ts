/**
 * The composition root: builds each adapter once per process, lazily, from configuration. Triggers and
 * activities take what they need from here; tests pass fakes to the handler factories instead.
 */
import { EventEmitter } from 'node:events';

import { reclaimSlots, slotFreedBy } from '../domain/admission';
import { type AuditRecord, type ChainVerification, verifyChain } from '../domain/audit';
import type { NotifyPorts } from '../domain/notify';
import type {
    AdmissionQueue,
    AdmissionSlots,
    AppStores,
    AuditLog,
    ChainAnchors,
    DecisionSeals,
    Directory,
    EngineClient,
    EventOutbox,
    LinkSigner,
    LinkUses,
    PolicyStore,
    RateCounters,
    RetentionStore,
    RunStore,
    SecretStore,
} from '../domain/ports';
import { type PersonalDataMode, personalDataOf, recordAs } from '../domain/privacy';
import type { RunDoc } from '../domain/run';
import type { StepPorts } from '../domain/steps';
import { BlobChainAnchors } from './audit/blobAnchors';
import { cachedChainKeys, type ChainKeyLoader, chainKeySource, ringFor } from './audit/chainKeys';
import { type AnchorConfig, auditChainConfig } from './audit/config';
import { SqliteChainAnchors } from './audit/sqliteAnchors';
import { JwtAuthenticator } from './auth/jwtAuthenticator';
import {
    authConfig,
    linkConfig,
    notifyConfig,
    scaleConfig,
    secretEnvironment,
    secretsConfig,
    storeConfig,
} from './config';
import { cryptoConfig } from './crypto/config';
import { decisionKeySource, decisionKeysSecret, decisionSeals } from './crypto/decisionSeals';
import { encryptedAuditLog, encryptedRunStore, openAuditDetails } from './crypto/encryptedStores';
import { cachedCipher, keyRingSource } from './crypto/keyRing';
import { EntraDirectory, graphToken, parseGroupMappings } from './directory/entraDirectory';
import { JsonDirectory } from './directory/jsonDirectory';
import { EmbeddedAdmissionQueue, openSqliteQueue } from './embedded/sqliteQueue';
import { openEmbeddedStores } from './embedded/sqliteStores';
import { engineConfig } from './engines/config';
import { HttpEngineClient } from './engines/httpEngineClient';
import { eventGridConfig } from './eventGrid/config';
import { EventDispatcher } from './eventGrid/dispatcher';
import { EventGridPublisher } from './eventGrid/eventGridPublisher';
import { keyVaultSecretStore } from './keyvault/keyVaultSecretStore';
import { JoseLinkSigner, linkKeySource } from './links/joseLinkSigner';
import { emailNotifier } from './notify/email';
import { MemoryNotificationLog, OutboxFile, outboxPath } from './notify/outbox';
import { SlackNotifier } from './notify/slack';
import { TeamsNotifier } from './notify/teams';
import { WebhookNotifier } from './notify/webhook';
import { LocalSettingsSecretStore } from './secrets/localSettingsSecretStore';
import { ServiceBusAdmissionQueue, serviceBusConnectionOf } from './serviceBus/serviceBusAdmissionQueue';
import { countingNotifications, countingRuns, delegatingRuns, timedEngine } from './telemetry/countingStores';
import { tracedNotifier } from './telemetry/tracing';

export interface Deps {
    runs: RunStore;
    audit: AuditLog;
    policies: PolicyStore;
    auth: JwtAuthenticator;
    engine: EngineClient;
    steps: StepPorts;
    now: () => Date;
    /** Lifecycle events waiting to be published (written with their audit records). */
    outbox: EventOutbox;
    /** Publishes the outbox to Event Grid; undefined when EVENTGRID_ENDPOINT is not set. Built on first use. */
    readonly events: EventDispatcher | undefined;
    /** Which approval links were used (a link works once). */
    linkUses: LinkUses;
    /** Signs and verifies approval-link tokens with the keys from `secrets` (locally: the key file). Built on first use. */
    readonly links: LinkSigner;
    /** Named secrets: Key Vault when KEY_VAULT_URL is set, else the environment, then local.settings.json. */
    secrets: SecretStore;
    /** Decision comments sealed for the durable history, and attestations of who decided (adapters/crypto/decisionSeals.ts). */
    decisionSeals: DecisionSeals;
    /** Who holds which roles in which teams (locally: MESH_DIRECTORY, else the sample directory). Built on first use. */
    readonly directory: Directory;
    /** The notification channels, the outbox and the links' origin (issue 4). Built on first use. */
    readonly notify: Omit<NotifyPorts, 'info' | 'warn'>;
    /** Admission slots: how many workflows execute at once (MESH_RUN_CAPACITY). */
    slots: AdmissionSlots;
    /** Resolves when a slot may have come free in this process, or after `ms` (other instances are polled). */
    slotFreed(ms: number): Promise<void>;
    /**
     * Frees slots whose release a crash cut off (domain/admission.ts `reclaimSlots`); at most once per 5 s per
     * process, and never twice at once.
     */
    reclaimSlots(): Promise<void>;
    /** Where queued runs wait: Service Bus when `ServiceBusConnection` is set, else the embedded queue. Built on first use. */
    readonly admission: AdmissionQueue;
    /** Request counters behind the per-user and per-team rate limits. */
    rateCounters: RateCounters;
    /** What retention finds and removes. */
    retention: RetentionStore;
    /**
     * An audit record as people read it: sealed fields opened, personal data masked unless `personalData` (else the
     * checkpoint policy's setting, domain/privacy.ts) says `show`. Verify records as stored, before this.
     */
    forDisplay(record: AuditRecord, opts?: { personalData?: PersonalDataMode }): Promise<AuditRecord>;
    /**
     * Verifies a run's records as stored (all of them, in seq order) against the chain keys and the run's anchored
     * head (domain/audit.ts `verifyChain`).
     */
    verifyTrail(runId: string, records: readonly AuditRecord[]): Promise<ChainVerification>;
}

let built: Deps | undefined;

export function deps(): Deps {
    built ??= build();
    return built;
}

function build(): Deps {
    const secrets = buildSecrets();
    const chainCfg = auditChainConfig();
    // The chain's MAC keys and each run's anchored head live outside the stores (adapters/audit).
    const chainKeys = cachedChainKeys(chainKeySource(secrets, chainCfg));
    const anchors = buildAnchors(chainCfg.anchor);
    const stores = openStores(chainKeys);
    const crypto = cryptoConfig();
    // Sensitive fields are sealed before any store sees them (adapters/crypto): the same on either store.
    const cipher = crypto.enabled ? cachedCipher(keyRingSource(secrets, crypto)) : undefined;
    const freed = new EventEmitter().setMaxListeners(0);
    let reclaimedAt = 0;
    let reclaiming: Promise<void> | undefined;
    const seals = decisionSeals(
        decisionKeySource(secrets, { keysSecret: decisionKeysSecret(process.env), keysDir: crypto.keysDir }),
        cipher,
    );
    const sealedRuns = cipher ? encryptedRunStore(stores.runs, cipher) : stores.runs;
    const runs = countingRuns(releasingSlots(sealedRuns, stores.slots, () => freed.emit('freed')));
    const stored = cipher ? encryptedAuditLog(stores.audit, cipher) : stores.audit;
    const personalData = policySetting(stores.policies);
    const forDisplay = async (record: AuditRecord, o: { personalData?: PersonalDataMode } = {}): Promise<AuditRecord> =>
        recordAs(cipher ? await openAuditDetails(record, cipher) : record, o.personalData ?? (await personalData()));
    const { policies, linkUses } = stores;
    // Events carry what people read: sealed comments are opened on their way to Event Grid (over TLS, to subscribers
    // the infrastructure names), with personal data masked unless the checkpoint policy says `show`.
    const outbox: EventOutbox = {
        pending: async (limit) =>
            Promise.all(
                (await stores.outbox.pending(limit)).map(async (e) => ({ ...e, record: await forDisplay(e.record) })),
            ),
        markPublished: (ids) => stores.outbox.markPublished(ids),
        pendingCount: () => stores.outbox.pendingCount(),
    };
    let admission: AdmissionQueue | undefined;
    let links: LinkSigner | undefined;
    // Every append nudges the dispatcher (once it runs), so events go out at once rather than at the next timer tick.
    let events: { dispatcher: EventDispatcher | undefined } | undefined;
    const audit: AuditLog = {
        append: async (event) => {
            const record = await stored.append(event);
            // After the commit: a crash in between leaves the anchor one behind, which verification tolerates and the
            // next append (or this one retried: appends are idempotent by eventId) moves on.
            await anchors.record(record.runId, record.seq, record.hash);
            events?.dispatcher?.nudge();
            return record;
        },
        list: (runId, limit, token) => stored.list(runId, limit, token),
        latest: (runId, limit) => stored.latest(runId, limit),
        all: (runId) => stored.all(runId),
    };
    let engine: EngineClient | undefined;
    const lazyEngine: EngineClient = timedEngine({
        invoke: (req) => (engine ??= new HttpEngineClient(engineConfig())).invoke(req),
    });
    let auth: JwtAuthenticator | undefined;
    let directory: Directory | undefined;
    let notify: Omit<NotifyPorts, 'info' | 'warn'> | undefined;
    const now = (): Date => new Date();
    return {
        runs,
        audit,
        policies,
        get auth() {
            return (auth ??= new JwtAuthenticator(authConfig()));
        },
        engine: lazyEngine,
        steps: { runs, audit, engine: lazyEngine, now, seals },
        now,
        outbox,
        get events() {
            events ??= { dispatcher: buildDispatcher(outbox) };
            return events.dispatcher;
        },
        linkUses,
        get links() {
            return (links ??= new JoseLinkSigner(linkKeySource(secrets, linkConfig())));
        },
        secrets,
        decisionSeals: seals,
        get directory() {
            return (directory ??= buildDirectory());
        },
        get notify() {
            return (notify ??= buildNotify(this));
        },
        slots: stores.slots,
        slotFreed: (ms) =>
            new Promise<void>((resolve) => {
                const done = (): void => {
                    clearTimeout(timer);
                    freed.off('freed', done);
                    resolve();
                };
                const timer = setTimeout(done, ms);
                freed.once('freed', done);
            }),
        reclaimSlots: () => {
            if (Date.now() - reclaimedAt < 5_000) return reclaiming ?? Promise.resolve();
            reclaimedAt = Date.now();
            reclaiming = reclaimSlots({ slots: stores.slots, runs: stores.runs })
                .then((runIds) => {
                    if (runIds.length) {
                        console.warn(`admission: reclaimed ${runIds.length} slots of runs no longer executing`);
                        freed.emit('freed');
                    }
                })
                .finally(() => (reclaiming = undefined));
            return reclaiming;
        },
        get admission() {
            return (admission ??= buildAdmissionQueue());
        },
        rateCounters: stores.rateCounters,
        retention: stores.retention,
        forDisplay,
        verifyTrail: async (runId, records) => {
            const [ring, anchor] = await Promise.all([
                ringFor(
                    chainKeys,
                    records.map((r) => r.kid),
                ),
                anchors.head(runId),
            ]);
            return verifyChain(records, ring, anchor);
        },
    };
}

/**
 * The checkpoint policy's `personalData` setting, read at most every 2 seconds (a log page or an outbox batch shows
 * many records; a policy change reaches every reader within that time).
 */
function policySetting(policies: PolicyStore): () => Promise<PersonalDataMode> {
    let read: { at: number; mode: Promise<PersonalDataMode> } | undefined;
    return () => {
        if (!read || Date.now() - read.at > 2_000) {
            const mode = policies.get().then(personalDataOf);
            mode.catch(() => (read = undefined));
            read = { at: Date.now(), mode };
        }
        return read.mode;
    };
}

/** Where run heads are anchored: the WORM blob container on Azure, else the local anchor store (adapters/audit). */
function buildAnchors(cfg: AnchorConfig): ChainAnchors {
    if (cfg.kind === 'blob') return new BlobChainAnchors(cfg);
    if (cfg.kind === 'file') {
        let local: SqliteChainAnchors | undefined;
        const open = (): SqliteChainAnchors => (local ??= new SqliteChainAnchors(cfg.dir));
        return {
            record: (runId, seq, hash) => open().record(runId, seq, hash),
            head: (runId) => open().head(runId),
        };
    }
    const missing = (): Promise<never> =>
        Promise.reject(
            new Error('No audit anchor store: set MESH_AUDIT_ANCHOR_CONTAINER_URL (or MESH_KEYS_DIR for a local one).'),
        );
    return { record: missing, head: missing };
}

/** The app's stores: embedded SQLite under MESH_DATA_DIR (the default), or Cosmos DB (`MESH_STORE=cosmos`). */
function openStores(chainKeys: ChainKeyLoader): AppStores {
    const store = storeConfig();
    if (store.kind === 'cosmos') {
        // Loaded only when selected: the embedded default never loads the Cosmos SDK.
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { parseCosmosConfig } = require('./cosmos/config') as typeof import('./cosmos/config');
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { openCosmosStores } = require('./cosmos/cosmosStores') as typeof import('./cosmos/cosmosStores');
        return openCosmosStores(parseCosmosConfig(process.env), { chainKeys });
    }
    return openEmbeddedStores(store.dataDir, { chainKeys });
}

/**
 * Frees a run's admission slot when an update stops it executing (it waits for a person, is paused, or ends), and
 * tells local waiters. Every status change goes through `update`, so this is the one place slots are released.
 */
function releasingSlots(runs: RunStore, slots: AdmissionSlots, freed: () => void): RunStore {
    return {
        ...delegatingRuns(runs),
        update: async (id, mutate) => {
            let before: RunDoc['status'] | undefined;
            const after = await runs.update(id, (run) => {
                before = run.status;
                return mutate(run);
            });
            if (before !== undefined && slotFreedBy(before, after.status)) {
                await slots.release(id);
                freed();
            }
            return after;
        },
    };
}

/** Service Bus when `ServiceBusConnection` (or its `__fullyQualifiedNamespace`) is set; else the embedded queue. */
function buildAdmissionQueue(): AdmissionQueue {
    const name = scaleConfig().admissionQueue;
    const connection = serviceBusConnectionOf(process.env);
    if (connection) return new ServiceBusAdmissionQueue(connection, name);
    return new EmbeddedAdmissionQueue(openSqliteQueue(storeConfig().dataDir), name);
}

/** Key Vault (cached, SDK loaded on first read) when `KEY_VAULT_URL` is set; else the local secret store. */
function buildSecrets(): SecretStore {
    const cfg = secretsConfig();
    if (cfg.keyVaultUrl) return keyVaultSecretStore(cfg);
    return new LocalSettingsSecretStore(secretEnvironment(), linkConfig().settingsFile);
}

/** Entra ID groups on Azure (MESH_DIRECTORY_GROUPS), else a JSON file (locally). */
function buildDirectory(): Directory {
    const cfg = notifyConfig();
    if (cfg.directoryGroups) return new EntraDirectory(parseGroupMappings(cfg.directoryGroups), graphToken());
    return new JsonDirectory(cfg.directoryFile);
}

function buildNotify(d: Pick<Deps, 'runs' | 'directory' | 'links' | 'now'>): Omit<NotifyPorts, 'info' | 'warn'> {
    const cfg = notifyConfig();
    const base = cfg.publicBaseUrl;
    return {
        runs: d.runs,
        directory: d.directory,
        links: d.links,
        notifiers: [
            emailNotifier(cfg),
            new TeamsNotifier(cfg.teamsWebhookUrl),
            new SlackNotifier(cfg.slackWebhookUrl),
            new WebhookNotifier(cfg.webhookUrl, cfg.webhookSecret),
        ].map(tracedNotifier),
        log: countingNotifications(
            cfg.outboxDir ? new OutboxFile(outboxPath(cfg.outboxDir)) : new MemoryNotificationLog(),
        ),
        linkUrl: (token) => {
            if (!base) throw new Error('Set PUBLIC_BASE_URL (or WEBSITE_HOSTNAME): approval links need an origin.');
            return `${base}/approvals/${token}`;
        },
        // Shared channels link the run's page in the dashboard, where the clicker must sign in and the API checks what
        // they may do (docs/decisions.md 22).
        runUrl: (runId) => {
            if (!base) throw new Error('Set PUBLIC_BASE_URL (or WEBSITE_HOSTNAME): channel messages need an origin.');
            return `${base}/dashboard?view=run:${encodeURIComponent(runId)}`;
        },
        localOutbox: cfg.outboxDir !== undefined,
        now: d.now,
    };
}

function buildDispatcher(outbox: EventOutbox): EventDispatcher | undefined {
    const config = eventGridConfig();
    if (!config) return undefined;
    return new EventDispatcher(outbox, new EventGridPublisher(config), {
        log: (level, message) => (level === 'error' ? console.error(message) : console.warn(message)),
    });
}
