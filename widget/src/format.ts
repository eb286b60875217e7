/** Small formatting helpers the views share: times as `<time datetime>`, durations, relative ages. */
import { html, type TemplateResult } from 'lit';

export function time(iso: string | null | undefined): TemplateResult | string {
    if (!iso) return '—';
    const d = new Date(iso);
    return html`<time datetime=${iso} title=${iso}>${d.toLocaleString()}</time>`;
}

export function duration(fromIso: string | null | undefined, toIso: string | null | undefined): string {
    if (!fromIso) return '';
    const ms = (toIso ? Date.parse(toIso) : Date.now()) - Date.parse(fromIso);
    if (!Number.isFinite(ms) || ms < 0) return '';
    if (ms < 1000) return `${ms} ms`;
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${s % 60} s`;
    const h = Math.floor(m / 60);
    return h < 48 ? `${h} h ${m % 60} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function label(status: string): string {
    return status === 'AwaitingApproval' ? 'Awaiting approval' : status === 'TimedOut' ? 'Timed out' : status;
}

/** A form field's text, trimmed ('' when absent). */
export function field(form: HTMLFormElement | FormData, name: string): string {
    const v = (form instanceof FormData ? form : new FormData(form)).get(name);
    return typeof v === 'string' ? v.trim() : '';
}
