import { formatUsd, type Micros } from './money.js';

/** What a person is told when neither model provider answered and neither reported any usage. */
export const PROVIDERS_DOWN = 'both model providers are unavailable right now; nothing was charged';

/**
 * What a person is told when neither model provider answered: "nothing was charged" only when that is
 * true. A provider that failed mid-stream may have reported tokens, which are charged (the ledger's rule).
 */
export function describeProvidersDown(costMicros: Micros): string {
  return costMicros === 0
    ? PROVIDERS_DOWN
    : `both model providers are unavailable right now; ${formatUsd(costMicros)} was charged for what they reported using`;
}
