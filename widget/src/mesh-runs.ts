/**
 * `<mesh-runs>`: the runs the caller may see, one page at a time (never all of them: thousands of runs cost one
 * page), filtered by status, team, risk level and text, kept live by the event stream. Operators select runs and
 * pause, resume or abort them at once with one reason: one API call (and one audit record) per run.
 */
import { Task } from '@lit/task';
import { css, html, LitElement, nothing, type PropertyValues } from 'lit';

import { RISK_LEVELS, RUN_STATUSES } from '../../domain/pipeline';
import { type Caller, can, type MeshApi, MeshApiError, type RunSummary } from './api';
import { field, label, time } from './format';
import { tokens } from './theme';

const PAGE_SIZE = 50;
// The product's own lists (domain/ is plain TypeScript: esbuild bundles what is used).
const STATUSES: readonly string[] = RUN_STATUSES;
const RISKS: readonly string[] = RISK_LEVELS;

interface Filters {
    status: string;
    team: string;
    riskLevel: string;
    q: string;
}

interface Page {
    items: RunSummary[];
    continuationToken?: string;
    total?: number;
}

export class MeshRuns extends LitElement {
    static override properties = {
        api: { attribute: false },
        caller: { attribute: false },
        team: { type: String },
        mine: { type: Boolean },
        filters: { state: true },
        pageTokens: { state: true },
        items: { state: true },
        total: { state: true },
        next: { state: true },
        selected: { state: true },
        bulkStatus: { state: true },
        live: { state: true },
    };

    declare api: MeshApi | undefined;
    declare caller: Caller | undefined;
    declare team: string;
    declare mine: boolean;
    declare filters: Filters;
    /** The continuation token of each page opened so far (`undefined` for the first): paging back and forth. */
    declare pageTokens: (string | undefined)[];
    declare items: RunSummary[];
    declare total: number | undefined;
    declare next: string | undefined;
    declare selected: Set<string>;
    declare bulkStatus: string;
    declare live: boolean;

    private streamAbort: AbortController | undefined;

    constructor() {
        super();
        this.team = '';
        this.mine = false;
        this.filters = { status: '', team: '', riskLevel: '', q: '' };
        this.pageTokens = [undefined];
        this.items = [];
        this.selected = new Set();
        this.bulkStatus = '';
        this.live = false;
    }

    static override styles = [
        tokens,
        css`
            :host {
                display: block;
            }
            form.filters {
                display: flex;
                flex-wrap: wrap;
                gap: 0.5em 1em;
                align-items: end;
                margin-bottom: 0.8em;
            }
            form.filters label {
                display: flex;
                flex-direction: column;
                font-size: 0.9em;
            }
            .summary {
                display: flex;
                gap: 1em;
                align-items: center;
                margin: 0.4em 0;
            }
            table {
                width: 100%;
                border-collapse: collapse;
            }
            th,
            td {
                text-align: left;
                padding: 0.35em 0.5em;
                border-bottom: 1px solid var(--mesh-border, #d0d7de);
                vertical-align: top;
            }
            th {
                font-size: 0.85em;
                color: var(--mesh-muted, #57606a);
            }
            td button.link {
                border: none;
                background: none;
                padding: 0;
                color: var(--mesh-link, #0b5cad);
                text-decoration: underline;
                text-align: left;
            }
            .bulk {
                display: flex;
                flex-wrap: wrap;
                gap: 0.5em;
                align-items: center;
                padding: 0.5em;
                margin: 0.5em 0;
                border: 1px solid var(--mesh-border, #d0d7de);
                border-radius: var(--mesh-radius, 6px);
                background: var(--mesh-surface, #f6f8fa);
            }
            .pager {
                display: flex;
                gap: 0.5em;
                align-items: center;
                margin-top: 0.6em;
            }
            .live-dot {
                font-size: 0.85em;
            }
        `,
    ];

    private load = new Task(this, {
        task: async ([api, filters, token, team, mine, sub]): Promise<Page | undefined> => {
            if (!api) return undefined;
            const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
            if (filters.status) q.set('status', filters.status);
            const teamFilter = filters.team || team;
            if (teamFilter) q.set('team', teamFilter);
            if (filters.riskLevel) q.set('riskLevel', filters.riskLevel);
            if (filters.q) q.set('q', filters.q);
            if (mine && sub) q.set('createdBy', sub);
            if (token) q.set('continuationToken', token);
            const page = await api.call<Page>('GET', `/pipeline?${q.toString()}`);
            this.items = page.items;
            this.total = page.total;
            this.next = page.continuationToken;
            return page;
        },
        args: () =>
            [
                this.api,
                this.filters,
                this.pageTokens[this.pageTokens.length - 1],
                this.team,
                this.mine,
                this.caller?.sub,
            ] as const,
    });

