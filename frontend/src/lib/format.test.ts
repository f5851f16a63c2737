import { describe, expect, it } from 'vitest';
import { formatClock, retryAtText, retryCountdown, waitingText } from './format';

// Local times, so the tests hold in every time zone.
const at = (h: number, m: number, s: number) => new Date(2026, 10, 29, h, m, s);
const iso = (d: Date) => d.toISOString();

describe('waitingText', () => {
  const waiting = { since: iso(at(14, 3, 7)), resume_by: iso(at(14, 3, 42)) };

  it('says since when and by when, before the resume time', () => {
    expect(waitingText(waiting, at(14, 3, 20).getTime())).toBe(
      'Waiting for a worker since 14:03:07; expected to resume by 14:03:42',
    );
  });

  it('says any moment now once the resume time has passed', () => {
    expect(waitingText(waiting, at(14, 3, 42).getTime())).toBe(
      'Waiting for a worker since 14:03:07; expected to resume any moment now',
    );
  });

  it('says only what it can read', () => {
    expect(waitingText({ since: 'soon', resume_by: 'later' }, 0)).toBe('Waiting for a worker');
  });
});

describe('formatClock', () => {
  it('pads hours, minutes and seconds', () => {
    expect(formatClock(iso(at(9, 5, 1)))).toBe('09:05:01');
    expect(formatClock('not a time')).toBeNull();
  });
});

describe('retry texts', () => {
  it('tell when and how long', () => {
    const when = at(14, 3, 42).getTime();
    expect(retryAtText(when)).toBe('You can try again at 14:03:42.');
    expect(retryCountdown(when, when - 11_200)).toBe('Try again in 12 s');
    expect(retryCountdown(when, when)).toBe('');
  });
});
