/**
 * Counters and histograms fed where things happen, without metric code in `domain/`: the run store sees every
 * submission (`create`), every status change and every decision (`update`, before and after), once per change that
 * took effect; the engine port sees every engine call.
 */
import { isTerminal } from '../../domain/pipeline';
import type { EngineClient, NotificationLog, RunStore } from '../../domain/ports';
import type { RunDoc } from '../../domain/run';
import { decisionLabel, type MeshMetrics, meshMetrics } from './metrics';

/** `runs` counting submissions, finishes and decisions into `mesh_runs_*` and `mesh_checkpoint_decision_seconds`. */
export function countingRuns(runs: RunStore, m: () => MeshMetrics = meshMetrics): RunStore {
    return {
        ...delegatingRuns(runs),
        create: async (run) => {
            const result = await runs.create(run);
            if (result.created) {
                const { team, riskLevel } = result.run.metadata;
                m().runsSubmitted.inc({ team, risk: riskLevel });
            }
            return result;
        },
        update: async (id, mutate) => {
            let before: RunDoc | undefined;
            const after = await runs.update(id, (run) => {
                before = run;
                return mutate(run);
            });
            if (before) countChange(m(), before, after);
            return after;
        },
    };
}

/**
 * Every method of `runs`, passed through (bound: the stores are classes); decorators spread it and replace what they
 * change, so a method added to the port needs one line here, not one in each decorator.
 */
export function delegatingRuns(runs: RunStore): RunStore {
    return {
        create: (run) => runs.create(run),
        get: (id) => runs.get(id),
        update: (id, mutate) => runs.update(id, mutate),
        list: (filter, limit, token) => runs.list(filter, limit, token),
        count: (filter) => runs.count(filter),
        stateCounts: () => runs.stateCounts(),
        changesSince: (cursor, limit) => runs.changesSince(cursor, limit),
        putOutput: (runId, key, output) => runs.putOutput(runId, key, output),
        getOutput: (runId, key) => runs.getOutput(runId, key),
        ping: () => runs.ping(),
    };
}

function countChange(m: MeshMetrics, before: RunDoc, after: RunDoc): void {
    if (!isTerminal(before.status) && isTerminal(after.status)) m.runsFinished.inc({ status: after.status });
    for (const cp of after.checkpoints) {
        const was = before.checkpoints.find((c) => c.checkpointId === cp.checkpointId);
        const known = was?.decisions.length ?? 0;
        if (cp.decisions.length <= known || !cp.openedAt) continue;
        const opened = Date.parse(cp.openedAt);
        for (const d of cp.decisions.slice(known)) {
            const seconds = (Date.parse(d.at) - opened) / 1000;
            if (Number.isFinite(seconds))
                m.decisionSeconds.observe({ decision: decisionLabel(d.decision) }, Math.max(0, seconds));
        }
    }
}

/** `engine` timing each call into `mesh_stage_duration_seconds{stage,outcome}` (success, failure, error). */
export function timedEngine(engine: EngineClient, m: () => MeshMetrics = meshMetrics): EngineClient {
    return {
        invoke: async (req) => {
            const started = performance.now();
            const seconds = (): number => (performance.now() - started) / 1000;
            try {
                const result = await engine.invoke(req);
                m().stageDuration.observe({ stage: req.stage, outcome: result.ok ? 'success' : 'failure' }, seconds());
                return result;
            } catch (e: unknown) {
                m().stageDuration.observe({ stage: req.stage, outcome: 'error' }, seconds());
                throw e;
            }
        },
    };
}

/**
 * `log` counting each notification as it is recorded (once per event, person and channel) into
 * `mesh_notifications_total{channel,outcome}`: `sent`, `failed`, or `outbox` (kept locally, the channel not configured).
 */
export function countingNotifications(log: NotificationLog, m: () => MeshMetrics = meshMetrics): NotificationLog {
    return {
        has: (key) => log.has(key),
        record: async (entry) => {
            await log.record(entry);
            const outcome = entry.status === 'sent' && entry.note !== undefined ? 'outbox' : entry.status;
            m().notifications.inc({ channel: entry.channel, outcome });
        },
    };
}
