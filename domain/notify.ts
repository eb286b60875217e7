/**
 * Notification fan-out (issue 4): which lifecycle events notify whom, on which channels, with which links.
 *
 * - `checkpoint.opened` / `checkpoint.escalated`: every person holding one of the checkpoint's required roles (after an
 *   escalation, the widened roles) in the run's team (or Mesh.Admin), never the submitter, on each of the checkpoint's
 *   personal channels (e-mail, the signed webhook): one message per approver per channel, with that approver's signed
 *   links for approve, reject and request_info. Shared channels (Teams, Slack: incoming webhooks post to a channel
 *   everyone in it reads) get one message per checkpoint per channel naming who may decide and the deadline, with no
 *   personal link: only an `open` link to the run's page, where the clicker signs in and the API checks they may decide.
 * - `checkpoint.expired` / `pipeline.failed`: the submitter, when the directory knows an address for them; no links.
 * - The info loop (issue 11): the submitter is also told, on their personal addresses, when a checkpoint opens on their
 *   run and when it is decided (approve, reject, request_info), with only an `open` link to the run's page. A request
 *   for information never quotes the approver's words (they are sealed at rest; the run's page shows them to the
 *   signed-in submitter). `checkpoint.info_provided` (the answer) asks the checkpoint's approvers again, as
 *   `checkpoint.opened` does, with fresh signed links on personal channels; it never quotes the answer either.
 * - Reminders (`remindApprovers`, from a timer): the approvers of a checkpoint whose deadline draws near, as for
 *   `checkpoint.opened`, once per (checkpoint, deadline, person, channel).
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
    'mesh.checkpoint.decided',
    'mesh.checkpoint.info_provided',
] as const;

/** The CloudEvent fields the fan-out reads. */
export interface NotifiableEvent {
    id: string;
    type: string;
    data?: {
        orchestrationID?: string;
        checkpointId?: string;
        reason?: string;
        actor?: string;
        details?: Record<string, unknown>;
    } | null;
}

