/**
 * Azurite (the local Azure Storage of the design card) for tests: `azurite-blob` on a free loopback port, with a temp
 * `--location`, started fresh on every call and stopped (and its files removed) by `close`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Azurite's well-known development account (public, documented by Microsoft; accepted by Azurite only). */
const ACCOUNT = 'devstoreaccount1';
const ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface Azurite {
    /** A connection string for the blob service. */
    connection: string;
    port: number;
    close(): Promise<void>;
}

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address() as { port: number };
            s.close(() => resolve(port));
        });
    });
}

function accepts(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => {
            socket.destroy();
            resolve(true);
        });
        socket.once('error', () => resolve(false));
    });
}

export async function startAzurite(): Promise<Azurite> {
    const location = mkdtempSync(join(tmpdir(), 'mesh-azurite-'));
    const port = await freePort();
    const bin = join(__dirname, '..', '..', 'node_modules', '.bin', 'azurite-blob');
    const child: ChildProcess = spawn(
        bin,
        [
            '--blobHost',
            '127.0.0.1',
            '--blobPort',
            String(port),
            '--location',
            location,
            '--skipApiVersionCheck',
            '--disableTelemetry',
            '--silent',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 30_000;
    while (!(await accepts(port))) {
        if (child.exitCode !== null || Date.now() > deadline) {
            child.kill('SIGKILL');
            rmSync(location, { recursive: true, force: true });
            throw new Error(`azurite-blob did not start on port ${port}: ${stderr}`);
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    return {
        port,
        connection:
            `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${ACCOUNT_KEY};` +
            `BlobEndpoint=http://127.0.0.1:${port}/${ACCOUNT};`,
        close: async () => {
            if (child.exitCode === null) {
                child.kill('SIGTERM');
                await exited;
            }
            rmSync(location, { recursive: true, force: true });
        },
    };
}
