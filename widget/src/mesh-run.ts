/**
 * `<mesh-run>`: one run's page: its stage timeline (attempts, durations), whom it waits on and since when, the audit
 * trail with its hash-chain verdict, and pause / resume / abort with a required reason, offered only to callers whose
 * roles allow it (decoded from the token to hide controls; the API still decides). Live through the run's events.
 */
import { Task } from '@lit/task';
import { css, html, LitElement, nothing, type PropertyValues } from 'lit';

import { type Caller, can, type InfoRequest, type MeshApi, type NextAction } from './api';
import { duration, field, label, time } from './format';
import { tokens } from './theme';

interface StageView {
    name: string;
    status: string;
    startedAt?: string | null;
    endedAt?: string | null;
    attempts?: number;
}

interface CheckpointView {
    checkpointId: string;
    stage: string;
    position: string;
    status: string;
    requiredRoles: string[];
    infoRequest?: InfoRequest;
    infoAnswers?: { by: string; at: string; comment: string }[];
}

interface RunStatusView {
    orchestrationID: string;
    status: string;
    currentStage: string | null;
    title: string | null;
    team: string;
    riskLevel: string;
    createdBy: string;
    createdAt: string;
    updatedAt: string;
    stages: StageView[];
    nextAction: NextAction | null;
    checkpoints?: CheckpointView[];
    error?: { message?: string };
}

interface AuditEvent {
    seq: number;
    type: string;
    at: string;
    actor: string;
    correlationID: string;
    stage?: string;
    reason?: string;
}

interface Logs {
    events: AuditEvent[];
    chain: { verified: boolean; head?: string };
    continuationToken?: string;
}

const TERMINAL = new Set(['Completed', 'Failed', 'Aborted', 'Rejected', 'TimedOut']);

export class MeshRun extends LitElement {
    static override properties = {
        api: { attribute: false },
        caller: { attribute: false },
        runId: { type: String },
        notice: { state: true },
        tick: { state: true },
    };

    declare api: MeshApi | undefined;
    declare caller: Caller | undefined;
    declare runId: string;
    declare notice: string;
    /** Bumped by the event stream to reload the run. */
    declare tick: number;

    private streamAbort: AbortController | undefined;

    constructor() {
        super();
        this.runId = '';
        this.notice = '';
        this.tick = 0;
    }

    static override styles = [
        tokens,
        css`
            :host {
                display: block;
            }
            .facts {
                display: flex;
                flex-wrap: wrap;
                gap: 0.3em 1.5em;
                margin: 0 0 1em;
                padding: 0;
                list-style: none;
            }
            ol.timeline {
                list-style: none;
                padding: 0;
                display: grid;
                grid-template-columns: repeat(auto-fit, minmax(11em, 1fr));
                gap: 0.5em;
            }
            ol.timeline li {
                border: 1px solid var(--mesh-border, #d0d7de);
                border-top: 4px solid var(--mesh-border, #d0d7de);
                border-radius: var(--mesh-radius, 6px);
                padding: 0.4em 0.6em;
            }
            ol.timeline li.completed {
                border-top-color: var(--mesh-ok, #1a7f37);
            }
            ol.timeline li.running {
                border-top-color: var(--mesh-accent, #0b5cad);
            }
            ol.timeline li.failed {
                border-top-color: var(--mesh-danger, #b42318);
            }
            section {
                margin: 1.2em 0;
            }
            .waiting {
                border-left: 4px solid var(--mesh-warn, #7d4e00);
                padding: 0.4em 0.8em;
                background: var(--mesh-surface, #f6f8fa);
            }
            form.control {
                display: flex;
                flex-wrap: wrap;
                gap: 0.5em;
                align-items: center;
            }
            table {
                width: 100%;
                border-collapse: collapse;
                font-size: 0.92em;
            }
            th,
            td {
                text-align: left;
                padding: 0.25em 0.5em;
                border-bottom: 1px solid var(--mesh-border, #d0d7de);
            }
            .verdict.ok {
                color: var(--mesh-ok, #1a7f37);
            }
            .verdict.bad {
                color: var(--mesh-danger, #b42318);
                font-weight: bold;
            }
        `,
    ];

    private load = new Task(this, {
        task: async ([api, id]): Promise<{ run: RunStatusView; logs: Logs } | undefined> => {
            if (!api || !id) return undefined;
            const path = encodeURIComponent(id);
            const [run, logs] = await Promise.all([
                api.call<RunStatusView>('GET', `/pipeline/status/${path}`),
                api.call<Logs>('GET', `/pipeline/logs/${path}?limit=200`),
            ]);
            return { run, logs };
        },
        args: () => [this.api, this.runId, this.tick] as const,
    });