export interface NotifyPorts {
    runs: Pick<RunStore, 'get'>;
    directory: Directory;
    links: Pick<LinkSigner, 'sign'>;
    notifiers: readonly Notifier[];
    log: NotificationLog;
    /** The approval page of a token: `<public origin>/approvals/<token>`. */
    linkUrl: (token: string) => string;
    /** The run's page behind sign-in, linked from shared channels (decided in docs/decisions.md). */
    runUrl: (runId: string) => string;
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

/**
 * Channels whose messages land where many people read them: Teams and Slack incoming webhooks post to a channel. They
 * never carry a person's one-click links (anyone in the channel could click another person's link).
 */
export const SHARED_CHANNELS: readonly Channel[] = ['teams', 'slack'];

/** Whom a shared-channel message is recorded for (its records' keys are `<source>|#channel|<channel>`). */
export const CHANNEL_RECIPIENT: Person = Object.freeze({ id: '#channel', name: 'Channel', roles: [], teams: [] });

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
        const kind = event.type === 'mesh.checkpoint.escalated' ? 'escalated' : 'opened';
        await requestApprovals(ports, event, run, checkpoint, kind, summary);
        if (kind === 'opened') await tellSubmitter(ports, event, run, checkpoint, summary);
        return summary;
    }
    if (event.type === 'mesh.checkpoint.decided') {
        if (checkpoint) await tellSubmitter(ports, event, run, checkpoint, summary);
        return summary;
    }
    if (event.type === 'mesh.checkpoint.info_provided') {
        if (!checkpoint) return summary;
        if (!OPEN_STATES.has(checkpoint.status)) {
            ports.info(
                `notify: checkpoint ${checkpoint.checkpointId} is ${checkpoint.status}; the answer asks no one.`,
            );
            return summary;
        }
        await requestApprovals(ports, event, run, checkpoint, 'answered', summary);
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

/**
 * Why approvers are asked: the checkpoint opened, escalated to them, its deadline draws near, or the submitter
 * answered a request for information.
 */
type ApprovalKind = 'opened' | 'escalated' | 'reminder' | 'answered';

/**
 * The submitter hears of their run's checkpoint (issue 11): it opened, or someone decided it. Personal channels and
 * addresses only (the checkpoint's e-mail and webhook channels; e-mail when it has neither),
 * one message per (event, submitter, channel), with one link: the run's page behind sign-in. Nobody's words are
 * quoted: a request for information says who asks and sends the submitter to the run's page to read and answer it.
 */
async function tellSubmitter(
    ports: NotifyPorts,
    event: NotifiableEvent,
    run: RunDoc,
    checkpoint: CheckpointState,
    summary: NotifySummary,
): Promise<void> {
    const submitter = await ports.directory.person(run.createdBy);
    if (!submitter) {
        ports.info(`notify: the directory has no address for ${run.createdBy}; ${event.type} not sent.`);
        return;
    }
    const title = run.metadata.title ?? run.id;
    const where = `${checkpoint.position} the ${checkpoint.stage} stage`;
    let subject: string;
    let lines: string[];
    if (event.type === 'mesh.checkpoint.opened') {
        subject = `Your run "${title}" waits for approval`;
        lines = [
            `Your run "${title}" (${run.id}) reached a checkpoint ${where} and waits for approval by ${checkpoint.requiredRoles.join(', ')}.`,
            ...(checkpoint.deadline ? [`Deadline: ${checkpoint.deadline}.`] : []),
        ];
    } else {
        const decision = event.data?.details?.decision;
        const actorId = event.data?.actor ?? 'someone';
        const actor =
            checkpoint.decisions.find((d) => d.actorId === actorId && d.actorName)?.actorName ??
            (await ports.directory.person(actorId))?.name ??
            actorId;
        if (decision === 'request_info') {
            subject = `Information requested for "${title}"`;
            lines = [
                `${actor} asks for more information before deciding the checkpoint ${where} of your run "${title}".`,
                `Open the run (sign in) to read the question and answer it; the approvers are told when you do.`,
            ];
        } else if (decision === 'approve' || decision === 'reject') {
            subject = `${decision === 'approve' ? 'Approved' : 'Rejected'} by ${actor}: "${title}"`;
            lines = [
                `${actor} ${decision === 'approve' ? 'approved' : 'rejected'} the checkpoint ${where} of your run "${title}".`,
                `Checkpoint: ${checkpoint.status}.`,
            ];
        } else return;
    }
    // Personal channels only: a Teams or Slack incoming webhook posts where the whole channel reads.
    const personal = checkpoint.channels.filter((c) => !SHARED_CHANNELS.includes(c));
    const channels = personal.length ? personal : ['email' as const];
    const open = (): Promise<NotificationMessage['links']> =>
        Promise.resolve([{ decision: 'open', url: ports.runUrl(run.id) }]);
    await fanOut(ports, event, run, checkpoint, submitter, channels, subject, lines, open, summary, true);
}

/**
 * One approval request per approver per channel: every person holding one of the checkpoint's current required
 * roles in the run's team (or Mesh.Admin), never the submitter, with fresh signed links. `source` names what the
 * requests answer (an event, or a reminder of one deadline); its id keys the records with person and channel.
 */
async function requestApprovals(
    ports: NotifyPorts,
    source: NotifiableEvent,
    run: RunDoc,
    checkpoint: CheckpointState,
    kind: ApprovalKind,
    summary: NotifySummary,
): Promise<void> {
    const title = run.metadata.title ?? run.id;
    const approvers = await ports.directory.peopleWithRoles(checkpoint.requiredRoles, run.metadata.team);
    const what = `needed for "${title}" (${checkpoint.position} ${checkpoint.stage})`;
    const subject =
        kind === 'reminder'
            ? `Reminder: approval ${what}`
            : kind === 'answered'
              ? `Information provided: approval ${what}`
              : `${kind === 'escalated' ? 'Escalated: approval' : 'Approval'} ${what}`;
    const personal = checkpoint.channels.filter((c) => !SHARED_CHANNELS.includes(c));
    const shared = checkpoint.channels.filter((c) => SHARED_CHANNELS.includes(c));
    const deciders: Person[] = [];
    for (const person of approvers) {
        if (person.id === run.createdBy) continue;
        const claims = linksFor(run, checkpoint, person, undefined, { now: ports.now() });
        if (!claims.length) continue;
        deciders.push(person);
        if (!personal.length) continue;
        let links: NotificationMessage['links'] | undefined;
        const mint = async (): Promise<NotificationMessage['links']> =>
            (links ??= await Promise.all(
                claims.map(async (c) => ({ decision: c.d, url: ports.linkUrl(await ports.links.sign(c)) })),
            ));
        const lines = approvalLines(run, checkpoint, kind);
        await fanOut(ports, source, run, checkpoint, person, personal, subject, lines, mint, summary);
    }
    if (!shared.length || !deciders.length) return;
    // One message per shared channel, for the channel: who may decide, by when, and the run's page behind sign-in.
    const lines = channelLines(run, checkpoint, kind, deciders, personal);
    const open = (): Promise<NotificationMessage['links']> =>
        Promise.resolve([{ decision: 'open', url: ports.runUrl(run.id) }]);
    await fanOut(ports, source, run, checkpoint, CHANNEL_RECIPIENT, shared, subject, lines, open, summary);
}

/** What a reminder is recorded as: one per checkpoint and deadline (an escalation's new deadline is another). */
export const REMINDER_TYPE = 'mesh.checkpoint.reminder';

/** A reminder's id: its records' keys are `<id>|<person>|<channel>`, so each (checkpoint, deadline, person, channel) is reminded once. */
export function reminderId(c: Pick<CheckpointState, 'checkpointId' | 'deadline'>): string {
    return `reminder:${c.checkpointId}@${c.deadline ?? ''}`;
}

/**
 * Whether an open (or escalated) checkpoint is due a reminder at `now`: its deadline has not passed and at most
 * `fraction` of the current deadline's window remains. The window runs from the moment the deadline was set to the
 * deadline: `openedAt` for the first deadline, the previous deadline after an escalation (which extends the
 * deadline by the checkpoint's timeout once); `deadline - openedAt` when the timeout is unknown.
 */
export function reminderDue(c: CheckpointState, now: Date, fraction: number): boolean {
    if (!OPEN_STATES.has(c.status) || !c.deadline || !c.openedAt) return false;
    const deadline = Date.parse(c.deadline);
    const opened = Date.parse(c.openedAt);
    if (!Number.isFinite(deadline) || !Number.isFinite(opened)) return false;
    const start = c.timeoutMs > 0 ? Math.max(opened, deadline - c.timeoutMs) : opened;
    const window = deadline - start;
    const remaining = deadline - now.getTime();
    return window > 0 && remaining > 0 && remaining <= window * fraction;
}

export interface ReminderSummary extends NotifySummary {
    /** Checkpoints that were due a reminder (whether or not anything was left to send). */
    due: number;
}

/**
 * Reminders (issue 4): pages through the runs awaiting approval and, for each checkpoint due a reminder
 * (`reminderDue`), asks its approvers again, as `checkpoint.opened` does, with fresh links and a subject starting
 * with "Reminder:". Durable and idempotent through the notifications record: a later tick, or a restarted host,
 * sends nothing twice for the same deadline. A checkpoint whose reminder throws is logged and tried again next tick.
 */
export async function remindApprovers(
    ports: NotifyPorts,
    runs: Pick<RunStore, 'list'>,
    fraction: number,
    pageSize = 100,
): Promise<ReminderSummary> {
    const summary: ReminderSummary = { sent: 0, failed: 0, skipped: 0, due: 0 };
    const now = ports.now();
    let token: string | undefined;
    do {
        const page = await runs.list({ status: ['AwaitingApproval'] }, pageSize, token);
        for (const run of page.items) {
            for (const checkpoint of run.checkpoints) {
                if (!reminderDue(checkpoint, now, fraction)) continue;
                summary.due++;
                const source = { id: reminderId(checkpoint), type: REMINDER_TYPE };
                try {
                    await requestApprovals(ports, source, run, checkpoint, 'reminder', summary);
                } catch (e: unknown) {
                    summary.failed++;
                    const why = e instanceof Error ? e.message : String(e);
                    ports.warn(`notify: reminder for ${checkpoint.checkpointId} failed: ${why}`);
                }
            }
        }
        token = page.continuationToken;
    } while (token);
    return summary;
}

function approvalLines(run: RunDoc, c: CheckpointState, kind: ApprovalKind): string[] {
    const by = run.createdByName ?? run.createdBy;
    const lead = {
        opened: 'The',
        escalated: 'Escalated to you: the',
        reminder: 'Reminder: the',
        answered: "The requested information was provided (read it on the run's page): the",
    }[kind];
    return [
        `${lead} run "${run.metadata.title ?? run.id}" by ${by} (team ${run.metadata.team}, risk ${run.metadata.riskLevel}) waits for approval ${c.position} the ${c.stage} stage.`,
        `Required roles: ${c.requiredRoles.join(', ')}; approvals needed: ${c.approvals}.`,
        ...(c.deadline ? [`Decide before ${c.deadline}.`] : []),
    ];
}

/** A shared channel's lines: no personal links, so it names who may decide and sends readers to sign in. */
function channelLines(
    run: RunDoc,
    c: CheckpointState,
    kind: ApprovalKind,
    deciders: readonly Person[],
    personal: readonly Channel[],
): string[] {
    const by = run.createdByName ?? run.createdBy;
    const lead = {
        opened: 'The',
        escalated: 'Escalated: the',
        reminder: 'Reminder: the',
        answered: 'Information provided: the',
    }[kind];
    const names = [...new Set(deciders.map((p) => p.name))].sort((a, b) => a.localeCompare(b));
    return [
        `${lead} run "${run.metadata.title ?? run.id}" by ${by} (team ${run.metadata.team}, risk ${run.metadata.riskLevel}) waits for approval ${c.position} the ${c.stage} stage.`,
        `Who may decide: ${names.join(', ')} (${c.requiredRoles.join(', ')}); approvals needed: ${c.approvals}.`,
        ...(c.deadline ? [`Decide before ${c.deadline}.`] : []),
        `Open the run and sign in to decide; only the people named above can.` +
            (personal.length ? ` Each of them also got their own one-click links (${personal.join(', ')}).` : ''),
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
        const to =
            person === CHANNEL_RECIPIENT
                ? 'channel'
                : personalOnly
                  ? personalAddress(person, channel)
                  : notifier.addressOf(person);
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
