/** Request bodies are UTF-8: a content-type naming another charset is refused before the body is read. */
import { HttpRequest } from '@azure/functions';

import { readLinkComment } from '../../adapters/http/approvalPages';
import { readJson } from '../../adapters/http/envelope';
import { ValidationError } from '../../domain/errors';

function request(contentType: string, body: string): HttpRequest {
    return new HttpRequest({
        method: 'POST',
        url: 'http://localhost/x',
        headers: { 'content-type': contentType },
        body: { string: body },
    });
}

it.each(['iso-8859-1', 'utf-16', '"UTF-16LE"', 'us-ascii', 'utf8'])('refuses JSON in charset %s', async (charset) => {
    const e = (await readJson(request(`application/json; charset=${charset}`, '{}')).catch((x: unknown) => x)) as
        ValidationError | undefined;
    expect(e).toBeInstanceOf(ValidationError);
    expect(e!.errors).toEqual([expect.objectContaining({ path: '/headers/content-type' })]);
});

it.each([
    'application/json',
    'application/json; charset=utf-8',
    'application/json;charset=UTF-8',
    'application/json; charset="utf-8"',
])('accepts %s', async (type) => {
    await expect(readJson(request(type, '{"a":1}'))).resolves.toEqual({ a: 1 });
});

it('refuses the approval page form in another charset, accepts it in utf-8', async () => {
    await expect(
        readLinkComment(request('application/x-www-form-urlencoded; charset=iso-8859-1', 'comment=ok')),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(
        readLinkComment(request('application/x-www-form-urlencoded; charset=UTF-8', 'comment=ok')),
    ).resolves.toBe('ok');
    await expect(readLinkComment(request('application/json; charset=utf-16', '{}'))).rejects.toBeInstanceOf(
        ValidationError,
    );
});
