import { describe, expect, it } from 'vitest';
import { formatUsd, parseUsdAmount, usdNumberToMicros } from '../../src/core/money.js';

describe('parseUsdAmount', () => {
  it.each([
    ['0', 0],
    ['1', 1_000_000],
    ['2.5', 2_500_000],
    ['0.0001', 100],
    [' 10000 ', 10_000_000_000],
    ['9999.9999', 9_999_999_900],
  ])('when given %j, then it is %i micro-USD', (text, micros) => {
    expect(parseUsdAmount(text)).toEqual({ ok: true, micros });
  });

  it.each([
    ['-1', 'negative'],
    ['10000.0001', '$10,000'],
    ['10001', '$10,000'],
    ['0.00001', '4 decimals'],
    ['NaN', 'not an amount'],
    ['1e3', 'not an amount'],
    ['', 'not an amount'],
    ['$5', 'not an amount'],
    ['Infinity', 'not an amount'],
  ])('when given %j, then it is refused with a reason mentioning %j', (text, reason) => {
    const parsed = parseUsdAmount(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toContain(reason);
  });
});

describe('usdNumberToMicros', () => {
  it('when a Discord number option is exact to 4 decimals, then it converts without float drift', () => {
    expect(usdNumberToMicros(0.1)).toEqual({ ok: true, micros: 100_000 });
    expect(usdNumberToMicros(1234.5678)).toEqual({ ok: true, micros: 1_234_567_800 });
  });

  it.each([
    [-1, 'negative'],
    [Number.NaN, 'number of dollars'],
    [Number.POSITIVE_INFINITY, 'number of dollars'],
    [Number('1e309'), 'number of dollars'],
    [10_001, '$10,000'],
    [0.00001, '4 decimals'],
    [1e-7, '4 decimals'],
  ])('when given %d, then it is refused (%s)', (usd, reason) => {
    const parsed = usdNumberToMicros(usd);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toContain(reason);
  });
});

describe('formatUsd', () => {
  it('when formatting micro-USD, then it shows dollars with 4 decimals by default', () => {
    expect(formatUsd(3_100)).toBe('$0.0031');
    expect(formatUsd(0)).toBe('$0.0000');
    expect(formatUsd(1_234_567_800)).toBe('$1,234.5678');
    expect(formatUsd(1_000_000, 2)).toBe('$1.00');
    expect(formatUsd(49, 4)).toBe('$0.0000');
    expect(formatUsd(50, 4)).toBe('$0.0001');
  });
});
