/**
 * The one place the Prometheus registry and every metric are created (SPEC "Observability (v1.1)", STYLE.md §11).
 * Code asks for `meshMetrics()` and increments; nothing else configures prom-client. Labels take values from small
 * fixed sets only (status, stage, outcome, channel, route template, ...): never run or checkpoint ids or personal data.
 *
 * Gauges that describe stored state (runs by status, checkpoints open and the oldest wait, the admission queue, events
 * pending) are computed at scrape time from the stores (`StateSource`), so every instance reports the same, right
 * after a restart too. Counters and histograms count what this process did (Prometheus sums instances).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import { RUN_STATUSES } from '../../domain/pipeline';

/** What the scrape-time gauges read from the stores; every call should be a cheap count query. */
export interface StateSource {
    /** How many runs are in each status (statuses with none may be left out). */
    runsByStatus(): Promise<Partial<Record<string, number>>>;
    /** Open checkpoints and when the one waiting longest opened (ISO; undefined when none is open). */
    openCheckpoints(): Promise<{ open: number; oldestOpenedAt: string | undefined }>;
    /** Runs waiting for an admission slot. */
    admissionQueueDepth(): Promise<number>;
    /** Lifecycle events recorded but not yet published. */
    eventsPending(): Promise<number>;
}

interface Snapshot {
    byStatus: Partial<Record<string, number>>;
    open: number;
    oldestOpenedAt: string | undefined;
    queued: number;
    pending: number;
}

/** Decisions label `mesh_checkpoint_decision_seconds`; anything else is reported as `other`. */
export const DECISION_LABELS = ['approve', 'reject', 'request_info', 'other'] as const;

/** Human waits: from seconds to days. */
const WAIT_BUCKETS = [1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400];

export function createMetrics(opts: { defaults?: boolean; now?: () => number } = {}) {
    const registry = new Registry();
    if (opts.defaults !== false) collectDefaultMetrics({ register: registry });
    const now = opts.now ?? Date.now;
    let source: (() => StateSource | undefined) | undefined;
    let reading: Promise<Snapshot | undefined> | undefined;

    /**
     * One store read per scrape: a scrape starts every gauge's `collect` in the same tick, so they share the read in
     * flight; the next scrape reads afresh (never a cached, stale value).
     */
    const read = (): Promise<Snapshot | undefined> => {
        if (reading) return reading;
        const s = source?.();
        reading = (
            s
                ? Promise.all([s.runsByStatus(), s.openCheckpoints(), s.admissionQueueDepth(), s.eventsPending()]).then(
                      ([byStatus, cp, queued, pending]) => ({ byStatus, ...cp, queued, pending }),
                      (e: unknown) => {
                          // A scrape must still answer (process metrics, counters); the store gauges say NaN (unknown), not 0.
                          console.warn(
                              `metrics: reading the stores failed: ${e instanceof Error ? e.message : String(e)}`,
                          );
                          return undefined;
                      },
                  )
                : Promise.resolve(undefined)
        ).finally(() => (reading = undefined));
        return reading;
    };

    const metrics = {
        registry,
        runsSubmitted: new Counter({
            name: 'mesh_runs_submitted_total',
            help: 'Runs submitted (accepted), by team and risk level.',
            labelNames: ['team', 'risk'] as const,
            registers: [registry],
        }),
        runsFinished: new Counter({
            name: 'mesh_runs_finished_total',
            help: 'Runs that reached a terminal status, by that status.',
            labelNames: ['status'] as const,
            registers: [registry],
        }),
        runs: new Gauge({
            name: 'mesh_runs',
            help: 'Runs in each status (read from the store at scrape time).',
            labelNames: ['status'] as const,
            registers: [registry],
            async collect() {
                const s = await read();
                this.reset();
                if (!s) return;
                for (const status of RUN_STATUSES) this.set({ status }, s.byStatus[status] ?? 0);
            },
        }),
        stageDuration: new Histogram({
            name: 'mesh_stage_duration_seconds',
            help: 'Engine calls by stage and outcome (success, failure: the engine answered an error, error: no answer).',
            labelNames: ['stage', 'outcome'] as const,
            buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
            registers: [registry],
        }),
        checkpointsOpen: new Gauge({
            name: 'mesh_checkpoints_open',
            help: 'Checkpoints waiting for a decision (read from the store at scrape time).',
            registers: [registry],
            async collect() {
                const s = await read();
                this.reset();
                this.set(s ? s.open : NaN);
            },
        }),
        checkpointOldestWait: new Gauge({
            name: 'mesh_checkpoint_oldest_wait_seconds',
            help: 'How long the longest-waiting open checkpoint has waited (0 when none is open).',
            registers: [registry],
            async collect() {
                const s = await read();
                this.reset();
                if (!s) return this.set(NaN);
                const opened = s.oldestOpenedAt ? Date.parse(s.oldestOpenedAt) : NaN;
                this.set(Number.isFinite(opened) ? Math.max(0, (now() - opened) / 1000) : 0);
            },
        }),
        decisionSeconds: new Histogram({
            name: 'mesh_checkpoint_decision_seconds',
            help: 'From a checkpoint opening to each decision on it, by decision.',
            labelNames: ['decision'] as const,
            buckets: WAIT_BUCKETS,
            registers: [registry],
        }),
        admissionQueueDepth: new Gauge({
            name: 'mesh_admission_queue_depth',
            help: 'Runs waiting for an admission slot (Queued; read from the store at scrape time).',
            registers: [registry],
            async collect() {
                const s = await read();
                this.reset();
                this.set(s ? s.queued : NaN);
            },
        }),
        eventsPending: new Gauge({
            name: 'mesh_events_pending',
            help: 'Lifecycle events recorded but not yet published (read from the outbox at scrape time).',
            registers: [registry],
            async collect() {
                const s = await read();
                this.reset();
                this.set(s ? s.pending : NaN);
            },
        }),
        eventDeliveries: new Counter({
            name: 'mesh_event_deliveries_total',
            help: 'Lifecycle events handed to Event Grid, by outcome (delivered, failed: the batch is retried).',
            labelNames: ['outcome'] as const,
            registers: [registry],
        }),
        notifications: new Counter({
            name: 'mesh_notifications_total',
            help: 'Notifications by channel and outcome (sent, failed, outbox: kept locally, the channel not configured).',
            labelNames: ['channel', 'outcome'] as const,
            registers: [registry],
        }),
        httpDuration: new Histogram({
            name: 'mesh_http_request_duration_seconds',
            help: 'HTTP requests by route template, method and status code.',
            labelNames: ['route', 'method', 'status'] as const,
            buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
            registers: [registry],
        }),
        /** Where the scrape-time gauges read the stores (set once by the composition root or the /metrics function). */
        useStateSource(s: () => StateSource | undefined): void {
            source = s;
        },
    };
    return metrics;
}

export type MeshMetrics = ReturnType<typeof createMetrics>;

let instance: MeshMetrics | undefined;

/** The process's metrics, created on first use. */
export function meshMetrics(): MeshMetrics {
    return (instance ??= createMetrics());
}

/** A decision as a label value from the fixed set. */
export function decisionLabel(decision: string): (typeof DECISION_LABELS)[number] {
    return (DECISION_LABELS as readonly string[]).includes(decision)
        ? (decision as (typeof DECISION_LABELS)[number])
        : 'other';
}
