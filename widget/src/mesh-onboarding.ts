/**
 * `<mesh-onboarding>`: the four steps a person who has never submitted a run goes through: what the pipeline does,
 * what a checkpoint is, a first run from a template, and where to watch it. It ends on "my runs".
 */
import { css, html, LitElement, nothing } from 'lit';

import type { Caller, MeshApi } from './api';
import { field } from './format';
import { tokens } from './theme';

const STAGES = ['generation', 'filtering', 'creativity', 'taste', 'improvement'];

export const TEMPLATES = [
    {
        id: 'ideas',
        name: 'Brainstorm product ideas',
        input: { prompt: 'Ten product ideas for a team calendar that respects focus time' },
    },
    {
        id: 'summary',
        name: 'Summarize a document',
        input: { prompt: 'Summarize the attached release notes for customers', document: 'release-notes.md' },
    },
    {
        id: 'names',
        name: 'Name a feature',
        input: { prompt: 'Five names for a feature that pauses notifications during meetings' },
    },
];

export class MeshOnboarding extends LitElement {
    static override properties = {
        api: { attribute: false },
        caller: { attribute: false },
        step: { state: true },
        runId: { state: true },
        busy: { state: true },
    };

    declare api: MeshApi | undefined;
    declare caller: Caller | undefined;
    declare step: number;
    declare runId: string | undefined;
    declare busy: boolean;

    constructor() {
        super();
        this.step = 0;
        this.busy = false;
    }

    static override styles = [
        tokens,
        css`
            :host {
                display: block;
                max-width: 46em;
            }
            ol.steps {
                display: flex;
                gap: 0.5em;
                padding: 0;
                list-style: none;
                margin: 0 0 1em;
                flex-wrap: wrap;
            }
            ol.steps li {
                padding: 0.2em 0.6em;
                border-radius: 999px;
                border: 1px solid var(--mesh-border, #8c959f);
            }
            ol.steps li[aria-current='step'] {
                background: var(--mesh-accent, #0b5cad);
                border-color: var(--mesh-accent, #0b5cad);
                color: var(--mesh-accent-fg, #ffffff);
            }
            .pipeline {
                display: flex;
                flex-wrap: wrap;
                gap: 0.3em;
                align-items: center;
                padding: 0;
                list-style: none;
            }
            .pipeline li {
                padding: 0.3em 0.6em;
                border: 1px solid var(--mesh-border, #8c959f);
                border-radius: var(--mesh-radius, 6px);
                background: var(--mesh-surface, #f6f8fa);
            }
            form {
                display: grid;
                gap: 0.7em;
                max-width: 30em;
            }
            label {
                display: flex;
                flex-direction: column;
            }
            .actions {
                display: flex;
                gap: 0.5em;
                margin-top: 1em;
            }
        `,
    ];

    private submit = async (e: SubmitEvent): Promise<void> => {
        e.preventDefault();
        if (!this.api) return;
        const data = new FormData(e.currentTarget as HTMLFormElement);
        const template = TEMPLATES.find((t) => t.id === field(data, 'template')) ?? TEMPLATES[0]!;
        const title = field(data, 'title') || template.name;
        this.busy = true;
        try {
            const r = await this.api.call<{ orchestrationID: string }>('POST', '/pipeline/run', {
                input: template.input,
                metadata: {
                    team: field(data, 'team'),
                    riskLevel: field(data, 'riskLevel') || 'low',
                    complianceTags: [],
                    title,
                },
            });
            this.runId = r.orchestrationID;
            this.step = 3;
        } catch {
            // Shown by the dashboard with its correlation id.
        } finally {
            this.busy = false;
        }
    };

    private go(view: string, mine = false): void {
        this.dispatchEvent(new CustomEvent('mesh-navigate', { detail: { view, mine }, bubbles: true, composed: true }));
    }

