/**
 * The upload bench's round order: over its 12 rounds, run as one cyclic stream, every side takes
 * every place equally often and follows every other side (never itself) equally often.
 */
import { describe, expect, it } from 'vitest';
import { BALANCED_ROUNDS, balancedOrder } from '../bench/balanced-order.js';

describe('BALANCED_ROUNDS', () => {
  it('runs each of the four sides once per round, each in every place 3 times', () => {
    const places = new Map<string, number>();
    for (const row of BALANCED_ROUNDS) {
      expect([...row].sort()).toEqual([0, 1, 2, 3]);
      row.forEach((side, place) => places.set(`${side}@${place}`, (places.get(`${side}@${place}`) ?? 0) + 1));
    }
    expect(places.size).toBe(16);
    expect([...places.values()].every((n) => n === 3)).toBe(true);
  });

  it('has every side follow every other side 4 times in the stream, the last round followed by the first', () => {
    const stream = BALANCED_ROUNDS.flat();
    const follows = new Map<string, number>();
    stream.forEach((side, i) => {
      const previous = stream.at(i - 1)!; // i = 0: the last side of the last round
      follows.set(`${previous}>${side}`, (follows.get(`${previous}>${side}`) ?? 0) + 1);
    });
    expect(follows.size).toBe(12);
    for (let a = 0; a < 4; a++) expect(follows.has(`${a}>${a}`)).toBe(false);
    expect([...follows.values()].every((n) => n === 4)).toBe(true);
  });

  it('repeats after 12 rounds', () => {
    expect(balancedOrder(13)).toEqual(balancedOrder(1));
  });
});
