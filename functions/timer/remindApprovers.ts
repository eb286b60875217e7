/**
 * remindApprovers: reminders before a checkpoint's deadline (issue 4). Every minute (`MESH_REMINDER_SCHEDULE`), the
 * runs awaiting approval are read and each open or escalated checkpoint with at most `MESH_REMINDER_FRACTION` of its
 * deadline's window left gets one reminder per approver per channel, with fresh signed links. What was sent is in
 * the notifications record (the local outbox), so the next tick, or a restarted host, never reminds twice for the
 * same deadline; an escalation's new deadline gets its own reminder.
 */
import { app, InvocationContext, Timer } from '@azure/functions';

import { DEFAULT_REMINDER_SCHEDULE, reminderConfig } from '../../adapters/config';
import { atRegistration } from '../../adapters/configCheck';
import { type Deps, deps } from '../../adapters/deps';
import { remindApprovers as remind } from '../../domain/notify';

export async function remindApprovers(
    _timer: Timer,
    ctx: InvocationContext,
    d: Pick<Deps, 'runs' | 'notify'>,
    fraction = reminderConfig().fraction,
): Promise<void> {
    const summary = await remind({ ...d.notify, info: (m) => ctx.info(m), warn: (m) => ctx.warn(m) }, d.runs, fraction);
    if (summary.sent || summary.failed)
        ctx.info(`remindApprovers: ${summary.due} checkpoints due; ${summary.sent} sent, ${summary.failed} failed`);
}

app.timer('remindApprovers', {
    schedule: atRegistration(() => reminderConfig().schedule, DEFAULT_REMINDER_SCHEDULE),
    handler: (timer: Timer, ctx: InvocationContext) => remindApprovers(timer, ctx, deps()),
});
