/**
 * `<mesh-dashboard>`: the embeddable face of Mesh Orchestrator (SPEC "Dashboard widget (v1.1)"). The host page owns
 * sign-in and hands over a `tokenProvider`; the element picks the view (`runs` · `inbox` · `run:<id>` ·
 * `onboarding`), shows every API error with its correlation id and re-emits it as a composed `mesh-error`.
 */
import './mesh-inbox';
import './mesh-onboarding';
import './mesh-run';
import './mesh-runs';

import { css, html, LitElement, nothing, type PropertyValues } from 'lit';

import { type Caller, callerOf, can, MeshApi, type MeshErrorDetail, type TokenProvider } from './api';
import { tokens } from './theme';

/** Where the module was loaded from: the API origin unless `base-url` says otherwise. */
const MODULE_ORIGIN = ((): string => {
    try {
        return new URL(import.meta.url).origin;
    } catch {
        return location.origin;
    }
})();

export class MeshDashboard extends LitElement {
    static override properties = {
        baseUrl: { type: String, attribute: 'base-url' },
        view: { type: String, reflect: true },
        team: { type: String },
        tokenProvider: { attribute: false },
        caller: { state: true },
        error: { state: true },
        mine: { state: true },
    };

    declare baseUrl: string | undefined;
    /** Unset: the runs list, or onboarding for a newcomer; a host that names a view gets that view. */
    declare view: string | undefined;
    declare team: string | undefined;
    declare tokenProvider: TokenProvider | undefined;
    declare caller: Caller | undefined;
    declare error: MeshErrorDetail | undefined;
    /** The runs list shows only the caller's own runs ("my runs", after onboarding). */
    declare mine: boolean;

    private api: MeshApi | undefined;

    constructor() {
        super();
        this.mine = false;
    }

    static override styles = [
        tokens,
        css`
            :host {
                display: block;
                background: var(--mesh-bg, #ffffff);
                container-type: inline-size;
            }
            header {
                display: flex;
                flex-wrap: wrap;
                align-items: center;
                gap: 0.5em 1em;
                padding: 0.6em 1em;
                border-bottom: 1px solid var(--mesh-border, #d0d7de);
                background: var(--mesh-header-bg, var(--mesh-surface, #f6f8fa));
            }
            header h1 {
                font-size: 1.1em;
                margin: 0;
            }
            nav {
                display: flex;
                gap: 0.4em;
            }
            nav button[aria-current='page'] {
                background: var(--mesh-accent, #0b5cad);
                border-color: var(--mesh-accent, #0b5cad);
                color: var(--mesh-accent-fg, #ffffff);
            }
            .who {
                margin-left: auto;
            }
            main {
                padding: 1em;
            }
            [role='alert'] {
                margin: 0.6em 1em 0;
                padding: 0.5em 0.8em;
                border: 1px solid var(--mesh-danger, #b42318);
                border-radius: var(--mesh-radius, 6px);
                color: var(--mesh-danger, #b42318);
                background: var(--mesh-bg, #ffffff);
                display: flex;
                gap: 1em;
                align-items: baseline;
            }
            [role='alert'] code {
                color: var(--mesh-fg, #1b1f24);
            }
            .signin {
                padding: 2em 1em;
                text-align: center;
            }
        `,
    ];

    override willUpdate(changed: PropertyValues<this>): void {
        if (changed.has('tokenProvider') || changed.has('baseUrl')) {
            this.api = this.tokenProvider
                ? new MeshApi({
                      baseUrl: this.baseUrl || MODULE_ORIGIN,
                      tokenProvider: this.tokenProvider,
                      onError: (e) => this.report(e),
                  })
                : undefined;
            this.caller = undefined;
            if (this.tokenProvider) void this.identify();
        }
    }

    /** Reads who the caller is from their token (only to hide controls), and opens onboarding for a newcomer. */
    private async identify(): Promise<void> {
        const provider = this.tokenProvider;
        if (!provider || !this.api) return;
        const caller = callerOf(await provider());
        if (provider !== this.tokenProvider) return;
        this.caller = caller;
        // Only when the host page asked for no particular view: a page that opens "runs" or a run gets it.
        if (this.view !== undefined || !can.submit(caller) || !caller.teams.length) return;
        const seenKey = `mesh-onboarded:${caller.sub}`;
        if (safeStorage()?.getItem(seenKey)) return;
        try {
            const page = await this.api.call<{ items: unknown[] }>(
                'GET',
                `/pipeline?createdBy=${encodeURIComponent(caller.sub)}&limit=1`,
                undefined,
                { quiet: true },
            );
            if (page.items.length === 0 && this.view === undefined) this.navigate('onboarding');
        } catch {
            // Not knowing whether the caller is new is no reason to stop them: they get the runs list.
        }
    }

