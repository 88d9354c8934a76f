/**
 * The median of benchmark rounds that measure several figures each (a service and its baseline,
 * side by side): the round itself is picked, so a row's figure, baseline and ratio come from one
 * round and agree, and the note lists every round's ratio as its spread.
 */

/** The round whose `ratio` is the median (the lower middle for an even count), and every round's ratio sorted, as text. */
export function medianRound<R>(rounds: readonly R[], ratio: (r: R) => number): { round: R; ratio: number; spread: string } {
  const sorted = [...rounds].sort((a, b) => ratio(a) - ratio(b));
  const round = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return { round, ratio: ratio(round), spread: `rounds: ${sorted.map((r) => ratio(r).toFixed(2)).join(', ')}` };
}
