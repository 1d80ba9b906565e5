/**
 * Discord ids are snowflakes: milliseconds since the Discord epoch, shifted left 22 bits, plus worker,
 * process and increment bits. discord.js derives `createdAt` from them and sorts messages by them, so the
 * fake mints real ones in creation order.
 * https://discord.com/developers/docs/reference#snowflakes
 */

const DISCORD_EPOCH_MS = 1_420_070_400_000n;
const FAKE_WORKER_BITS = 1n << 17n;
const MAX_INCREMENT = 4095n;

let lastMilliseconds = 0n;
let increment = 0n;

/** A new snowflake, strictly greater than every one minted before in this process. */
export function nextSnowflake(): string {
  let milliseconds = BigInt(Date.now()) - DISCORD_EPOCH_MS;
  if (milliseconds <= lastMilliseconds) {
    milliseconds = lastMilliseconds;
    increment += 1n;
    if (increment > MAX_INCREMENT) {
      milliseconds += 1n;
      increment = 0n;
    }
  } else {
    increment = 0n;
  }
  lastMilliseconds = milliseconds;
  return ((milliseconds << 22n) | FAKE_WORKER_BITS | increment).toString();
}

export function snowflakeDate(id: string): Date {
  return new Date(Number((BigInt(id) >> 22n) + DISCORD_EPOCH_MS));
}

/** Orders snowflakes numerically (they outgrow string comparison when their lengths differ). */
export function compareSnowflakes(left: string, right: string): number {
  const difference = BigInt(left) - BigInt(right);
  return difference === 0n ? 0 : difference < 0n ? -1 : 1;
}
