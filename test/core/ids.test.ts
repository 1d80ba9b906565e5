import { describe, expect, it } from 'vitest';
import { newId } from '../../src/core/ids.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('newId', () => {
  it('when many ids are made, then each is a distinct UUIDv7 (across refills of the random pool)', () => {
    const ids = Array.from({ length: 2_000 }, () => newId());
    for (const id of ids) expect(id).toMatch(UUID_V7);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('when ids are made at different times, then they sort by time', () => {
    const at = Date.parse('2026-11-24T12:00:00Z');
    const later = newId(at + 1);
    const earlier = newId(at);
    expect(earlier.replace(/-/g, '').slice(0, 12)).toBe(at.toString(16).padStart(12, '0'));
    expect([later, earlier].sort()).toEqual([earlier, later]);
  });
});
