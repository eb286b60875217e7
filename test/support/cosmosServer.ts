/**
 * A local Cosmos-API server for tests: `@vercel/cosmosdb-server` over plain HTTP on 127.0.0.1, in memory, fresh on
 * every call. Clients need `connectionPolicy: { enableEndpointDiscovery: false }` (parseCosmosConfig defaults it on
 * for an http loopback endpoint): with discovery on, the SDK follows the account metadata to an https address the
 * server does not serve and fails with EPROTO. What the server does and does not implement (no TTL enforcement, no
 * change feed, no OFFSET/LIMIT…): /work/shared/notes/durable-host-facts.md §6.1, and the Cosmos contract tests.
 */
import type { AddressInfo } from 'node:net';

import { CosmosClient } from '@azure/cosmos';
import { createHttpServer } from '@vercel/cosmosdb-server';

/** The Cosmos DB emulator's well-known account key (public; the server accepts any key anyway). */
export const EMULATOR_KEY = 'C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==';

export interface CosmosServer {
    endpoint: string;
    key: string;
    close(): Promise<void>;
}

/** Starts a fresh in-memory server; `port` 0 (the default) takes a free one. */
export async function startCosmosServer(port = 0): Promise<CosmosServer> {
    // keepAlive: the server otherwise answers every request with `connection: close`, a new TCP connection each.
    const server = createHttpServer({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
        });
    });
    const { port: bound } = server.address() as AddressInfo;
    return {
        endpoint: `http://127.0.0.1:${bound}`,
        key: EMULATOR_KEY,
        close: () =>
            new Promise<void>((resolve, reject) => {
                server.close((e) => (e ? reject(e) : resolve()));
                server.closeAllConnections();
            }),
    };
}

/** A client of `server` for tests that look behind the adapter (dispose it when done). */
export function cosmosClientOf(server: Pick<CosmosServer, 'endpoint' | 'key'>): CosmosClient {
    return new CosmosClient({
        endpoint: server.endpoint,
        key: server.key,
        connectionPolicy: { enableEndpointDiscovery: false },
    });
}
