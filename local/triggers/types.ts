import { FunctionRegistration, FunctionRegistry } from '../functionsCore';
import { DurableClientData, HostLog } from '../invoke';

export interface TriggerHost {
    registry: FunctionRegistry;
    clientData: () => DurableClientData;
    log: HostLog;
    dataDir: string;
}

/**
 * One kind of non-HTTP, non-durable trigger (timer, Event Grid, Service Bus …). Adding a trigger type to the
 * embedded host is one module implementing this, listed in ./index.ts.
 */
export interface TriggerAdapter {
    /** The binding type it serves, e.g. 'timerTrigger'. */
    readonly type: string;
    start(functions: FunctionRegistration[], host: TriggerHost): void | Promise<void>;
    stop(): void | Promise<void>;
}
