import { FaqError } from '../faq/entry.js';
import type { KeyValueStore } from '../storage/document-store.js';

/**
 * Questions the bot could not answer confidently, or whose answer someone gave a thumbs-down,
 * kept per FAQ scope for admins to turn into FAQ entries. Newest last; capped so a busy bot's
 * inbox stays readable.
 */
export interface InboxItem {
  readonly question: string;
  readonly askedBy: string;
  readonly at: string;
  /** The best FAQ match's confidence when the question was asked; absent for a thumbs-down. */
  readonly bestScore?: number;
  /** Why the question is here; absent: unanswered (items stored before reasons were kept). */
  readonly reason?: InboxReason;
  /** For a thumbs-down on an answer from the FAQ: the entry that gave it. */
  readonly entryId?: string;
}

export type InboxReason = 'unanswered' | 'thumbs-down';

const CAPACITY = 200;

export class Inbox {
  constructor(
    private readonly store: KeyValueStore,
    private readonly scopeKey: string,
  ) {}

  async items(): Promise<InboxItem[]> {
    return ((await this.store.get(this.key())) as InboxItem[] | undefined) ?? [];
  }

  add(item: InboxItem): Promise<void> {
    return this.update((items) => ({ items: [...items.filter((existing) => existing.question !== item.question), item].slice(-CAPACITY), taken: undefined }));
  }

  /** Removes and returns item `position` (1-based, as `faq inbox` lists them). */
  async take(position: number): Promise<InboxItem> {
    const taken = await this.update((items) => ({ items: items.filter((_, i) => i !== position - 1), taken: items[position - 1] }));
    if (!taken) throw new FaqError('FAQ_NOT_FOUND', `there is no inbox item ${position}; /faq inbox lists them`);
    return taken;
  }

  /** Takes item `position` and hands it to `use`; when `use` fails, the item goes back, so nothing is lost. */
  async takeFor<T>(position: number, use: (item: InboxItem) => Promise<T>): Promise<T> {
    const item = await this.take(position);
    try {
      return await use(item);
    } catch (error) {
      await this.add(item);
      throw error;
    }
  }

  /** Atomic across processes, so that changes from several instances do not drop each other. */
  private update<T>(change: (items: InboxItem[]) => { items: InboxItem[]; taken: T }): Promise<T> {
    return this.store.update(this.key(), (stored) => {
      const { items, taken } = change((stored as InboxItem[] | undefined) ?? []);
      return { value: items, result: taken };
    });
  }

  private key(): string {
    return `inbox:${this.scopeKey}`;
  }
}