    override connectedCallback(): void {
        super.connectedCallback();
        if (this.api) this.listen();
    }

    override disconnectedCallback(): void {
        super.disconnectedCallback();
        this.streamAbort?.abort();
        this.streamAbort = undefined;
    }

    override willUpdate(changed: PropertyValues<this>): void {
        if (changed.has('api') && this.isConnected) this.listen();
        if (changed.has('mine') || changed.has('team')) this.pageTokens = [undefined];
    }

    /** Follows the event stream: a run on this page changes in place; a new matching run joins the first page. */
    private listen(): void {
        this.streamAbort?.abort();
        if (!this.api) return;
        const abort = (this.streamAbort = new AbortController());
        void this.api.stream(
            '/pipeline/events',
            (event, data) => {
                if (event !== 'status' || !data || typeof data !== 'object') return;
                this.applyChange(data as RunSummary);
            },
            abort.signal,
            () => (this.live = true),
        );
    }

    private applyChange(run: RunSummary): void {
        const i = this.items.findIndex((r) => r.orchestrationID === run.orchestrationID);
        if (i >= 0) {
            const items = [...this.items];
            items[i] = run;
            this.items = items;
            return;
        }
        if (this.pageTokens.length !== 1 || !this.fitsFilters(run)) return;
        this.items = [run, ...this.items].slice(0, PAGE_SIZE);
        if (this.total !== undefined) this.total += 1;
    }

    private fitsFilters(run: RunSummary): boolean {
        const f = this.filters;
        const team = f.team || this.team;
        if (f.status && !f.status.split(',').includes(run.status)) return false;
        if (team && run.team !== team) return false;
        if (f.riskLevel && run.riskLevel !== f.riskLevel) return false;
        if (this.mine && run.createdBy !== this.caller?.sub) return false;
        if (f.q) {
            const text = `${run.title ?? ''} ${run.orchestrationID}`.toLowerCase();
            if (!text.includes(f.q.toLowerCase())) return false;
        }
        return true;
    }

    private applyFilters = (e: Event): void => {
        e.preventDefault();
        const data = new FormData(e.currentTarget as HTMLFormElement);
        this.filters = {
            status: field(data, 'status'),
            team: field(data, 'team'),
            riskLevel: field(data, 'riskLevel'),
            q: field(data, 'q'),
        };
        this.pageTokens = [undefined];
        this.selected = new Set();
    };

    private open(id: string): void {
        this.dispatchEvent(
            new CustomEvent('mesh-navigate', { detail: { view: `run:${id}` }, bubbles: true, composed: true }),
        );
    }

    private toggle(id: string, on: boolean): void {
        const s = new Set(this.selected);
        if (on) s.add(id);
        else s.delete(id);
        this.selected = s;
    }

    /** Pauses, resumes or aborts every selected run with one reason: one call per run, each audited on its own. */
    private bulk = async (e: SubmitEvent): Promise<void> => {
        e.preventDefault();
        const form = e.currentTarget as HTMLFormElement;
        const action = (e.submitter as HTMLButtonElement | null)?.value ?? '';
        const reason = field(form, 'reason');
        if (!reason || !this.api) return;
        const ids = [...this.selected];
        let ok = 0;
        const failed: string[] = [];
        for (const id of ids) {
            try {
                if (action === 'resume')
                    await this.api.call('POST', '/pipeline/resume', { orchestrationID: id, reason });
                else await this.api.call('POST', '/pipeline/stop', { orchestrationID: id, action, reason });
                ok++;
            } catch (err: unknown) {
                failed.push(err instanceof MeshApiError ? `${id}: ${err.detail.error_code}` : id);
            }
        }
        this.bulkStatus = `${action}: ${ok} of ${ids.length} runs accepted${failed.length ? `; refused ${failed.join(', ')}` : ''}.`;
        this.selected = new Set();
        form.reset();
    };

