import { v7 as uuidv7 } from 'uuid';

/**
 * A new id for a turn or a model call: a UUIDv7, which starts with the time. Ledger rows are written in
 * time order, so their unique request-id index grows at its right edge, on a page that stays in cache,
 * instead of taking each insert at a random place in a million-row tree.
 */
export function newId(atMs?: number): string {
  return atMs === undefined ? uuidv7() : uuidv7({ msecs: atMs });
}
