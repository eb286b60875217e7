/**
 * The composition root: builds each adapter once per process, lazily, from configuration. Triggers and
 * activities take what they need from here; tests pass fakes to the handler factories instead.
 */
import type { NotifyPorts } from '../domain/notify';
import type {
    AuditLog,
    Directory,
    EngineClient,
    EventOutbox,
    LinkSigner,
    LinkUses,
    PolicyStore,
    RunStore,
    SecretStore,
} from '../domain/ports';
import type { StepPorts } from '../domain/steps';
import { JwtAuthenticator } from './auth/jwtAuthenticator';
import { authConfig, linkConfig, notifyConfig, secretEnvironment, secretsConfig, storeConfig } from './config';
import { EntraDirectory, graphToken, parseGroupMappings } from './directory/entraDirectory';
import { JsonDirectory } from './directory/jsonDirectory';
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
    /** Who holds which roles in which teams (locally: MESH_DIRECTORY, else the sample directory). Built on first use. */
    readonly directory: Directory;
    /** The notification channels, the outbox and the links' origin (issue 4). Built on first use. */
    readonly notify: Omit<NotifyPorts, 'info' | 'warn'>;
}

let built: Deps | undefined;

export function deps(): Deps {
    built ??= build();
    return built;
}

function build(): Deps {
    const store = storeConfig();
    if (store.kind !== 'embedded') throw new Error(`MESH_STORE=${store.kind} is not available in this build.`);
    const { runs, audit: stored, policies, outbox, linkUses } = openEmbeddedStores(store.dataDir);
    const secrets = buildSecrets();
    let links: LinkSigner | undefined;
    // Every append nudges the dispatcher (once it runs), so events go out at once rather than at the next timer tick.
    let events: { dispatcher: EventDispatcher | undefined } | undefined;
    const audit: AuditLog = {
        append: async (event) => {
            const record = await stored.append(event);
            events?.dispatcher?.nudge();
            return record;
        },
        list: (runId, limit, token) => stored.list(runId, limit, token),
        latest: (runId, limit) => stored.latest(runId, limit),
        all: (runId) => stored.all(runId),
    };
    let engine: EngineClient | undefined;
    const lazyEngine: EngineClient = { invoke: (req) => (engine ??= new HttpEngineClient(engineConfig())).invoke(req) };
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
        steps: { runs, audit, engine: lazyEngine, now },
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
        get directory() {
            return (directory ??= buildDirectory());
        },
        get notify() {
            return (notify ??= buildNotify(this));
        },
    };
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
        ],
        log: cfg.outboxDir ? new OutboxFile(outboxPath(cfg.outboxDir)) : new MemoryNotificationLog(),
        linkUrl: (token) => {
            if (!base) throw new Error('Set PUBLIC_BASE_URL (or WEBSITE_HOSTNAME): approval links need an origin.');
            return `${base}/approvals/${token}`;
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
