/** The embedded host's keys, as tests read them: hosts started by `startHostProcess` keep them in `<dataDir>/keys`. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { HOST_KEYS_FILE, type HostKeys } from '../../local/hostKeys';
import type { HostProcess } from './hostProcess';

/** The keys in `<keysDir>/host-keys.json` (the host creates the file when it starts). */
export function hostKeys(keysDir: string): HostKeys {
    return JSON.parse(readFileSync(join(keysDir, HOST_KEYS_FILE), 'utf8')) as HostKeys;
}

/** The headers that open a host-internal route (the durable management API) of `host`: its system key. */
export function systemKeyHeaders(host: Pick<HostProcess, 'dataDir'>): Record<string, string> {
    return { 'x-functions-key': hostKeys(join(host.dataDir, 'keys')).masterKey };
}
