/**
 * The design tokens every element uses. Each is a `--mesh-*` custom property with a default, so a host page themes
 * the widget by setting them on `mesh-dashboard` (or any ancestor); nothing here reaches outside the shadow roots.
 */
import { css } from 'lit';

export const tokens = css`
    :host {
        font-family: var(--mesh-font, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif);
        font-size: var(--mesh-font-size, 14px);
        color: var(--mesh-fg, #1b1f24);
        line-height: 1.45;
    }
    button {
        font: inherit;
        cursor: pointer;
        border: 1px solid var(--mesh-border, #8c959f);
        background: var(--mesh-surface, #f6f8fa);
        color: var(--mesh-fg, #1b1f24);
        border-radius: var(--mesh-radius, 6px);
        padding: 0.3em 0.8em;
    }
    button.primary {
        background: var(--mesh-accent, #0b5cad);
        border-color: var(--mesh-accent, #0b5cad);
        color: var(--mesh-accent-fg, #ffffff);
    }
    button.danger {
        color: var(--mesh-danger, #b42318);
        border-color: var(--mesh-danger, #b42318);
        background: var(--mesh-bg, #ffffff);
    }
    button:disabled {
        opacity: 0.6;
        cursor: not-allowed;
    }
    button:focus-visible,
    input:focus-visible,
    select:focus-visible,
    textarea:focus-visible,
    a:focus-visible {
        outline: 2px solid var(--mesh-focus, #0b5cad);
        outline-offset: 2px;
    }
    input,
    select,
    textarea {
        font: inherit;
        color: var(--mesh-fg, #1b1f24);
        background: var(--mesh-bg, #ffffff);
        border: 1px solid var(--mesh-border, #8c959f);
        border-radius: var(--mesh-radius, 6px);
        padding: 0.25em 0.5em;
    }
    a {
        color: var(--mesh-link, #0b5cad);
    }
    button.link {
        border: none;
        background: none;
        padding: 0;
        font-weight: 600;
        color: var(--mesh-link, #0b5cad);
        text-decoration: underline;
        text-align: left;
    }
    .muted {
        color: var(--mesh-muted, #57606a);
    }
    .status {
        display: inline-block;
        padding: 0 0.5em;
        border-radius: 999px;
        border: 1px solid currentColor;
        font-size: 0.85em;
        white-space: nowrap;
    }
    .status.Completed {
        color: var(--mesh-ok, #1a7f37);
    }
    .status.Failed,
    .status.Rejected,
    .status.Aborted,
    .status.TimedOut {
        color: var(--mesh-danger, #b42318);
    }
    .status.AwaitingApproval,
    .status.Paused {
        color: var(--mesh-warn, #7d4e00);
    }
    .visually-hidden {
        position: absolute;
        width: 1px;
        height: 1px;
        overflow: hidden;
        clip: rect(0 0 0 0);
        white-space: nowrap;
    }
`;
