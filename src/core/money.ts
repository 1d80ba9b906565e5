/**
 * Money is integer micro-USD everywhere (1 USD = 1,000,000 micros): no floats in the schema or in the
 * ledger maths, so sums are exact and comparisons against a budget cannot drift.
 */
export type Micros = number;

export const MICROS_PER_USD = 1_000_000;

/** The largest amount an admin may set as a budget, and the finest step they may set it in. */
export const MAX_BUDGET_USD = 10_000;
export const BUDGET_DECIMALS = 4;

export type ParsedAmount = { ok: true; micros: Micros } | { ok: false; reason: string };

const NEGATIVE: ParsedAmount = { ok: false, reason: 'amounts cannot be negative' };
const OUT_OF_RANGE: ParsedAmount = {
  ok: false,
  reason: `amounts go from $0 to $${MAX_BUDGET_USD.toLocaleString('en-US')}`,
};

/**
 * Parses a budget amount typed by a person ("1", "2.5", "0.0125"): a plain decimal from 0 to 10,000
 * with at most 4 decimals. 0 is valid and blocks all spending. Works on the text, not on a float, so
 * "0.00001" is refused rather than rounded to 0 and "1e3" or "NaN" never sneak through.
 */
export function parseUsdAmount(text: string): ParsedAmount {
  const trimmed = text.trim();
  if (trimmed.startsWith('-')) return NEGATIVE;
  const match = /^(\d+)(?:\.(\d+))?$/.exec(trimmed);
  if (!match) {
    return { ok: false, reason: `"${clip(trimmed)}" is not an amount in dollars, such as 5 or 2.50` };
  }
  const whole = match[1] ?? '0';
  const fraction = match[2] ?? '';
  if (fraction.length > BUDGET_DECIMALS) {
    return {
      ok: false,
      reason: `amounts have at most ${BUDGET_DECIMALS} decimals (the smallest step is $0.0001)`,
    };
  }
  const micros = Number(whole) * MICROS_PER_USD + Number(fraction.padEnd(6, '0'));
  if (!Number.isSafeInteger(micros) || micros > MAX_BUDGET_USD * MICROS_PER_USD) {
    return OUT_OF_RANGE;
  }
  return { ok: true, micros };
}

/** Same rules as {@link parseUsdAmount}, for a number that already went through a parser (a Discord option). */
export function usdNumberToMicros(usd: number): ParsedAmount {
  if (!Number.isFinite(usd))
    return { ok: false, reason: 'the amount must be a number of dollars, such as 5 or 2.50' };
  if (usd < 0) return NEGATIVE;
  if (usd > MAX_BUDGET_USD) return OUT_OF_RANGE;
  // String(0.00001) is "1e-5": write such numbers out in full so the decimals rule, not the syntax, decides.
  const text = String(usd).includes('e') ? usd.toFixed(20).replace(/0+$/, '') : String(usd);
  return parseUsdAmount(text);
}

/** "$0.0031": dollars with a fixed number of decimals, rounded half up on the micro amount. */
export function formatUsd(micros: Micros, decimals = 4): string {
  const sign = micros < 0 ? '-' : '';
  const absolute = Math.abs(micros);
  const step = 10 ** (6 - decimals);
  const rounded = Math.round(absolute / step) * step;
  const dollars = Math.floor(rounded / MICROS_PER_USD);
  const cents = String(rounded % MICROS_PER_USD)
    .padStart(6, '0')
    .slice(0, decimals);
  const wholeText = dollars.toLocaleString('en-US');
  return decimals > 0 ? `${sign}$${wholeText}.${cents}` : `${sign}$${wholeText}`;
}

/**
 * "0.000492": dollars with all six decimals and no symbol or separators, exact (no float in between), for
 * files a spreadsheet reads back to the micro-dollar.
 */
export function microsToDecimal(micros: Micros): string {
  const sign = micros < 0 ? '-' : '';
  const absolute = Math.abs(micros);
  const fraction = String(absolute % MICROS_PER_USD).padStart(6, '0');
  return `${sign}${Math.floor(absolute / MICROS_PER_USD)}.${fraction}`;
}

function clip(text: string): string {
  return text.length > 20 ? `${text.slice(0, 20)}…` : text;
}
