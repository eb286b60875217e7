/**
 * How a notification looks on each channel: an e-mail (HTML and text), a Teams Adaptive Card 1.5, a Slack Block Kit
 * message and the webhook's JSON body. Pure functions of the message, so tests validate them against schemas.
 */
import { CHANNEL_RECIPIENT } from '../../domain/notify';
import type { NotificationLink, NotificationMessage } from '../../domain/ports';

export const DECISION_LABELS: Record<NotificationLink['decision'], string> = {
    approve: 'Approve',
    reject: 'Reject',
    request_info: 'Request info',
    open: 'Open in Mesh Orchestrator (sign in)',
};

/** A shared channel's message is for everyone in it: no "For <name>" line. */
function forChannel(m: NotificationMessage): boolean {
    return m.recipient.id === CHANNEL_RECIPIENT.id;
}

/** Slack caps header text at 150 characters and button text at 75; Teams has no hard cap but truncates too. */
function clip(text: string, max: number): string {
    return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function renderEmail(m: NotificationMessage): { subject: string; text: string; html: string } {
    const text = [
        `Hello ${m.recipient.name},`,
        '',
        ...m.lines,
        ...(m.links.length
            ? [
                  '',
                  m.links.every((l) => l.decision === 'open')
                      ? 'Open the run (sign in):'
                      : 'Decide with one of these links (each works once):',
                  ...m.links.map((l) => `${DECISION_LABELS[l.decision]}: ${l.url}`),
              ]
            : []),
        '',
        '— Mesh Orchestrator',
    ].join('\n');
    const buttons = m.links
        .map(
            (l) =>
                `<a href="${escapeHtml(l.url)}" style="display:inline-block;margin-right:8px;padding:8px 14px;` +
                `border-radius:4px;background:${l.decision === 'approve' ? '#107c10' : l.decision === 'reject' ? '#a4262c' : '#605e5c'};` +
                `color:#fff;text-decoration:none">${DECISION_LABELS[l.decision]}</a>`,
        )
        .join('');
    const html =
        `<!doctype html><html><body style="font-family:Segoe UI,Arial,sans-serif">` +
        `<p>Hello ${escapeHtml(m.recipient.name)},</p>` +
        m.lines.map((l) => `<p>${escapeHtml(l)}</p>`).join('') +
        (buttons
            ? `<p>${buttons}</p>` +
              (m.links.some((l) => l.decision !== 'open')
                  ? `<p style="color:#605e5c;font-size:12px">Each link works once.</p>`
                  : '')
            : '') +
        `<p style="color:#605e5c">— Mesh Orchestrator</p></body></html>`;
    return { subject: m.subject, text, html };
}

/** An Adaptive Card 1.5 with one Action.OpenUrl per link (the link's confirm page; opening it changes nothing). */
export function adaptiveCard(m: NotificationMessage): Record<string, unknown> {
    return {
        type: 'AdaptiveCard',
        $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
        version: '1.5',
        body: [
            { type: 'TextBlock', text: m.subject, weight: 'Bolder', size: 'Medium', wrap: true },
            ...(forChannel(m)
                ? []
                : [
                      {
                          type: 'TextBlock',
                          text: `For ${m.recipient.name}`,
                          isSubtle: true,
                          spacing: 'None',
                          wrap: true,
                      },
                  ]),
            ...m.lines.map((line) => ({ type: 'TextBlock', text: line, wrap: true })),
            {
                type: 'FactSet',
                facts: [
                    { title: 'Run', value: m.runId },
                    ...(m.checkpointId ? [{ title: 'Checkpoint', value: m.checkpointId }] : []),
                ],
            },
        ],
        ...(m.links.length
            ? {
                  actions: m.links.map((l) => ({
                      type: 'Action.OpenUrl',
                      title: DECISION_LABELS[l.decision],
                      url: l.url,
                      ...(l.decision === 'approve'
                          ? { style: 'positive' }
                          : l.decision === 'reject'
                            ? { style: 'destructive' }
                            : {}),
                  })),
              }
            : {}),
    };
}

/** What a Teams incoming webhook (or Workflows webhook) takes: a message with the card as its one attachment. */
export function teamsPayload(m: NotificationMessage): Record<string, unknown> {
    return {
        type: 'message',
        attachments: [
            { contentType: 'application/vnd.microsoft.card.adaptive', contentUrl: null, content: adaptiveCard(m) },
        ],
    };
}

/** A Slack incoming-webhook message: header, body, and one url button per link. */
export function slackPayload(m: NotificationMessage, to: string): Record<string, unknown> {
    const mention = /^[UW][A-Z0-9]+$/.test(to) ? `<@${to}>` : escapeMrkdwn(m.recipient.name);
    return {
        text: m.subject,
        blocks: [
            { type: 'header', text: { type: 'plain_text', text: clip(m.subject, 150), emoji: true } },
            {
                type: 'section',
                text: {
                    type: 'mrkdwn',
                    text: clip(
                        [...(forChannel(m) ? [] : [`For ${mention}`]), ...m.lines.map(escapeMrkdwn)].join('\n'),
                        3000,
                    ),
                },
            },
            {
                type: 'context',
                elements: [
                    {
                        type: 'mrkdwn',
                        text: escapeMrkdwn(`Run ${m.runId}${m.checkpointId ? ` · checkpoint ${m.checkpointId}` : ''}`),
                    },
                ],
            },
            ...(m.links.length
                ? [
                      {
                          type: 'actions',
                          elements: m.links.map((l) => ({
                              type: 'button',
                              action_id: `mesh_${l.decision}`,
                              text: { type: 'plain_text', text: DECISION_LABELS[l.decision], emoji: false },
                              url: l.url,
                              ...(l.decision === 'approve'
                                  ? { style: 'primary' }
                                  : l.decision === 'reject'
                                    ? { style: 'danger' }
                                    : {}),
                          })),
                      },
                  ]
                : []),
        ],
    };
}

/** The webhook's JSON body: the message as data, for integrations to render themselves. */
export function webhookPayload(m: NotificationMessage, to: string): Record<string, unknown> {
    return {
        eventId: m.eventId,
        eventType: m.eventType,
        runId: m.runId,
        checkpointId: m.checkpointId,
        to,
        recipient: { id: m.recipient.id, name: m.recipient.name },
        subject: m.subject,
        lines: m.lines,
        links: m.links,
    };
}

export function escapeHtml(s: string): string {
    return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function escapeMrkdwn(s: string): string {
    return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
