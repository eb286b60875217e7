/** ISO 8601 durations (the subset policies use: PnDTnHnMnS and PnW), to milliseconds. */
const DURATION = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

export function parseDuration(iso: string): number | undefined {
    const m = DURATION.exec(iso);
    if (!m || iso === 'P' || iso.endsWith('T')) return undefined;
    const [, w, d, h, min, s] = m;
    const ms =
        ((((Number(w ?? 0) * 7 + Number(d ?? 0)) * 24 + Number(h ?? 0)) * 60 + Number(min ?? 0)) * 60 +
            Number(s ?? 0)) *
        1000;
    const rounded = Math.round(ms);
    return rounded > 0 ? rounded : undefined;
}
