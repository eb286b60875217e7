import type { IncomingMessage } from 'node:http';

/**
 * A request body, refused past `max` bytes. The rest is drained (not the socket destroyed) so the caller can
 * still answer 413.
 */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        req.on('data', (c: Buffer) => {
            size += c.length;
            if (size > max) {
                reject(new Error('body too large'));
                req.resume();
                return;
            }
            chunks.push(c);
        });
        req.on('end', () => resolve(Buffer.concat(chunks)));
        req.on('error', reject);
    });
}