    override render(): unknown {
        const names = ['The pipeline', 'Checkpoints', 'Your first run', 'Watch it'];
        return html`
            <h2>Get started with Mesh Orchestrator</h2>
            <ol class="steps" part="steps" aria-label="Steps">
                ${names.map((n, i) => html`<li aria-current=${i === this.step ? 'step' : nothing}>${i + 1}. ${n}</li>`)}
            </ol>
            <section part="step" aria-live="polite">${this.body()}</section>
        `;
    }

    private nav(): unknown {
        return html`<div class="actions">
            ${this.step > 0 ? html`<button type="button" @click=${() => this.step--}>Back</button>` : nothing}
            <button type="button" class="primary" @click=${() => this.step++}>Next</button>
            <button type="button" @click=${() => this.go('runs', true)}>Skip to my runs</button>
        </div>`;
    }

    private body(): unknown {
        const teams = this.caller?.teams ?? [];
        switch (this.step) {
            case 0:
                return html`<h3>What the pipeline does</h3>
                    <p>
                        Every workflow you submit runs through the same five stages of the mesh, in order, none skipped:
                    </p>
                    <ol class="pipeline">
                        ${STAGES.map((s) => html`<li>${s}</li>`)}
                    </ol>
                    <p>
                        Each stage calls one mesh engine. Everything that happens is recorded in a tamper-evident audit
                        trail you can read on the run's page.
                    </p>
                    ${this.nav()}`;
            case 1:
                return html`<h3>What a checkpoint is</h3>
                    <p>
                        A checkpoint is a human-in-the-loop stop: before or after a stage, the run waits until an
                        approver of your team approves, rejects or asks you for more information. Which checkpoints
                        stand depends on the run's risk level: low-risk runs usually go straight through; high and
                        critical ones stop before <em>taste</em> and after <em>improvement</em>.
                    </p>
                    <p>You can never approve your own run: someone else always looks (four-eyes).</p>
                    ${this.nav()}`;
            case 2:
                return html`<h3>Your first run</h3>
                    <form part="first-run" @submit=${this.submit}>
                        <label
                            >Template
                            <select name="template">
                                ${TEMPLATES.map((t) => html`<option value=${t.id}>${t.name}</option>`)}
                            </select>
                        </label>
                        <label>Title <input name="title" placeholder="My first run" /></label>
                        <label
                            >Team
                            <select name="team" required>
                                ${teams.map((t) => html`<option value=${t}>${t}</option>`)}
                            </select>
                        </label>
                        <label
                            >Risk level
                            <select name="riskLevel">
                                <option value="low" selected>low (no checkpoint by default)</option>
                                <option value="medium">medium</option>
                                <option value="high">high (stops for approval)</option>
                            </select>
                        </label>
                        <div class="actions">
                            <button type="button" @click=${() => this.step--}>Back</button>
                            <button type="submit" class="primary" ?disabled=${this.busy || !teams.length}>
                                Start the run
                            </button>
                        </div>
                        ${
                            teams.length
                                ? nothing
                                : html`<p class="muted">You belong to no team yet, so you cannot submit a run.</p>`
                        }
                    </form>`;
            default:
                return html`<h3>Where to watch it</h3>
                    ${
                        this.runId
                            ? html`<p role="status">Your run <code>${this.runId}</code> has started.</p>`
                            : html`<p>Your runs appear in <strong>My runs</strong> as soon as you submit one.</p>`
                    }
                    <p>
                        Its page shows each stage as it runs, whom it waits on and since when, and its audit trail. The
                        <strong>Runs</strong> list updates live; the <strong>Inbox</strong> shows what waits for you,
                        including questions approvers ask about your runs.
                    </p>
                    <div class="actions">
                        ${
                            this.runId
                                ? html`<button
                                      type="button"
                                      class="primary"
                                      @click=${() => this.go(`run:${this.runId}`)}
                                  >
                                      Watch my run
                                  </button>`
                                : nothing
                        }
                        <button type="button" @click=${() => this.go('runs', true)}>Go to my runs</button>
                    </div>`;
        }
    }
}

if (!customElements.get('mesh-onboarding')) customElements.define('mesh-onboarding', MeshOnboarding);
