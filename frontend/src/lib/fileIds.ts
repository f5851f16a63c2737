// Reading the file ids a person types, by the API's rules: 1 to 1000 positive integers below
// 2^53, separated by commas, spaces or new lines; duplicates are removed, keeping the order of
// first appearance. The server checks the same rules; checking here says what is wrong at once.

/** MAX_FILES is the API's default limit of ids in one job. */
export const MAX_FILES = 1000;

const LIMIT = 2n ** 53n;

/** ParsedIds is the outcome of reading the ids field. */
export interface ParsedIds {
  /** The ids to send, de-duplicated, in the order they first appear. */
  ids: number[];
  /** How many repeated ids were dropped. */
  duplicates: number;
  /** What is wrong, in words; empty when the ids can be sent. */
  errors: string[];
}

/** parseFileIds reads the text of the ids field. */
export function parseFileIds(text: string, maxFiles = MAX_FILES): ParsedIds {
  const tokens = text.split(/[\s,]+/).filter((t) => t !== '');
  const ids: number[] = [];
  const seen = new Set<number>();
  const invalid: string[] = [];
  let duplicates = 0;
  for (const token of tokens) {
    const id = readId(token);
    if (id === null) {
      invalid.push(token);
      continue;
    }
    if (seen.has(id)) {
      duplicates++;
      continue;
    }
    seen.add(id);
    ids.push(id);
  }
  const errors: string[] = [];
  if (invalid.length > 0) {
    const shown = invalid.slice(0, 3).map((t) => `“${shorten(t)}”`).join(', ');
    const more = invalid.length > 3 ? ` and ${invalid.length - 3} more` : '';
    errors.push(
      `${shown}${more} ${invalid.length === 1 ? 'is not a file id' : 'are not file ids'}: ` +
        'use whole numbers from 1 to 9007199254740991.',
    );
  }
  if (tokens.length === 0) errors.push('Enter at least one file id.');
  else if (ids.length > maxFiles) {
    errors.push(`A job takes at most ${maxFiles} different file ids; this list has ${ids.length}.`);
  }
  return { ids, duplicates, errors };
}

function readId(token: string): number | null {
  if (!/^\d+$/.test(token)) return null;
  const big = BigInt(token);
  if (big < 1n || big >= LIMIT) return null;
  return Number(big);
}

function shorten(t: string): string {
  return t.length > 24 ? t.slice(0, 21) + '…' : t;
}

/** Scenario is one of the demo's ready-made id lists. */
export interface Scenario {
  readonly key: string;
  readonly label: string;
  readonly description: string;
  readonly ids: readonly number[];
}

/** scenarios are the original demo's lists: ids divisible by 7 are available. */
export const scenarios: readonly Scenario[] = [
  { key: 'available', label: 'Available', description: 'every file can be prepared', ids: [70000, 70007, 70014, 70021] },
  { key: 'unavailable', label: 'Unavailable', description: 'no file can be prepared', ids: [70001, 70002, 70003, 70004] },
  { key: 'mixed', label: 'Mixed', description: 'two files can, two cannot', ids: [70000, 70001, 70007, 70008] },
];
