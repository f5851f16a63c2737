import { describe, expect, it } from 'vitest';
import { parseFileIds, scenarios } from './fileIds';

describe('parseFileIds', () => {
  it('splits on commas, spaces and new lines and keeps the first appearance of each id', () => {
    expect(parseFileIds('70007, 70000\n70007  70014,,70000\t3')).toEqual({
      ids: [70007, 70000, 70014, 3],
      duplicates: 2,
      errors: [],
    });
  });

  it('accepts ids up to 2^53 - 1 and refuses 2^53', () => {
    expect(parseFileIds('9007199254740991').ids).toEqual([9007199254740991]);
    expect(parseFileIds('9007199254740992').errors[0]).toMatch(/“9007199254740992” is not a file id/);
  });

  it.each([['0'], ['-1'], ['1.5'], ['1e3'], ['abc'], ['+7'], ['0x10']])('refuses %s', (t) => {
    const r = parseFileIds(`70000 ${t}`);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain(`“${t}”`);
  });

  it('names the first three bad tokens and counts the rest', () => {
    const r = parseFileIds('a b c d e 1');
    expect(r.errors[0]).toMatch(/^“a”, “b”, “c” and 2 more are not file ids/);
  });

  it('needs at least one id', () => {
    expect(parseFileIds(' ,\n ').errors).toEqual(['Enter at least one file id.']);
  });

  it('allows 1000 different ids, not 1001, counting after de-duplication', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(parseFileIds([...ids, ...ids].join(',')).errors).toEqual([]);
    expect(parseFileIds([...ids, 1001].join(',')).errors[0]).toMatch(/at most 1000 different file ids; this list has 1001/);
  });

  it('has the demo’s three scenarios', () => {
    expect(Object.fromEntries(scenarios.map((s) => [s.key, s.ids]))).toEqual({
      available: [70000, 70007, 70014, 70021],
      unavailable: [70001, 70002, 70003, 70004],
      mixed: [70000, 70001, 70007, 70008],
    });
  });
});
