/**
 * The simulated engines as their own process, as real engines are separate services: they get the machine's
 * other core instead of competing with the host's event loop. The child exits when its parent goes away,
 * even on kill -9 (the IPC channel closes), so no engine outlives its host.
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';

import type { Stage } from '../../domain/pipeline';
import { type SimulatorOptions, startSimulatedEngines } from './simulator';

interface Ready {
    type: 'ready';
    urls: Record<Stage, string>;
}

export interface EngineProcess {
    urls: Record<Stage, string>;
    stop(): Promise<void>;
}

/** Starts the engines in a child process and resolves with their URLs. */
export function startEngineProcess(options: SimulatorOptions): Promise<EngineProcess> {
    const child = fork(join(__dirname, 'process.js'), [], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env: { ...process.env, MESH_ENGINE_OPTIONS: JSON.stringify(options) },
    });
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the simulated engines did not start within 15 s')), 15_000);
        child.once('error', reject);
        child.once('exit', (code) => reject(new Error(`the simulated engines exited with ${code}`)));
        child.on('message', (m: Ready) => {
            if (m.type !== 'ready') return;
            clearTimeout(timer);
            resolve({
                urls: m.urls,
                stop: () =>
                    new Promise<void>((done) => {
                        if (child.exitCode !== null) return done();
                        child.once('exit', () => done());
                        child.kill('SIGTERM');
                    }),
            });
        });
    });
}

async function childMain(): Promise<void> {
    const options = JSON.parse(process.env.MESH_ENGINE_OPTIONS ?? '{}') as SimulatorOptions;
    const engines = await startSimulatedEngines(options);
    const stop = (): void => void engines.stop().finally(() => process.exit(0));
    process.on('disconnect', stop); // the host went away (even kill -9)
    process.on('SIGTERM', stop);
    process.on('SIGINT', () => undefined); // Ctrl+C reaches the whole group; the host stops us
    process.send?.({ type: 'ready', urls: engines.urls } satisfies Ready);
}

if (require.main === module) {
    childMain().catch((e: unknown) => {
        process.stderr.write(`simulated engines failed: ${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(1);
    });
}
