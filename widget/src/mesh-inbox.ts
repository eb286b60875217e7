/**
 * `<mesh-inbox>`: what waits for the caller, oldest first: checkpoints they may decide (approve / reject / request
 * info, with a comment) and information requests on their runs to answer. Four-eyes: a run's submitter is never
 * offered a decision on it. Reads `GET /pipeline/inbox`; where the API has no inbox yet it falls back to the runs
 * awaiting approval that the caller's roles could decide.
 */
import { Task } from '@lit/task';
import { css, html, LitElement, nothing } from 'lit';

import { type Caller, can, type InfoRequest, type MeshApi, MeshApiError, type RunSummary } from './api';
import { field, time } from './format';
import { tokens } from './theme';

export interface InboxItem {
    action: 'decide' | 'answer';
    checkpointId: string;
    orchestrationID: string;
    title?: string | null;
    team: string;
    riskLevel: string;
    stage: string;
    position: string;
    since?: string;
    deadline: string;
    approvals?: { have: number; need: number };
    escalated?: boolean;
    requiredRoles: string[];
    infoRequest?: InfoRequest;
    /** Known only in the fallback (from the run summary); the inbox itself never lists the submitter's own runs. */
    createdBy?: string;
}

export class MeshInbox extends LitElement {
    static override properties = {
        api: { attribute: false },
        caller: { attribute: false },
        tick: { state: true },
        notice: { state: true },
    };

    declare api: MeshApi | undefined;
    declare caller: Caller | undefined;
    declare tick: number;
    declare notice: string;

    constructor() {
        super();
        this.tick = 0;
        this.notice = '';
    }

    static override styles = [
        tokens,
        css`
            :host {
                display: block;
            }
            ul {
                list-style: none;
                padding: 0;
                display: grid;
                gap: 0.8em;
            }
            li {
                border: 1px solid var(--mesh-border, #d0d7de);
                border-radius: var(--mesh-radius, 6px);
                padding: 0.6em 0.8em;
            }
            form {
                display: flex;
                flex-wrap: wrap;
                gap: 0.5em;
                align-items: end;
                margin-top: 0.5em;
            }
            label {
                display: flex;
                flex-direction: column;
                flex: 1 1 16em;
            }
            h3 {
                margin: 0 0 0.2em;
                font-size: 1em;
            }
        `,
    ];

    private load = new Task(this, {
        task: async ([api]): Promise<InboxItem[]> => {
            if (!api) return [];
            try {
                const inbox = await api.call<{ items: InboxItem[] }>('GET', '/pipeline/inbox', undefined, {
                    expected: [404],
                });
                return inbox.items;
            } catch (e: unknown) {
                if (!(e instanceof MeshApiError) || e.detail.status !== 404) throw e;
            }
            return this.fallback(api);
        },
        args: () => [this.api, this.tick] as const,
    });

    /** Before `GET /pipeline/inbox`: runs awaiting approval whose checkpoint the caller's roles could decide. */
    private async fallback(api: MeshApi): Promise<InboxItem[]> {
        const page = await api.call<{ items: RunSummary[] }>('GET', '/pipeline?status=AwaitingApproval&limit=200');
        const c = this.caller;
        return page.items
            .filter((r) => r.nextAction && c && can.decide(c, r.nextAction.requiredRoles) && r.createdBy !== c.sub)
            .map((r) => ({
                action: 'decide' as const,
                checkpointId: r.nextAction!.checkpointId,
                orchestrationID: r.orchestrationID,
                title: r.title,
                team: r.team,
                riskLevel: r.riskLevel,
                stage: r.nextAction!.stage,
                position: r.nextAction!.position,
                deadline: r.nextAction!.deadline,
                requiredRoles: r.nextAction!.requiredRoles,
                createdBy: r.createdBy,
            }))
            .reverse();
    }

