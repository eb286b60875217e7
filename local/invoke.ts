/**
 * Builds the InvocationContext the worker would build for a registration, including the values of its
 * durable client input bindings, so `df.getClient(context)` works unchanged on this host.
 */
import { randomUUID } from 'node:crypto';

import { InvocationContext } from '@azure/functions';

import { FunctionRegistration, FunctionRegistry } from './functionsCore';

export interface DurableClientData {
    taskHubName: string;
    creationUrls: Record<string, string>;
    managementUrls: Record<string, string>;
    baseUrl: string;
    requiredQueryStringParameters: string;
    /** The Durable extension's local-only endpoint; this host does not hand it out (see durableClientData). */
    rpcBaseUrl?: string;
}

export type HostLog = (level: string, message: string) => void;

/**
 * The DurableClient's binding data: the management API's webhook URLs, each carrying the host's system key
 * (`code`), as the Functions host hands them out. No `rpcBaseUrl`: on Azure that endpoint listens on localhost only,
 * and its URLs cannot carry a key (the SDK builds them with `new URL(path, rpcBaseUrl)`), so the client uses the
 * keyed webhook URLs instead.
 */
export function durableClientData(origin: string, taskHub: string, systemKey: string): DurableClientData {
    const base = `${origin}/runtime/webhooks/durabletask`;
    const code = encodeURIComponent(systemKey);
    const qs = `taskHub=${taskHub}&connection=Storage&code=${code}`;
    const instance = `${base}/instances/INSTANCEID`;
    return {
        taskHubName: taskHub,
        creationUrls: {
            createNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?code=${code}`,
            waitOnNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&code=${code}`,
        },
        managementUrls: {
            id: 'INSTANCEID',
            statusQueryGetUri: `${instance}?${qs}`,
            sendEventPostUri: `${instance}/raiseEvent/{eventName}?${qs}`,
            terminatePostUri: `${instance}/terminate?reason={text}&${qs}`,
            rewindPostUri: `${instance}/rewind?reason={text}&${qs}`,
            purgeHistoryDeleteUri: `${instance}?${qs}`,
            restartPostUri: `${instance}/restart?${qs}`,
            suspendPostUri: `${instance}/suspend?reason={text}&${qs}`,
            resumePostUri: `${instance}/resume?reason={text}&${qs}`,
        },
        baseUrl: base,
        requiredQueryStringParameters: qs,
    };
}

export function invocationContext(
    registry: FunctionRegistry,
    f: FunctionRegistration,
    clientData: DurableClientData,
    log: HostLog,
    extra: Partial<ConstructorParameters<typeof InvocationContext>[0]> = {},
): InvocationContext {
    const options = registry.invocationOptions(f);
    const ctx = new InvocationContext({
        functionName: f.name,
        invocationId: randomUUID(),
        logHandler: (level, ...args) =>
            log(level, `[${f.name}] ${args.map((a) => (typeof a === 'string' ? a : safeInspect(a))).join(' ')}`),
        options,
        ...extra,
    });
    for (const input of options.extraInputs) {
        const type = input.type.toLowerCase();
        if (type === 'durableclient' || type === 'orchestrationclient') ctx.extraInputs.set(input.name, clientData);
    }
    return ctx;
}

function safeInspect(a: unknown): string {
    if (a instanceof Error) return a.stack ?? a.message;
    try {
        return JSON.stringify(a);
    } catch {
        return String(a);
    }
}
