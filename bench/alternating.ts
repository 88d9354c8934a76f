/**
 * Two figures measured side by side in alternating rounds (which side goes first alternates too):
 * on a shared, noisy machine a burst of load spoils one round, not the row. `alternate` for two
 * numbers; `alternateRounds` and `medianRound` for runs that measure several figures each (a
 * service and its baseline), where a row's figure, baseline and ratio must come from one round.
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
  const all = await alternateRounds(rounds, (round) => a(round > 0), (round) => b(round > 0));
  const ratios = all.map(({ svc, bare }) => svc / bare).sort((x, y) => x - y);
  return { a: mean(all.map((r) => r.svc)), b: mean(all.map((r) => r.bare)), ratio: median(ratios), spread: [ratios[0]!, ratios.at(-1)!] };
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

/** One round of `alternateRounds`: the service's (or the first side's) run and the baseline's, one right after the other. */
export interface Round<S, B> {
  svc: S;
  bare: B;
}

/**
 * Runs `service` and `baseline` `rounds` times, alternating which goes first; the service goes
 * first in the first round (a baseline may need what it measured, a frame of its size). Both get
 * the round's index.
 */
export async function alternateRounds<S, B>(rounds: number, service: (round: number) => Promise<S>, baseline: (round: number) => Promise<B>): Promise<Round<S, B>[]> {
  const all: Round<S, B>[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      const svc = await service(r);
      all.push({ svc, bare: await baseline(r) });
    } else {
      const bare = await baseline(r);
      all.push({ svc: await service(r), bare });
    }
  }
  return all;
}

/**
 * The round whose `ratio` is the median (the lower middle for an even count), so a row's figure,
 * baseline and ratio come from that one round and agree; `spread` lists every round's ratio, sorted.
 */
export function medianRound<R>(rounds: readonly R[], ratio: (r: R) => number): { round: R; ratio: number; spread: string } {
  const sorted = [...rounds].sort((a, b) => ratio(a) - ratio(b));
  const round = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return { round, ratio: ratio(round), spread: `rounds: ${sorted.map((r) => ratio(r).toFixed(2)).join(', ')}` };
}
