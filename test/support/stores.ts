/**
 * The store switch for integration tests: a suite wrapped in `describe.each(STORES)` runs against every store the
 * product supports, on hosts started with `startHostProcess({ store })`. `MESH_TEST_STORES` (comma-separated)
 * narrows it, e.g. to `embedded` while iterating locally; CI runs both.
 */
export type StoreKind = 'embedded' | 'cosmos';

export function storesUnderTest(env: Readonly<Record<string, string | undefined>> = process.env): StoreKind[] {
    const text = env.MESH_TEST_STORES?.trim();
    if (!text) return ['embedded', 'cosmos'];
    const kinds = text.split(',').map((s) => s.trim());
    for (const k of kinds)
        if (k !== 'embedded' && k !== 'cosmos') throw new Error(`MESH_TEST_STORES: unknown store '${k}'`);
    return kinds as StoreKind[];
}

export const STORES = storesUnderTest();
