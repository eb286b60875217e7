/** forwardEvents (issue 4): each CloudEvent POSTed as signed JSON, retried with backoff, then thrown for redelivery. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { InvocationContext } from '@azure/functions';

import { SIGNATURE_HEADER, verifyMeshSignature } from '../../adapters/webhooks/signedWebhook';
import { FORWARD_RETRY, forwardEvents } from '../../functions/eventGrid/forwardEvents';

const SECRET = 'unit-secret';
const EVENT = {
    specversion: '1.0',
    id: 'run-1:3',
    type: 'mesh.stage.completed',
    source: '/mesh-orchestrator',
    subject: '/pipelines/run-1',
    time: '2025-01-01T00:00:00.000Z',
    datacontenttype: 'application/json',
    data: { orchestrationID: 'run-1', seq: 3, actor: 'system', correlationID: 'c-1' },
    correlationid: 'c-1',
};

interface Hit {
    body: string;
    signature: string | undefined;
    contentType: string | undefined;
}

let server: Server;
let url: string;
let hits: Hit[];
let answers: number[];

beforeEach(async () => {
    hits = [];
    answers = [];
    server = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
            const sig = req.headers[SIGNATURE_HEADER.toLowerCase()];
            hits.push({
                body,
                signature: typeof sig === 'string' ? sig : undefined,
                contentType: req.headers['content-type'],
            });
            res.writeHead(answers.shift() ?? 200);
            res.end();
        });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
});

afterEach(() => new Promise<void>((r) => server.close(() => r())));

const ctx = (): InvocationContext =>
    new InvocationContext({ functionName: 'forwardEvents', logHandler: () => undefined });

describe('forwardEvents', () => {
    it('does nothing when the event webhook is not configured', async () => {
        await forwardEvents(EVENT, ctx(), undefined);
        expect(hits).toEqual([]);
    });

    it('POSTs the CloudEvent as JSON with a valid X-Mesh-Signature', async () => {
        await forwardEvents(EVENT, ctx(), { url, secret: SECRET });
        expect(hits).toHaveLength(1);
        const [hit] = hits;
        expect(hit!.contentType).toBe('application/json');
        expect(JSON.parse(hit!.body)).toEqual(EVENT);
        expect(hit!.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
        expect(verifyMeshSignature(hit!.signature, hit!.body, SECRET)).toBe(true);
        expect(verifyMeshSignature(hit!.signature, hit!.body, 'another secret')).toBe(false);
    });

    it('retries with 200 ms × 2^n backoff and succeeds on the third attempt', async () => {
        answers = [500, 503];
        const waits: number[] = [];
        const sleep = (ms: number): Promise<void> => (waits.push(ms), Promise.resolve());
        await forwardEvents(EVENT, ctx(), { url, secret: SECRET }, { ...FORWARD_RETRY, sleep });
        expect(hits).toHaveLength(3);
        expect(waits).toEqual([200, 400]);
        expect(hits.every((h) => verifyMeshSignature(h.signature, h.body, SECRET))).toBe(true);
    });

    it('throws after three failed attempts, so Event Grid redelivers the event', async () => {
        answers = [500, 500, 500, 500];
        const sleep = (): Promise<void> => Promise.resolve();
        await expect(forwardEvents(EVENT, ctx(), { url, secret: SECRET }, { ...FORWARD_RETRY, sleep })).rejects.toThrow(
            'gave up after 3 attempts',
        );
        expect(hits).toHaveLength(3);
    });

    it('ignores something that is not an event', async () => {
        await forwardEvents({ nope: true }, ctx(), { url, secret: SECRET });
        await forwardEvents(null, ctx(), { url, secret: SECRET });
        expect(hits).toEqual([]);
    });
});
