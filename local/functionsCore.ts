/**
 * A stand-in for `@azure/functions-core`, the module the Azure Functions Node worker injects. With it in
 * place, the app's own `app.http(...)`, `df.app.orchestration(...)` … calls register with this host exactly
 * as they do with the worker, so there is no second list of functions that could drift from the real one.
 */
import Module from 'node:module';

export interface BindingInfo {
    type: string;
    direction: 'in' | 'out';
    name?: string;
    route?: string;
    methods?: string[];
    authLevel?: string;
    schedule?: string;
    runOnStartup?: boolean;
    [key: string]: unknown;
}

export interface FunctionRegistration {
    name: string;
    bindings: Record<string, BindingInfo>;
    /** The v4 programming model's handler: `(triggerInput, InvocationContext) => result`. */
    handler: (...args: unknown[]) => unknown;
    triggerName: string;
    trigger: BindingInfo;
}

export type HookName = 'appStart' | 'appTerminate' | 'preInvocation' | 'postInvocation';

export class FunctionRegistry {
    readonly functions = new Map<string, FunctionRegistration>();
    readonly hooks = new Map<HookName, ((context: unknown) => unknown)[]>();

    byTriggerType(type: string): FunctionRegistration[] {
        const t = type.toLowerCase();
        return [...this.functions.values()].filter((f) => f.trigger.type.toLowerCase() === t);
    }

    /** Rebuilds InvocationContext.options (trigger / extraInputs / extraOutputs / return) as the worker does. */
    invocationOptions(f: FunctionRegistration): {
        trigger: BindingInfo & { name: string };
        extraInputs: (BindingInfo & { name: string })[];
        extraOutputs: (BindingInfo & { name: string })[];
        return?: BindingInfo & { name: string };
    } {
        const named = Object.entries(f.bindings).map(([name, b]) => ({ ...b, name }));
        return {
            trigger: named.find((b) => b.name === f.triggerName)!,
            extraInputs: named.filter((b) => b.direction === 'in' && b.name !== f.triggerName),
            extraOutputs: named.filter((b) => b.direction === 'out' && b.name !== '$return'),
            return: named.find((b) => b.name === '$return'),
        };
    }
}

let installed: FunctionRegistry | undefined;

/** Installs the module hook; must run before the app's first `app.*` call. Idempotent. */
export function installFunctionsCore(registry: FunctionRegistry, log: (level: string, message: string) => void): void {
    if (installed) throw new Error('the @azure/functions-core stand-in is already installed');
    installed = registry;
    const core = {
        version: 'embedded',
        hostVersion: '4.0.0-embedded',
        registerFunction(
            metadata: { name: string; bindings: Record<string, BindingInfo> },
            handler: (...args: unknown[]) => unknown,
        ) {
            if (registry.functions.has(metadata.name))
                throw new Error(`A function named '${metadata.name}' is already registered.`);
            const triggerName = Object.keys(metadata.bindings).find((k) =>
                /trigger$/i.test(metadata.bindings[k]!.type),
            );
            if (!triggerName) throw new Error(`Function '${metadata.name}' has no trigger binding.`);
            registry.functions.set(metadata.name, {
                name: metadata.name,
                bindings: metadata.bindings,
                handler,
                triggerName,
                trigger: metadata.bindings[triggerName]!,
            });
            return { dispose: () => registry.functions.delete(metadata.name) };
        },
        setProgrammingModel(): void {
            // The embedded host speaks the v4 model directly; nothing to negotiate.
        },
        getProgrammingModel(): undefined {
            return undefined;
        },
        registerHook(name: HookName, callback: (context: unknown) => unknown) {
            const list = registry.hooks.get(name) ?? [];
            list.push(callback);
            registry.hooks.set(name, list);
            return { dispose: () => list.splice(list.indexOf(callback), 1) };
        },
        log(level: string, category: string, message: string): void {
            log(level, `[${category}] ${message}`);
        },
    };
    const moduleWithLoad = Module as unknown as {
        _load: (request: string, parent: unknown, isMain: boolean) => unknown;
    };
    const originalLoad = moduleWithLoad._load;
    moduleWithLoad._load = function (request: string, _parent: unknown, _isMain: boolean): unknown {
        if (request === '@azure/functions-core') return core;
        // eslint-disable-next-line prefer-rest-params
        return originalLoad.apply(this, arguments as unknown as [string, unknown, boolean]);
    };
}
