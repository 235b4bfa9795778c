import { FaqError, toRecord, type FaqRecord, type RawRecord } from './entry.js';

/**
 * RFC 4180 CSV: a header row naming the columns (question and answer required; id, tags and
 * alternates optional; tags ';'-separated, alternates one per line of a quoted field).
 */
const COLUMNS = ['id', 'question', 'answer', 'tags', 'alternates'] as const;
type Column = (typeof COLUMNS)[number];

interface CsvRow {
  fields: string[];
  /** The line the row starts on; a quoted field can span several. */
  line: number;
}

export function parseCsv(text: string): FaqRecord[] {
  const rows = readRows(text).filter((row) => row.fields.some((field) => field.trim() !== ''));
  const header = rows.shift();
  if (header === undefined) return [];
  const columns = readHeader(header);
  return rows.map((row) => {
    if (row.fields.length !== columns.length) {
      throw new FaqError('FAQ_INVALID', `line ${row.line}: expected ${columns.length} fields (${columns.join(', ')}), found ${row.fields.length}`, {
        line: row.line,
      });
    }
    const raw: RawRecord = {};
    columns.forEach((column, i) => {
      // A blank alternates cell says nothing, as a missing key does in JSON: an import keeps the entry's alternates.
      if (column !== 'alternates' || row.fields[i].trim() !== '') raw[column] = row.fields[i];
    });
    return toRecord(raw, row.line);
  });
}

function readHeader(header: CsvRow): Column[] {
  const columns: Column[] = [];
  for (const field of header.fields) {
    const name = field.trim().toLowerCase();
    if (!(COLUMNS as readonly string[]).includes(name)) {
      const hint = header.fields.length === 1 && /[;\t]/.test(field) ? '; separate columns with commas' : '';
      throw new FaqError('FAQ_INVALID', `line ${header.line}: unknown column "${field.trim()}"; the columns are ${COLUMNS.join(', ')}${hint}`, {
        line: header.line,
      });
    }
    if (columns.includes(name as Column)) {
      throw new FaqError('FAQ_INVALID', `line ${header.line}: the column "${name}" appears twice`, { line: header.line });
    }
    columns.push(name as Column);
  }
  for (const required of ['question', 'answer'] as const) {
    if (!columns.includes(required)) {
      throw new FaqError('FAQ_INVALID', `line ${header.line}: the header row has no "${required}" column (it has ${columns.join(', ')})`, {
        line: header.line,
      });
    }
  }
  return columns;
}

/** Splits the text into rows of fields; a quoted field may hold commas, quotes ("") and line breaks. */
function readRows(text: string): CsvRow[] {
  const rows: CsvRow[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let lineStart = 0;
  let rowLine = 1;
  let i = 0;
  const fail = (message: string, at: number): never => {
    throw new FaqError('FAQ_INVALID', `line ${line}, column ${at - lineStart + 1}: ${message}`, { line, column: at - lineStart + 1 });
  };
  const endRow = (): void => {
    fields.push(field);
    rows.push({ fields, line: rowLine });
    fields = [];
    field = '';
  };
  while (i < text.length) {
    const char = text[i];
    if (char === '"') {
      // Blank space before a quote is tolerated: `a, "b"` reads as a quoted second field.
      if (field.trim() !== '') fail('a quote inside an unquoted field; put the whole field in quotes and double the quotes inside it', i);
      const openLine = line;
      field = '';
      i++;
      for (;;) {
        const quote = text.indexOf('"', i);
        if (quote === -1) {
          throw new FaqError('FAQ_INVALID', `line ${openLine}: a quoted field starts here and is never closed`, { line: openLine });
        }
        const chunk = text.slice(i, quote);
        field += chunk;
        const lastBreak = chunk.lastIndexOf('\n');
        if (lastBreak !== -1) {
          line += chunk.split('\n').length - 1;
          lineStart = i + lastBreak + 1;
        }
        i = quote + 1;
        if (text[i] !== '"') break;
        field += '"';
        i++;
      }
      while (text[i] === ' ' || text[i] === '\t') i++;
      if (i < text.length && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
        fail(`unexpected ${JSON.stringify(text[i])} after a closing quote; a quote inside a quoted field is written twice ("")`, i);
      }
      continue;
    }
    if (char === ',') {
      fields.push(field);
      field = '';
      i++;
      continue;
    }
    if (char === '\r' || char === '\n') {
      endRow();
      i += char === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      lineStart = i;
      rowLine = line;
      continue;
    }
    field += char;
    i++;
  }
  if (field !== '' || fields.length > 0) endRow();
  return rows;
}

export function serializeCsv(entries: readonly FaqRecord[]): string {
  const columns: Column[] = [];
  if (entries.some((entry) => entry.id !== undefined)) columns.push('id');
  columns.push('question', 'answer');
  if (entries.some((entry) => entry.tags !== undefined)) columns.push('tags');
  if (entries.some((entry) => entry.alternates?.length)) columns.push('alternates');
  const rows = [columns.join(',')];
  for (const entry of entries) {
    const cells = columns.map((column) => {
      if (column === 'tags') return (entry.tags ?? []).join(';');
      if (column === 'alternates') return (entry.alternates ?? []).join('\n');
      return entry[column] ?? '';
    });
    rows.push(cells.map(quoteField).join(','));
  }
  return `${rows.join('\r\n')}\r\n`;
}

function quoteField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}