    private report(e: MeshErrorDetail): void {
        this.error = e;
        this.dispatchEvent(
            new CustomEvent('mesh-error', {
                detail: { error_code: e.error_code, message: e.message, correlationID: e.correlationID },
                bubbles: true,
                composed: true,
            }),
        );
    }

    /** Opens a view and tells the host page (`mesh-navigate`), e.g. to keep it in the address bar. */
    navigate(view: string): void {
        if (view === (this.view ?? 'runs') && this.view !== undefined) return;
        this.view = view;
        this.error = undefined;
        this.dispatchEvent(new CustomEvent('mesh-navigate', { detail: { view }, bubbles: true, composed: true }));
    }

    private onNavigate = (e: Event): void => {
        // A view asks for another view: the dashboard switches and re-emits the request as its own event.
        if (e.target === this) return;
        e.stopPropagation();
        const detail = (e as CustomEvent<{ view: string; mine?: boolean }>).detail;
        if (detail.mine !== undefined) this.mine = detail.mine;
        if (this.view === 'onboarding' && this.caller) safeStorage()?.setItem(`mesh-onboarded:${this.caller.sub}`, '1');
        this.navigate(detail.view);
    };

    override render(): unknown {
        if (!this.tokenProvider || !this.api)
            return html`<div class="signin" part="sign-in">
                <slot name="sign-in">
                    <p>Sign in to see the runs, approvals and audit trail of the mesh.</p>
                    <p class="muted">The page hosting this dashboard provides sign-in.</p>
                </slot>
            </div>`;
        const view = this.view || 'runs';
        const runId = view.startsWith('run:') ? view.slice(4) : undefined;
        const tab = (name: string, text: string): unknown =>
            html`<button
                type="button"
                part="nav-button"
                aria-current=${view === name ? 'page' : nothing}
                @click=${() => {
                    if (name === 'runs') this.mine = false;
                    this.navigate(name);
                }}
            >
                ${text}
            </button>`;
        return html`
            <header part="header">
                <h1>Mesh Orchestrator</h1>
                <nav aria-label="Dashboard views">
                    ${tab('runs', 'Runs')} ${tab('inbox', 'Inbox')} ${tab('onboarding', 'Get started')}
                </nav>
                ${
                    this.caller
                        ? html`<span class="who muted" part="caller"
                              >Signed in as <strong>${this.caller.name}</strong></span
                          >`
                        : nothing
                }
            </header>
            ${
                this.error
                    ? html`<div role="alert" part="error">
                          <span><strong>${this.error.error_code}</strong>: ${this.error.message}</span>
                          ${
                              this.error.correlationID
                                  ? html`<span class="muted"
                                        >correlation id <code>${this.error.correlationID}</code></span
                                    >`
                                  : nothing
                          }
                          <button type="button" @click=${() => (this.error = undefined)}>Dismiss</button>
                      </div>`
                    : nothing
            }
            <main part="main" @mesh-navigate=${this.onNavigate}>
                ${
                    !this.caller
                        ? html`<p class="muted">Loading…</p>`
                        : runId !== undefined
                          ? html`<mesh-run .api=${this.api} .caller=${this.caller} .runId=${runId}></mesh-run>`
                          : view === 'inbox'
                            ? html`<mesh-inbox .api=${this.api} .caller=${this.caller}></mesh-inbox>`
                            : view === 'onboarding'
                              ? html`<mesh-onboarding .api=${this.api} .caller=${this.caller}></mesh-onboarding>`
                              : html`<mesh-runs
                                    .api=${this.api}
                                    .caller=${this.caller}
                                    .team=${this.team ?? ''}
                                    .mine=${this.mine}
                                ></mesh-runs>`
                }
            </main>
        `;
    }
}

function safeStorage(): Storage | undefined {
    try {
        return localStorage;
    } catch {
        return undefined;
    }
}

if (!customElements.get('mesh-dashboard')) customElements.define('mesh-dashboard', MeshDashboard);

declare global {
    interface HTMLElementTagNameMap {
        'mesh-dashboard': MeshDashboard;
    }
}
