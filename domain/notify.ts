/**
 * Notification fan-out (issue 4): which lifecycle events notify whom, on which channels, with which links.
 *
 * - `checkpoint.opened` / `checkpoint.escalated`: every person holding one of the checkpoint's required roles (after an
 *   escalation, the widened roles) in the run's team (or Mesh.Admin), never the submitter, on each of the checkpoint's
 *   channels: one message per approver per channel, with signed links for approve, reject and request_info.
 * - `checkpoint.expired` / `pipeline.failed`: the submitter, when the directory knows an address for them; no links.
 *
 * Idempotent per (event id, person, channel): what was sent or failed for good is recorded (`NotificationLog`), so a
 * redelivered event sends nothing twice. Records are not audit records (only SPEC events are); they are the outbox.
 */
import { linksFor } from './links';
import type { Channel } from './policy';
import type { Directory, LinkSigner, NotificationLog, NotificationMessage, Notifier, Person, RunStore } from './ports';
import type { CheckpointState, RunDoc } from './run';

export const NOTIFIED_EVENTS = [
    'mesh.checkpoint.opened',
    'mesh.checkpoint.escalated',
    'mesh.checkpoint.expired',
    'mesh.pipeline.failed',
] as const;

/** The CloudEvent fields the fan-out reads. */
export interface NotifiableEvent {
    id: string;
    type: string;
    data?: { orchestrationID?: string; checkpointId?: string; reason?: string } | null;
}

export interface NotifyPorts {
    runs: Pick<RunStore, 'get'>;
    directory: Directory;
    links: Pick<LinkSigner, 'sign'>;
    notifiers: readonly Notifier[];
    log: NotificationLog;
    /** The approval page of a token: `<public origin>/approvals/<token>`. */
    linkUrl: (token: string) => string;
    /** True on the embedded host: a message for an unconfigured channel is kept in the outbox only. */
    localOutbox: boolean;
    now: () => Date;
    info: (message: string) => void;
    warn: (message: string) => void;
}

export interface NotifySummary {
    sent: number;
    failed: number;
    skipped: number;
}

const OPEN_STATES = new Set<CheckpointState['status']>(['Open', 'Escalated']);

export async function notifyForEvent(ports: NotifyPorts, event: NotifiableEvent): Promise<NotifySummary> {
    const summary: NotifySummary = { sent: 0, failed: 0, skipped: 0 };
    if (!(NOTIFIED_EVENTS as readonly string[]).includes(event.type)) return summary;
    const runId = event.data?.orchestrationID;
    const run = runId ? await ports.runs.get(runId) : undefined;
    if (!run) {
        ports.warn(`notify: ${event.type} ${event.id} names no known run; nothing sent.`);
        return summary;
    }
    const checkpoint = run.checkpoints.find((c) => c.checkpointId === event.data?.checkpointId);
    const title = run.metadata.title ?? run.id;
    if (event.type === 'mesh.checkpoint.opened' || event.type === 'mesh.checkpoint.escalated') {
        if (!checkpoint) return summary;
        if (!OPEN_STATES.has(checkpoint.status)) {
            ports.info(`notify: checkpoint ${checkpoint.checkpointId} is ${checkpoint.status}; no approval requests.`);
            return summary;
        }
        const escalated = event.type === 'mesh.checkpoint.escalated';
        const approvers = await ports.directory.peopleWithRoles(checkpoint.requiredRoles, run.metadata.team);
        for (const person of approvers) {
            if (person.id === run.createdBy) continue;
            const claims = linksFor(run, checkpoint, person, undefined, { now: ports.now() });
            if (!claims.length) continue;
            let links: NotificationMessage['links'] | undefined;
            const mint = async (): Promise<NotificationMessage['links']> =>
                (links ??= await Promise.all(
                    claims.map(async (c) => ({ decision: c.d, url: ports.linkUrl(await ports.links.sign(c)) })),
                ));
            const subject = `${escalated ? 'Escalated: approval' : 'Approval'} needed for "${title}" (${checkpoint.position} ${checkpoint.stage})`;
            const lines = approvalLines(run, checkpoint, escalated);
            await fanOut(ports, event, run, checkpoint, person, checkpoint.channels, subject, lines, mint, summary);
        }
        return summary;
    }
    const submitter = await ports.directory.person(run.createdBy);
    if (!submitter) {
        ports.info(`notify: the directory has no address for ${run.createdBy}; ${event.type} not sent.`);
        return summary;
    }
    const channels = checkpoint?.channels ?? [...new Set(run.checkpoints.flatMap((c) => c.channels))];
    const expired = event.type === 'mesh.checkpoint.expired';
    const subject = expired ? `Approval expired for "${title}"` : `Run "${title}" failed`;
    const reason = event.data?.reason ?? run.error?.message;
    const lines = expired
        ? [
              `No decision reached the checkpoint ${checkpoint ? `${checkpoint.position} ${checkpoint.stage} ` : ''}of your run "${title}" before its deadline.`,
              ...(reason ? [`Outcome: ${reason}`] : []),
          ]
        : [`Your run "${title}" (${run.id}) failed.`, ...(reason ? [`Reason: ${reason}`] : [])];
    const none = (): Promise<NotificationMessage['links']> => Promise.resolve([]);
    await fanOut(
        ports,
        event,
        run,
        checkpoint,
        submitter,
        channels.length ? channels : ['email'],
        subject,
        lines,
        none,
        summary,
        true,
    );
    return summary;
}

