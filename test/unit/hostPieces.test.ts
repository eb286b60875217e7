/** Small pieces of the embedded host: route templates, timer schedules, the due-time heap. */
import { DueHeap } from '../../local/durable/heap';
import { compileRoute } from '../../local/http/routes';
import { nextOccurrence } from '../../local/triggers/timer';

describe('route templates', () => {
    it.each([
        ['pipeline/status/{id}', '/pipeline/status/abc', { id: 'abc' }],
        ['pipeline/status/{id}', '/Pipeline/STATUS/abc', { id: 'abc' }],
        ['test/orchestrators/{name}/{id?}', '/test/orchestrators/x', { name: 'x' }],
        ['test/orchestrators/{name}/{id?}', '/test/orchestrators/x/y', { name: 'x', id: 'y' }],
        ['files/{*rest}', '/files/a/b/c', { rest: 'a/b/c' }],
        ['items/{n:int}', '/items/42', { n: '42' }],
        ['items/{id}', '/items/a%20b', { id: 'a b' }],
    ])('%s matches %s', (template, path, params) => {
        expect(compileRoute(template).match(path)).toEqual(params);
    });

    it.each([
        ['pipeline/status/{id}', '/pipeline/status'],
        ['pipeline/status/{id}', '/pipeline/status/a/b'],
        ['items/{n:int}', '/items/x'],
        ['health/live', '/health/ready'],
    ])('%s does not match %s', (template, path) => {
        expect(compileRoute(template).match(path)).toBeUndefined();
    });

    it('ranks literal routes above parameter routes', () => {
        expect(compileRoute('pipeline/events').specificity).toBeGreaterThan(compileRoute('pipeline/{id}').specificity);
    });
});

describe('timer schedules', () => {
    const at = new Date('2026-01-01T00:00:00.500Z');
    it('reads six-field NCRONTAB with seconds', () => {
        expect(nextOccurrence('*/5 * * * * *', at).toISOString()).toBe('2026-01-01T00:00:05.000Z');
        expect(nextOccurrence('0 30 9 * * *', at).toISOString()).toBe('2026-01-01T09:30:00.000Z');
    });
    it('reads TimeSpan schedules', () => {
        expect(nextOccurrence('00:05:00', at).toISOString()).toBe('2026-01-01T00:05:00.500Z');
    });
    it('refuses five-field cron, as Azure Functions does', () => {
        expect(() => nextOccurrence('* * * * *', at)).toThrow(/six fields/);
    });
});

describe('due heap', () => {
    it('pops values in due order, only when due', () => {
        const heap = new DueHeap<string>();
        for (const [due, v] of [
            [5, 'e'],
            [1, 'a'],
            [3, 'c'],
            [2, 'b'],
            [4, 'd'],
        ] as const)
            heap.push(due, v);
        expect(heap.peek()).toBe(1);
        expect(heap.popDue(3)).toEqual(['a', 'b', 'c']);
        expect(heap.size).toBe(2);
        expect(heap.popDue(10)).toEqual(['d', 'e']);
        expect(heap.peek()).toBeUndefined();
    });
});
