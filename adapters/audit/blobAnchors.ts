/**
 * The anchor store on Azure: one append blob per run (`runs/<runId>.ndjson`) in a container whose immutability (WORM)
 * policy allows protected append writes (infra/bicep/main.bicep), so a head once anchored can be neither overwritten
 * nor deleted for the policy's period, not even by the app's own identity. Each append of an audit record appends one
 * line `{"seq":n,"hash":"…"}`; the head is the highest seq (the first line for a seq counts).
 *
 * Reached with the app's identity (`MESH_AUDIT_ANCHOR_CONTAINER_URL`), or with a connection string
 * (`MESH_AUDIT_ANCHOR_CONNECTION`, Azurite in the tests; the container is then created if absent).
 * `@azure/storage-blob` is loaded on first use only.
 */
import type { ContainerClient } from '@azure/storage-blob';

import type { AnchoredHead } from '../../domain/audit';
import type { ChainAnchors } from '../../domain/ports';

export type BlobAnchorTarget = { containerUrl: string } | { connection: string; container: string };

/** The blob of a run: readable names for ordinary ids, base64url for anything else. */
export function anchorBlobName(runId: string): string {
    return /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/.test(runId)
        ? `runs/${runId}.ndjson`
        : `runs/b64-${Buffer.from(runId, 'utf8').toString('base64url')}.ndjson`;
}

export class BlobChainAnchors implements ChainAnchors {
    private container: Promise<ContainerClient> | undefined;
    /** Blobs known to exist: their appends skip the create. */
    private readonly created = new Set<string>();

    constructor(private readonly target: BlobAnchorTarget) {}

    async record(runId: string, seq: number, hash: string): Promise<void> {
        const blob = (await this.client()).getAppendBlobClient(anchorBlobName(runId));
        const line = `${JSON.stringify({ seq, hash })}\n`;
        if (!this.created.has(blob.name)) {
            await blob.createIfNotExists({ blobHTTPHeaders: { blobContentType: 'application/x-ndjson' } });
            this.created.add(blob.name);
        }
        await blob.appendBlock(line, Buffer.byteLength(line));
    }

    async head(runId: string): Promise<AnchoredHead | undefined> {
        const blob = (await this.client()).getAppendBlobClient(anchorBlobName(runId));
        let text: string;
        try {
            text = (await blob.downloadToBuffer()).toString('utf8');
        } catch (e: unknown) {
            if ((e as { statusCode?: number }).statusCode === 404) return undefined;
            throw e;
        }
        return headOf(text);
    }

    private client(): Promise<ContainerClient> {
        this.container ??= this.connect();
        this.container.catch(() => (this.container = undefined));
        return this.container;
    }

    private async connect(): Promise<ContainerClient> {
        const { ContainerClient: Client } = await import('@azure/storage-blob');
        if ('connection' in this.target) {
            const client = new Client(this.target.connection, this.target.container);
            await client.createIfNotExists();
            return client;
        }
        const { DefaultAzureCredential } = await import('@azure/identity');
        return new Client(this.target.containerUrl, new DefaultAzureCredential());
    }
}

/** The highest seq among the lines (the first hash for a seq), ignoring lines that are not anchors. */
export function headOf(text: string): AnchoredHead | undefined {
    let head: AnchoredHead | undefined;
    for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        let a: Partial<AnchoredHead>;
        try {
            a = JSON.parse(line) as Partial<AnchoredHead>;
        } catch {
            continue;
        }
        if (!Number.isSafeInteger(a.seq) || typeof a.hash !== 'string') continue;
        if (!head || a.seq! > head.seq) head = { seq: a.seq!, hash: a.hash };
    }
    return head;
}