function approvalLines(run: RunDoc, c: CheckpointState, escalated: boolean): string[] {
    const by = run.createdByName ?? run.createdBy;
    return [
        `${escalated ? 'Escalated to you: the' : 'The'} run "${run.metadata.title ?? run.id}" by ${by} (team ${run.metadata.team}, risk ${run.metadata.riskLevel}) waits for approval ${c.position} the ${c.stage} stage.`,
        `Required roles: ${c.requiredRoles.join(', ')}; approvals needed: ${c.approvals}.`,
        ...(c.deadline ? [`Decide before ${c.deadline}.`] : []),
    ];
}

async function fanOut(
    ports: NotifyPorts,
    event: NotifiableEvent,
    run: RunDoc,
    checkpoint: CheckpointState | undefined,
    person: Person,
    channels: readonly Channel[],
    subject: string,
    lines: string[],
    links: () => Promise<NotificationMessage['links']>,
    summary: NotifySummary,
    personalOnly = false,
): Promise<void> {
    for (const channel of new Set(channels)) {
        const notifier = ports.notifiers.find((n) => n.channel === channel);
        const key = `${event.id}|${person.id}|${channel}`;
        if (!notifier || (await ports.log.has(key))) {
            summary.skipped++;
            continue;
        }
        const to = personalOnly ? personalAddress(person, channel) : notifier.addressOf(person);
        if (to === undefined) {
            summary.skipped++;
            ports.info(`notify: ${person.id} has no ${channel} address; ${event.type} ${event.id} not sent there.`);
            continue;
        }
        const message: NotificationMessage = {
            eventId: event.id,
            eventType: event.type,
            runId: run.id,
            checkpointId: checkpoint?.checkpointId ?? null,
            recipient: person,
            subject,
            lines,
            links: await links(),
        };
        let status: 'sent' | 'failed' = 'sent';
        let error: string | undefined;
        let note: string | undefined;
        if (!notifier.configured && ports.localOutbox) {
            note = `${channel} is not configured: kept in the local outbox only`;
        } else if (!notifier.configured) {
            status = 'failed';
            error = `${channel} is not configured`;
        } else {
            try {
                await notifier.send(message, to);
            } catch (e: unknown) {
                status = 'failed';
                error = e instanceof Error ? e.message : String(e);
            }
        }
        await ports.log.record({
            key,
            at: ports.now().toISOString(),
            channel,
            to,
            subject,
            runId: run.id,
            checkpointId: message.checkpointId,
            links: message.links,
            status,
            ...(error !== undefined ? { error } : {}),
            ...(note !== undefined ? { note } : {}),
            eventId: event.id,
            eventType: event.type,
            personId: person.id,
        });
        const what = `notify: ${channel} ${status} to ${person.id} for ${event.type} ${event.id}`;
        if (status === 'sent') {
            summary.sent++;
            ports.info(note ? `${what} (${note})` : what);
        } else {
            summary.failed++;
            ports.warn(`${what}: ${error}`);
        }
    }
}

/** The submitter is told only where they have a personal address (a webhook is an integration: always). */
function personalAddress(p: Person, channel: Channel): string | undefined {
    switch (channel) {
        case 'email':
            return p.email;
        case 'teams':
            return p.msTeams;
        case 'slack':
            return p.slack;
        case 'webhook':
            return p.id;
    }
}