    override connectedCallback(): void {
        super.connectedCallback();
        this.listen();
    }

    override disconnectedCallback(): void {
        super.disconnectedCallback();
        this.streamAbort?.abort();
    }

    override willUpdate(changed: PropertyValues<this>): void {
        if ((changed.has('api') || changed.has('runId')) && this.isConnected) this.listen();
    }

    private listen(): void {
        this.streamAbort?.abort();
        if (!this.api || !this.runId) return;
        const abort = (this.streamAbort = new AbortController());
        void this.api.stream(
            `/pipeline/events?orchestrationID=${encodeURIComponent(this.runId)}`,
            (event) => {
                if (event === 'status') this.tick++;
            },
            abort.signal,
        );
    }

    private control = async (e: SubmitEvent): Promise<void> => {
        e.preventDefault();
        const form = e.currentTarget as HTMLFormElement;
        const action = (e.submitter as HTMLButtonElement | null)?.value ?? '';
        const reason = field(form, 'reason');
        if (!reason || !this.api) return;
        try {
            if (action === 'resume')
                await this.api.call('POST', '/pipeline/resume', { orchestrationID: this.runId, reason });
            else await this.api.call('POST', '/pipeline/stop', { orchestrationID: this.runId, action, reason });
            this.notice = `${action[0]?.toUpperCase()}${action.slice(1)} requested.`;
            form.reset();
            this.tick++;
        } catch {
            // Shown by the dashboard with its correlation id.
        }
    };

    private async answer(e: SubmitEvent, checkpointId: string): Promise<void> {
        e.preventDefault();
        const form = e.currentTarget as HTMLFormElement;
        const comment = field(form, 'comment');
        if (!comment || !this.api) return;
        try {
            await this.api.call('POST', `/pipeline/checkpoints/${encodeURIComponent(checkpointId)}/info`, { comment });
            this.notice = 'Your answer was sent to the approvers.';
            form.reset();
            this.tick++;
        } catch {
            // Shown by the dashboard.
        }
    }

    override render(): unknown {
        return this.load.render({
            initial: () => html`<p class="muted">Loading the run…</p>`,
            pending: () => (this.load.value ? this.page(this.load.value) : html`<p class="muted">Loading the run…</p>`),
            complete: (v) => (v ? this.page(v) : nothing),
            error: () =>
                html`<p>This run could not be loaded.</p>
                    <button type="button" @click=${() => this.back()}>Back to runs</button>`,
        });
    }

    private back(): void {
        this.dispatchEvent(
            new CustomEvent('mesh-navigate', { detail: { view: 'runs' }, bubbles: true, composed: true }),
        );
    }

