// The flags of `vmmig cache settings` as the CLI reads them, and the durations it shows back.
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration, parseFraction, parseRetention } from '../../../cli/commands/cache.ts';
import { UsageError } from '../../../cli/config.ts';

describe('--grace', () => {
  it.each([
    ['0', 0],
    ['90', 90],
    ['90s', 90],
    ['10m', 600],
    ['1h', 3600],
    ['2d', 172_800],
    [' 15 m ', 900],
  ])('%s is %d seconds', (text, seconds) => {
    expect(parseDuration('--grace', text)).toBe(seconds);
  });

  it.each(['', 'soon', '-1m', '1.5h', '1w', '10 minutes'])(
    'refuses "%s" as a usage error naming the flag',
    (text) => {
      expect(() => parseDuration('--grace', text)).toThrow(UsageError);
      expect(() => parseDuration('--grace', text)).toThrow(/--grace/);
    },
  );

  it.each([
    [0, '0s'],
    [45, '45s'],
    [600, '10m'],
    [3600, '1h'],
    [5400, '90m'],
    [86_400, '1d'],
    [90_000, '25h'],
  ])('%d seconds show as %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
    expect(parseDuration('--grace', text)).toBe(seconds);
  });
});

describe('--retention', () => {
  it('takes whole days, with or without the d, or none', () => {
    expect(parseRetention('30d')).toBe(30);
    expect(parseRetention('30')).toBe(30);
    expect(parseRetention('none')).toBeNull();
    for (const bad of ['', '12h', '1.5d', 'never', '-3d'])
      expect(() => parseRetention(bad)).toThrow(UsageError);
  });
});

describe('--high-water and --low-water', () => {
  it('take a fraction or a percentage; the range is the API’s to check', () => {
    expect(parseFraction('--high-water', '0.9')).toBe(0.9);
    expect(parseFraction('--high-water', '.9')).toBe(0.9);
    expect(parseFraction('--high-water', '90%')).toBe(0.9);
    expect(parseFraction('--low-water', '75.5%')).toBeCloseTo(0.755);
    expect(parseFraction('--high-water', '2')).toBe(2);
    for (const bad of ['', 'high', '-0.5', '0,9', '90 percent'])
      expect(() => parseFraction('--low-water', bad)).toThrow(/--low-water/);
  });
});
