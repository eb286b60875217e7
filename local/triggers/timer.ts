/**
 * timerTrigger: NCRONTAB schedules (six fields, seconds first, as Azure Functions uses) and TimeSpan
 * schedules ("hh:mm:ss"), `runOnStartup`, and the `Timer` object (`isPastDue`, `scheduleStatus`).
 */
import type { Timer } from '@azure/functions';
import { CronExpressionParser } from 'cron-parser';

import { FunctionRegistration } from '../functionsCore';
import { invocationContext } from '../invoke';
import { TriggerAdapter, TriggerHost } from './types';

export function nextOccurrence(schedule: string, after: Date): Date {
    const span = /^(\d+):(\d{2}):(\d{2})$/.exec(schedule.trim());
    if (span) {
        const ms = ((Number(span[1]) * 60 + Number(span[2])) * 60 + Number(span[3])) * 1000;
        if (ms <= 0) throw new Error(`Invalid TimeSpan schedule '${schedule}'.`);
        return new Date(after.getTime() + ms);
    }
    const fields = schedule.trim().split(/\s+/);
    if (fields.length !== 6)
        throw new Error(
            `Invalid NCRONTAB schedule '${schedule}': Azure Functions expects six fields (second minute hour day month day-of-week).`,
        );
    return CronExpressionParser.parse(schedule, { currentDate: after, tz: 'UTC' }).next().toDate();
}

export class TimerTriggerAdapter implements TriggerAdapter {
    readonly type = 'timerTrigger';
    private readonly handles = new Set<NodeJS.Timeout>();
    private stopped = false;

    start(functions: FunctionRegistration[], host: TriggerHost): void {
        for (const f of functions) {
            const schedule = String(f.trigger.schedule ?? '');
            nextOccurrence(schedule, new Date()); // fail fast on a bad schedule
            let last: Date | undefined;
            const fire = async (due: Date): Promise<void> => {
                const now = new Date();
                const ctx = invocationContext(host.registry, f, host.clientData(), host.log);
                const next = nextOccurrence(schedule, now);
                // The Timer object as the Functions host passes it (UTC schedules: no DST adjustment).
                const timer: Timer = {
                    isPastDue: now.getTime() - due.getTime() > 1_000,
                    schedule: { adjustForDST: false },
                    scheduleStatus: {
                        last: (last ?? due).toISOString(),
                        next: next.toISOString(),
                        lastUpdated: now.toISOString(),
                    },
                };
                last = now;
                try {
                    await f.handler(timer, ctx);
                } catch (e: unknown) {
                    ctx.error(`Timer function '${f.name}' failed: ${e instanceof Error ? e.message : String(e)}`);
                }
            };
            const arm = (): void => {
                if (this.stopped) return;
                const due = nextOccurrence(schedule, new Date());
                const h = setTimeout(
                    () => {
                        this.handles.delete(h);
                        void fire(due).finally(arm);
                    },
                    Math.min(due.getTime() - Date.now(), 2_147_000_000),
                );
                this.handles.add(h);
            };
            if (f.trigger.runOnStartup) void fire(new Date()).finally(arm);
            else arm();
        }
    }

    stop(): void {
        this.stopped = true;
        for (const h of this.handles) clearTimeout(h);
        this.handles.clear();
    }
}
