/**
 * The audit chain key ring of the tests: the one stores opened without a key source use in this process (see
 * adapters/audit/chainKeys.ts `ephemeralChainKeyRing`), so records they append verify with it.
 */
import { ephemeralChainKeyRing } from '../../adapters/audit/chainKeys';

export const TEST_KEYS = ephemeralChainKeyRing();
