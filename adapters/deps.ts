/**
 * The composition root: builds each adapter once per process, lazily, from configuration. Triggers and
 * activities take what they need from here; tests pass fakes to the handler factories instead.
 */
import type { AuditLog, EngineClient, PolicyStore, RunStore } from '../domain/ports';
import type { StepPorts } from '../domain/steps';
import { JwtAuthenticator } from './auth/jwtAuthenticator';
import { authConfig, storeConfig } from './config';
import { openEmbeddedStores } from './embedded/sqliteStores';
import { engineConfig } from './engines/config';
import { HttpEngineClient } from './engines/httpEngineClient';

export interface Deps {
    runs: RunStore;
    audit: AuditLog;
    policies: PolicyStore;
    auth: JwtAuthenticator;
    engine: EngineClient;
    steps: StepPorts;
    now: () => Date;
}

let built: Deps | undefined;

export function deps(): Deps {
    built ??= build();
    return built;
}

function build(): Deps {
    const store = storeConfig();
    if (store.kind !== 'embedded') throw new Error(`MESH_STORE=${store.kind} is not available in this build.`);
    const { runs, audit, policies } = openEmbeddedStores(store.dataDir);
    let engine: EngineClient | undefined;
    const lazyEngine: EngineClient = { invoke: (req) => (engine ??= new HttpEngineClient(engineConfig())).invoke(req) };
    let auth: JwtAuthenticator | undefined;
    const now = (): Date => new Date();
    return {
        runs,
        audit,
        policies,
        get auth() {
            return (auth ??= new JwtAuthenticator(authConfig()));
        },
        engine: lazyEngine,
        steps: { runs, audit, engine: lazyEngine, now },
        now,
    };
}
