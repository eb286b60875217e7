/**
 * Checks the whole configuration when the app starts (adapters/configCheck.ts): a missing or inconsistent setting stops
 * the host at start with every problem named, instead of 500s and failing timers later. An `appStart` hook runs before
 * any function is invoked, on the Functions host (the worker fails its start-up and logs the message) as on the
 * embedded host (`npm start` prints it and exits non-zero); importing this file in a test registers nothing.
 */
import { app } from '@azure/functions';

import { checkConfiguration } from '../../adapters/configCheck';

app.hook.appStart(() => checkConfiguration());
