/**
 * Two figures measured side by side in alternating rounds (which side goes first alternates too):
 * on a shared, noisy machine a burst of load spoils one round, not the row.
 */

/** Means of both sides, and the median and spread of the per-round ratios a / b. */
export interface Alternated {
  a: number;
  b: number;
  ratio: number;
  spread: [number, number];
}

/** Runs `a` and `b` `rounds` times (@default 6) in alternating order; `warm` is false in the first round. */
export async function alternate(a: (warm: boolean) => Promise<number>, b: (warm: boolean) => Promise<number>, rounds = 6): Promise<Alternated> {
  const as: number[] = [];
  const bs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const warm = round > 0;
    if (round % 2 === 0) {
      as.push(await a(warm));
      bs.push(await b(warm));
    } else {
      bs.push(await b(warm));
      as.push(await a(warm));
    }
  }
  const ratios = as.map((x, i) => x / bs[i]!).sort((x, y) => x - y);
  return { a: mean(as), b: mean(bs), ratio: median(ratios), spread: [ratios[0]!, ratios.at(-1)!] };
}

/** The arithmetic mean. */
export function mean(xs: readonly number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

/** The median of `xs` (any order). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const mid = s.length / 2;
  return s.length % 2 ? s[Math.floor(mid)]! : (s[mid - 1]! + s[mid]!) / 2;
}