    private page({ run, logs }: { run: RunStatusView; logs: Logs }): unknown {
        const c = this.caller;
        const operator = c ? can.operate(c) : false;
        const owner = c?.sub === run.createdBy;
        const terminal = TERMINAL.has(run.status);
        const canPause = operator && !terminal && run.status !== 'Paused';
        const canResume = operator && run.status === 'Paused';
        const canAbort = (operator || owner) && !terminal;
        const openInfo = (run.checkpoints ?? []).filter((cp) => cp.status === 'open' && cp.infoRequest);
        const mayAnswer = !!c && (owner || c.teams.includes(run.team));
        return html`
            <button type="button" @click=${() => this.back()}>← Runs</button>
            <h2>${run.title ?? run.orchestrationID}</h2>
            <ul class="facts" part="facts">
                <li>Status <span class="status ${run.status}" data-status>${label(run.status)}</span></li>
                <li>Team ${run.team}</li>
                <li>Risk ${run.riskLevel}</li>
                <li>Submitted by ${run.createdBy} ${time(run.createdAt)}</li>
                <li class="muted">Id <code>${run.orchestrationID}</code></li>
            </ul>
            ${this.notice ? html`<p role="status">${this.notice}</p>` : nothing}
            ${run.error?.message ? html`<p class="status Failed">${run.error.message}</p>` : nothing}
            ${this.waiting(run.nextAction)}
            <section aria-labelledby="timeline-h">
                <h3 id="timeline-h">Stages</h3>
                <ol class="timeline" part="timeline">
                    ${run.stages.map(
                        (s) =>
                            html`<li class=${s.status.toLowerCase()} data-stage=${s.name}>
                                <strong>${s.name}</strong>
                                <div>${s.status}</div>
                                <div class="muted">
                                    ${s.attempts ? `${s.attempts} attempt${s.attempts === 1 ? '' : 's'}` : 'not started'}
                                    ${s.startedAt ? html` · ${duration(s.startedAt, s.endedAt)}` : nothing}
                                </div>
                                ${s.startedAt ? html`<div class="muted">${time(s.startedAt)}</div>` : nothing}
                            </li>`,
                    )}
                </ol>
            </section>
            ${
                openInfo.length && mayAnswer
                    ? html`<section aria-labelledby="info-h">
                          <h3 id="info-h">Information requested</h3>
                          ${openInfo.map(
                              (cp) =>
                                  html`<form
                                      class="control"
                                      @submit=${(e: SubmitEvent) => this.answer(e, cp.checkpointId)}
                                  >
                                      <p>
                                          ${cp.infoRequest!.by} asked ${time(cp.infoRequest!.at)}:
                                          <q>${cp.infoRequest!.comment ?? ''}</q>
                                      </p>
                                      <label>Your answer <textarea name="comment" required rows="2"></textarea></label>
                                      <button type="submit" class="primary">Send answer</button>
                                  </form>`,
                          )}
                      </section>`
                    : nothing
            }
            ${
                canPause || canResume || canAbort
                    ? html`<section aria-labelledby="control-h">
                          <h3 id="control-h">Control</h3>
                          <form class="control" part="controls" @submit=${this.control}>
                              <label
                                  >Reason <input name="reason" required placeholder="why (audited)" size="30"
                              /></label>
                              ${canPause ? html`<button type="submit" value="pause">Pause</button>` : nothing}
                              ${canResume ? html`<button type="submit" value="resume" class="primary">Resume</button>` : nothing}
                              ${canAbort ? html`<button type="submit" value="abort" class="danger">Abort</button>` : nothing}
                          </form>
                      </section>`
                    : nothing
            }
            <section aria-labelledby="audit-h">
                <h3 id="audit-h">Audit trail</h3>
                <p part="chain">
                    ${
                        logs.chain.verified
                            ? html`<span class="verdict ok" data-verdict="verified">✔ Hash chain verified</span>`
                            : html`<span class="verdict bad" data-verdict="broken">✖ Hash chain does NOT verify</span>`
                    }
                    <span class="muted"
                        >${logs.events.length} records${logs.continuationToken ? ' (first page)' : ''}</span
                    >
                </p>
                <table part="audit">
                    <thead>
                        <tr>
                            <th scope="col">#</th>
                            <th scope="col">Event</th>
                            <th scope="col">When</th>
                            <th scope="col">Actor</th>
                            <th scope="col">Stage</th>
                            <th scope="col">Reason</th>
                        </tr>
                    </thead>
                    <tbody>
                        ${logs.events.map(
                            (e) =>
                                html`<tr>
                                    <td>${e.seq}</td>
                                    <td>${e.type}</td>
                                    <td>${time(e.at)}</td>
                                    <td>${e.actor}</td>
                                    <td>${e.stage ?? ''}</td>
                                    <td>${e.reason ?? ''}</td>
                                </tr>`,
                        )}
                    </tbody>
                </table>
            </section>
        `;
    }

    private waiting(next: NextAction | null): unknown {
        if (!next || next.type !== 'approval') return nothing;
        const w = next.waitingOn;
        return html`<section class="waiting" part="waiting-on" aria-labelledby="waiting-h">
            <h3 id="waiting-h">Waiting for approval ${next.position} ${next.stage}</h3>
            ${
                w
                    ? html`<p>
                          Waiting on
                          <strong
                              >${
                                  w.approvers.length
                                      ? w.approvers.map((a) => a.name ?? a.id).join(', ')
                                      : 'nobody who may decide (ask an admin)'
                              }</strong
                          >
                          since ${time(w.since)}, due ${time(w.deadline)}. Approvals ${w.approvals.have} of
                          ${w.approvals.need}.${w.escalated ? ' Escalated.' : ''}
                      </p>`
                    : html`<p>Needs ${next.requiredRoles.join(' or ')}; due ${time(next.deadline)}.</p>`
            }
        </section>`;
    }
}

if (!customElements.get('mesh-run')) customElements.define('mesh-run', MeshRun);
