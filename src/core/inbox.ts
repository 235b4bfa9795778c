import type { KeyValueStore } from './faq/faq-store.js';

/**
 * Questions the bot could not answer confidently, kept per FAQ scope for admins to turn into
 * FAQ entries. Newest last; capped so a busy bot's inbox stays readable.
 */
export interface InboxItem {
  readonly question: string;
  readonly askedBy: string;
  readonly at: string;
  readonly bestScore: number;
}

const CAPACITY = 200;

export class Inbox {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: KeyValueStore,
    private readonly scopeKey: string,
  ) {}

  async items(): Promise<InboxItem[]> {
    return ((await this.store.get(this.key())) as InboxItem[] | undefined) ?? [];
  }

  add(item: InboxItem): Promise<void> {
    return this.update((items) => [...items.filter((existing) => existing.question !== item.question), item].slice(-CAPACITY));
  }

  /** Removes and returns item `position` (1-based, as `faq inbox` lists them). */
  async take(position: number): Promise<InboxItem> {
    let taken: InboxItem | undefined;
    await this.update((items) => {
      taken = items[position - 1];
      return taken ? items.filter((_, i) => i !== position - 1) : items;
    });
    if (!taken) throw new RangeError(`there is no inbox item ${position}`);
    return taken;
  }

  /** Read-modify-write, one at a time, so concurrent adds do not drop each other. */
  private update(change: (items: InboxItem[]) => InboxItem[]): Promise<void> {
    const next = this.queue.then(async () => {
      await this.store.set(this.key(), change(await this.items()));
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  private key(): string {
    return `inbox:${this.scopeKey}`;
  }
}
