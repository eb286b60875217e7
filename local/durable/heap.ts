/** A binary min-heap of due times, for the host's durable timers (messages due in the future). */
export class DueHeap<T> {
    private readonly items: { due: number; value: T }[] = [];

    get size(): number {
        return this.items.length;
    }

    peek(): number | undefined {
        return this.items[0]?.due;
    }

    push(due: number, value: T): void {
        const a = this.items;
        a.push({ due, value });
        let i = a.length - 1;
        while (i > 0) {
            const p = (i - 1) >> 1;
            if (a[p]!.due <= a[i]!.due) break;
            [a[p], a[i]] = [a[i]!, a[p]!];
            i = p;
        }
    }

    /** Removes and returns every value due at or before `now`. */
    popDue(now: number): T[] {
        const out: T[] = [];
        while (this.items.length && this.items[0]!.due <= now) out.push(this.pop());
        return out;
    }

    private pop(): T {
        const a = this.items;
        const top = a[0]!;
        const last = a.pop()!;
        if (a.length) {
            a[0] = last;
            let i = 0;
            for (;;) {
                const l = 2 * i + 1;
                const r = l + 1;
                let m = i;
                if (l < a.length && a[l]!.due < a[m]!.due) m = l;
                if (r < a.length && a[r]!.due < a[m]!.due) m = r;
                if (m === i) break;
                [a[m], a[i]] = [a[i]!, a[m]!];
                i = m;
            }
        }
        return top.value;
    }
}