    override render(): unknown {
        const operator = this.caller ? can.operate(this.caller) : false;
        const f = this.filters;
        const onFirst = this.pageTokens.length === 1;
        const pageNo = this.pageTokens.length;
        const counts = new Map<string, number>();
        for (const r of this.items) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
        return html`
            <h2>${this.mine ? 'My runs' : 'Runs'}</h2>
            <form class="filters" part="filters" role="search" @submit=${this.applyFilters}>
                <label
                    >Status
                    <select name="status" .value=${f.status}>
                        <option value="">Any</option>
                        ${STATUSES.map(
                            (s) => html`<option value=${s} ?selected=${s === f.status}>${label(s)}</option>`,
                        )}
                    </select>
                </label>
                <label
                    >Team
                    <input name="team" .value=${f.team || this.team} placeholder="any of mine" size="10" />
                </label>
                <label
                    >Risk level
                    <select name="riskLevel">
                        <option value="">Any</option>
                        ${RISKS.map((r) => html`<option value=${r} ?selected=${r === f.riskLevel}>${r}</option>`)}
                    </select>
                </label>
                <label
                    >Search
                    <input name="q" type="search" .value=${f.q} placeholder="title or id" />
                </label>
                <button type="submit" class="primary">Apply</button>
            </form>
            <div class="summary" part="counts" aria-live="polite">
                <span data-count
                    >${
                        this.total !== undefined
                            ? `${this.total} run${this.total === 1 ? '' : 's'}`
                            : `${this.items.length}${this.next ? '+' : ''} run${this.items.length === 1 ? '' : 's'}`
                    }</span
                >
                <span class="muted"
                    >${[...counts.entries()].map(([s, n]) => `${label(s)} ${n}`).join(' · ')}${
                        counts.size ? ' on this page' : ''
                    }</span
                >
                <span class="live-dot muted">${this.live ? '● live' : '○ connecting'}</span>
            </div>
            ${
                operator && this.selected.size
                    ? html`<form class="bulk" part="bulk" @submit=${this.bulk}>
                          <span>${this.selected.size} selected</span>
                          <label>Reason <input name="reason" required placeholder="why (audited)" /></label>
                          <button type="submit" name="action" value="pause">Pause</button>
                          <button type="submit" name="action" value="resume">Resume</button>
                          <button type="submit" name="action" value="abort" class="danger">Abort</button>
                      </form>`
                    : nothing
            }
            ${this.bulkStatus ? html`<p role="status">${this.bulkStatus}</p>` : nothing}
            ${this.load.render({
                pending: () => (this.items.length ? this.table(operator) : html`<p class="muted">Loading runs…</p>`),
                complete: () =>
                    this.items.length
                        ? this.table(operator)
                        : html`<p part="empty">No runs match.${this.mine ? ' Start one from "Get started".' : ''}</p>`,
                error: () => html`<p class="muted">The runs could not be loaded.</p>`,
            })}
            <div class="pager" part="pager">
                <button
                    type="button"
                    ?disabled=${onFirst}
                    @click=${() => (this.pageTokens = this.pageTokens.slice(0, -1))}
                >
                    Previous page
                </button>
                <span
                    >Page
                    ${pageNo}${this.total !== undefined ? ` of ${Math.max(1, Math.ceil(this.total / PAGE_SIZE))}` : ''}</span
                >
                <button
                    type="button"
                    ?disabled=${!this.next}
                    @click=${() => (this.pageTokens = [...this.pageTokens, this.next])}
                >
                    Next page
                </button>
            </div>
        `;
    }

    private table(operator: boolean): unknown {
        return html`<table part="table">
            <thead>
                <tr>
                    ${operator ? html`<th scope="col"><span class="visually-hidden">Select</span></th>` : nothing}
                    <th scope="col">Run</th>
                    <th scope="col">Status</th>
                    <th scope="col">Stage</th>
                    <th scope="col">Team</th>
                    <th scope="col">Risk</th>
                    <th scope="col">Submitted by</th>
                    <th scope="col">Updated</th>
                </tr>
            </thead>
            <tbody>
                ${this.items.map(
                    (r) =>
                        html`<tr part="row" data-run=${r.orchestrationID}>
                            ${
                                operator
                                    ? html`<td>
                                          <input
                                              type="checkbox"
                                              aria-label=${`Select ${r.title ?? r.orchestrationID}`}
                                              .checked=${this.selected.has(r.orchestrationID)}
                                              @change=${(e: Event) =>
                                                  this.toggle(
                                                      r.orchestrationID,
                                                      (e.target as HTMLInputElement).checked,
                                                  )}
                                          />
                                      </td>`
                                    : nothing
                            }
                            <td>
                                <button type="button" class="link" @click=${() => this.open(r.orchestrationID)}>
                                    ${r.title ?? r.orchestrationID}
                                </button>
                            </td>
                            <td><span class="status ${r.status}" data-status>${label(r.status)}</span></td>
                            <td>${r.currentStage ?? '—'}</td>
                            <td>${r.team}</td>
                            <td>${r.riskLevel}</td>
                            <td>${r.createdBy}</td>
                            <td>${time(r.updatedAt)}</td>
                        </tr>`,
                )}
            </tbody>
        </table>`;
    }
}

if (!customElements.get('mesh-runs')) customElements.define('mesh-runs', MeshRuns);
