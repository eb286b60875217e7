/**
 * The local Event Grid topic keeps accepted events and dead letters sealed at rest, as Azure Event Grid encrypts what
 * it stores: each event's JSON is sealed with AES-256-GCM (adapters/crypto/fieldCipher.ts: a fresh data key per event,
 * wrapped under the ring's current key) and bound to its table and event id. The key ring is its own file,
 * `<MESH_KEYS_DIR>/eventgrid-keys.json` (created on first start, mode 0600), never under the data dir: the topic is a
 * stand-in for another service, with keys of its own.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { FieldCipher, isSealed, type SealContext } from '../../adapters/crypto/fieldCipher';
import { newKeyRingDoc, parseKeyRing } from '../../adapters/crypto/keyRing';
import { loadOrCreateKeyFile } from '../../adapters/secrets/keyFile';

export const EVENTGRID_KEYS_FILE = 'eventgrid-keys.json';
/** The topic's access key (what the app gets as EVENTGRID_KEY), beside the ring. */
export const EVENTGRID_ACCESS_KEY_FILE = 'eventgrid-key.json';

/**
 * The topic's access key from `<keysDir>/eventgrid-key.json`, created if absent. A key an older host kept in the data
 * dir is taken over (so a running publisher's key stays valid) and removed from there: no key under MESH_DATA_DIR.
 */
export async function loadEventGridAccessKey(keysDir: string, dataDir: string): Promise<string> {
    const legacy = join(dataDir, EVENTGRID_ACCESS_KEY_FILE);
    const parse = (text: string, source: string): string => {
        const key = (JSON.parse(text) as { key?: unknown }).key;
        if (typeof key !== 'string' || key.length < 32) throw new Error(`${source} holds no access key`);
        return key;
    };
    const key = await loadOrCreateKeyFile(
        join(keysDir, EVENTGRID_ACCESS_KEY_FILE),
        () => {
            let old: string | undefined;
            try {
                old = parse(readFileSync(legacy, 'utf8'), legacy);
            } catch {
                old = undefined;
            }
            return JSON.stringify({ key: old ?? randomBytes(32).toString('base64') });
        },
        parse,
    );
    if (join(keysDir, EVENTGRID_ACCESS_KEY_FILE) !== legacy) rmSync(legacy, { force: true });
    return key;
}

/** The cipher of the local topic's store, from `<keysDir>/eventgrid-keys.json` (created if absent). */
export async function loadEventGridCipher(keysDir: string): Promise<FieldCipher> {
    const ring = await loadOrCreateKeyFile(
        join(keysDir, EVENTGRID_KEYS_FILE),
        () => `${JSON.stringify(newKeyRingDoc(), null, 2)}\n`,
        parseKeyRing,
    );
    return new FieldCipher(ring);
}

/** Where a stored event sits: the same text sealed for another row or table does not open. */
export type EventSlot = 'events' | 'dead_letters';

function contextOf(slot: EventSlot, eventId: string): SealContext {
    return { runId: 'eventgrid', field: `${slot}[${eventId}]` };
}

/** Seals an event's JSON text for its row; the stored form is the sealed value's JSON. */
export function sealEventText(cipher: FieldCipher, slot: EventSlot, eventId: string, text: string): string {
    return JSON.stringify(cipher.sealJson(text, contextOf(slot, eventId)));
}

/** The event's JSON text as published. A row written before the store was sealed reads as it is. */
export function openEventText(cipher: FieldCipher, slot: EventSlot, eventId: string, stored: string): string {
    let parsed: unknown;
    try {
        parsed = JSON.parse(stored);
    } catch {
        return stored;
    }
    return isSealed(parsed) ? cipher.openJson(parsed, contextOf(slot, eventId)) : stored;
}
