/** The Event Grid publisher (the real @azure/eventgrid client) against a topic stand-in on 127.0.0.1, and its config. */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { parseEventGridConfig } from '../../adapters/eventGrid/config';
import { EventGridPublisher } from '../../adapters/eventGrid/eventGridPublisher';
import { chainNext } from '../../domain/audit';
import { toCloudEvent } from '../../domain/events';
import { TEST_KEYS } from '../support/chainKeys';

interface Seen {
    method: string;
    url: string;
    headers: IncomingHttpHeaders;
    body: string;
}

let server: Server;
let endpoint: string;
const seen: Seen[] = [];
let status = 200;

beforeAll(async () => {
    server = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
            seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
            res.writeHead(status, { 'content-type': 'application/json' });
            res.end(status === 200 ? '' : JSON.stringify({ error: { code: 'Busy', message: 'try later' } }));
        });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/events`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

beforeEach(() => {
    seen.length = 0;
    status = 200;
});

const first = chainNext(
    undefined,
    {
        eventId: 'r1/0',
        runId: 'r1',
        type: 'pipeline.queued',
        at: '2025-03-01T10:00:00.000Z',
        actor: 'dana',
        correlationID: 'corr-1',
        details: { team: 'alpha' },
    },
    TEST_KEYS.current,
);
const second = chainNext(
    first,
    {
        eventId: 'r1/x',
        runId: 'r1',
        type: 'stage.started',
        at: '2025-03-01T10:00:01.250Z',
        actor: 'system',
        correlationID: 'corr-1',
        stage: 'generation',
    },
    TEST_KEYS.current,
);

describe('EventGridPublisher', () => {
    it('posts one CloudEvents batch with the topic key, and the events arrive exactly as mapped', async () => {
        const events = [toCloudEvent(first), toCloudEvent(second)];
        await new EventGridPublisher({ endpoint, key: 'k3y' }).publish(events);
        expect(seen).toHaveLength(1);
        const [req] = seen;
        expect(req!.method).toBe('POST');
        expect(req!.url).toMatch(/^\/api\/events\?api-version=/);
        expect(req!.headers['aeg-sas-key']).toBe('k3y');
        expect(req!.headers['content-type']).toBe('application/cloudevents-batch+json; charset=utf-8');
        expect(JSON.parse(req!.body)).toEqual(events);
    });

    it('sends nothing for an empty batch', async () => {
        await new EventGridPublisher({ endpoint, key: 'k' }).publish([]);
        expect(seen).toHaveLength(0);
    });

    it('rejects when the topic refuses the batch, after one request (the dispatcher owns retries)', async () => {
        status = 503;
        await expect(new EventGridPublisher({ endpoint, key: 'k' }).publish([toCloudEvent(first)])).rejects.toThrow();
        expect(seen).toHaveLength(1);
    });

    it('refuses plain http to anything but a loopback address', async () => {
        const remote = new EventGridPublisher({ endpoint: 'http://topic.invalid/api/events', key: 'k' });
        await expect(remote.publish([toCloudEvent(first)])).rejects.toThrow(/allowInsecureConnection/);
    });
});

describe('parseEventGridConfig', () => {
    it('is off without an endpoint', () => {
        expect(parseEventGridConfig({})).toBeUndefined();
        expect(parseEventGridConfig({ EVENTGRID_ENDPOINT: '  ', EVENTGRID_KEY: 'k' })).toBeUndefined();
    });

    it('reads the endpoint and key', () => {
        expect(
            parseEventGridConfig({
                EVENTGRID_ENDPOINT: 'https://t.westus-1.eventgrid.azure.net/api/events',
                EVENTGRID_KEY: 'k',
            }),
        ).toEqual({ endpoint: 'https://t.westus-1.eventgrid.azure.net/api/events', key: 'k' });
    });

    it('without a key authenticates with Entra ID, and refuses an endpoint that is not an http(s) URL', () => {
        expect(parseEventGridConfig({ EVENTGRID_ENDPOINT: 'https://t/api/events' })).toEqual({
            endpoint: 'https://t/api/events',
        });
        // The publisher is built without contacting Azure (the credential only fetches a token on the first send).
        expect(() => new EventGridPublisher({ endpoint: 'https://t/api/events' })).not.toThrow();
        expect(() => parseEventGridConfig({ EVENTGRID_ENDPOINT: 'topic', EVENTGRID_KEY: 'k' })).toThrow(
            /EVENTGRID_ENDPOINT/,
        );
        expect(() => parseEventGridConfig({ EVENTGRID_ENDPOINT: 'ftp://t/x', EVENTGRID_KEY: 'k' })).toThrow(
            /EVENTGRID_ENDPOINT/,
        );
    });
});