    private async decide(e: SubmitEvent, item: InboxItem): Promise<void> {
        e.preventDefault();
        const form = e.currentTarget as HTMLFormElement;
        const decision = (e.submitter as HTMLButtonElement | null)?.value ?? '';
        const comment = field(form, 'comment');
        if (!this.api) return;
        if (decision === 'request_info' && !comment) {
            this.notice = 'Say what information you need in the comment.';
            return;
        }
        try {
            await this.api.call('POST', `/pipeline/checkpoints/${encodeURIComponent(item.checkpointId)}/decision`, {
                decision,
                ...(comment ? { comment } : {}),
            });
        } catch {
            return; // shown by the dashboard
        }
        this.notice = `${decision === 'request_info' ? 'Information requested' : `${decision[0]?.toUpperCase()}${decision.slice(1)}d`}: ${item.title ?? item.orchestrationID}.`;
        this.dispatchEvent(
            new CustomEvent('mesh-decided', {
                detail: { checkpointId: item.checkpointId, decision },
                bubbles: true,
                composed: true,
            }),
        );
        this.tick++;
    }

    private async answer(e: SubmitEvent, item: InboxItem): Promise<void> {
        e.preventDefault();
        const form = e.currentTarget as HTMLFormElement;
        const comment = field(form, 'comment');
        if (!comment || !this.api) return;
        try {
            await this.api.call('POST', `/pipeline/checkpoints/${encodeURIComponent(item.checkpointId)}/info`, {
                comment,
            });
        } catch {
            return;
        }
        this.notice = `Answer sent: ${item.title ?? item.orchestrationID}.`;
        this.tick++;
    }

    private open(id: string): void {
        this.dispatchEvent(
            new CustomEvent('mesh-navigate', { detail: { view: `run:${id}` }, bubbles: true, composed: true }),
        );
    }

    override render(): unknown {
        return html`
            <h2>Inbox</h2>
            ${this.notice ? html`<p role="status">${this.notice}</p>` : nothing}
            ${this.load.render({
                pending: () => html`<p class="muted">Loading what waits for you…</p>`,
                complete: (items) =>
                    items.length
                        ? html`<ul part="inbox">
                              ${items.map((i) => this.item(i))}
                          </ul>`
                        : html`<p part="empty">Nothing waits for you.</p>`,
                error: () => html`<p class="muted">The inbox could not be loaded.</p>`,
            })}
        `;
    }

    private item(i: InboxItem): unknown {
        const c = this.caller;
        const submitter = !!c && i.createdBy === c.sub;
        const name = i.title ?? i.orchestrationID;
        return html`<li part="inbox-item" data-checkpoint=${i.checkpointId} data-action=${i.action}>
            <h3>
                <button type="button" class="link" @click=${() => this.open(i.orchestrationID)}>${name}</button>
            </h3>
            <div class="muted">
                ${i.action === 'decide' ? 'Approval' : 'Information requested'} ${i.position} ${i.stage} · team
                ${i.team} · risk ${i.riskLevel}
                ${i.approvals ? html` · approvals ${i.approvals.have} of ${i.approvals.need}` : nothing}
                ${i.escalated ? ' · escalated' : ''} ${i.since ? html` · waiting since ${time(i.since)}` : nothing} ·
                due ${time(i.deadline)}
            </div>
            ${
                i.infoRequest
                    ? html`<p>
                          ${i.infoRequest.by} asked: <q>${i.infoRequest.comment ?? ''}</q> (${time(i.infoRequest.at)})
                      </p>`
                    : nothing
            }
            ${
                i.action === 'answer'
                    ? html`<form @submit=${(e: SubmitEvent) => this.answer(e, i)}>
                          <label
                              >Your answer
                              <textarea name="comment" required rows="2"></textarea>
                          </label>
                          <button type="submit" class="primary">Send answer</button>
                      </form>`
                    : html`<form @submit=${(e: SubmitEvent) => this.decide(e, i)}>
                          <label
                              >Comment
                              <textarea
                                  name="comment"
                                  rows="2"
                                  placeholder="optional; required to request info"
                              ></textarea>
                          </label>
                          ${
                              submitter
                                  ? html`<span class="muted">You submitted this run: someone else decides it.</span>`
                                  : html`<button type="submit" value="approve" class="primary">Approve</button>
                                        <button type="submit" value="reject" class="danger">Reject</button>
                                        <button type="submit" value="request_info">Request info</button>`
                          }
                      </form>`
            }
        </li>`;
    }
}

if (!customElements.get('mesh-inbox')) customElements.define('mesh-inbox', MeshInbox);
