/** Reads a body stream to the end, refusing (with the caller's error) once it passes `maxBytes`. */
export async function readCapped(
    body: ReadableStream<Uint8Array> | null,
    maxBytes: number,
    tooLarge: () => Error,
): Promise<Buffer> {
    if (!body) return Buffer.alloc(0);
    const reader = body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
        const { done, value } = (await reader.read()) as { done: boolean; value?: Uint8Array };
        if (done || !value) break;
        total += value.byteLength;
        if (total > maxBytes) {
            await reader.cancel();
            throw tooLarge();
        }
        chunks.push(value);
    }
    return Buffer.concat(chunks);
}
