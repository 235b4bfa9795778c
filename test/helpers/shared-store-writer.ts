/**
 * One bot instance's writes, run as its own process by test/core/document-store.test.ts:
 * FAQ entries, inbox items and turns of one user, all at once, into a store that another
 * process writes the same way at the same time.
 * Usage: node --import tsx shared-store-writer.ts <storage url> <namespace> <writer name> <count>
 */
import { FaqStore } from '../../src/core/faq/faq-store.js';
import { Inbox } from '../../src/core/conversation/inbox.js';
import { ConversationMemory } from '../../src/core/conversation/memory.js';
import { openStorage } from '../../src/core/storage/open-storage.js';

const [url, namespace, writer, countText] = process.argv.slice(2);
const count = Number(countText);
const storage = await openStorage(url, { namespace });
const faq = FaqStore.forScope(storage.documents, 'shared');
const inbox = new Inbox(storage.documents, 'shared');
const memory = new ConversationMemory(storage.turns);
const scope = { platform: 'local', workspace: 'cluster' };
await Promise.all(
  Array.from({ length: count }, async (_, i) => {
    await faq.add(`Question ${i} from ${writer}?`, `Answer ${i}.`);
    await inbox.add({ question: `Unanswered ${i} from ${writer}?`, askedBy: writer, at: new Date().toISOString(), bestScore: 0 });
    await memory.recordTurn(scope, 'same-user', { role: 'user', text: `${writer} ${i}`, at: Date.now() });
  }),
);
await storage.close();
