/**
 * The order of the upload bench's four sides in each round. A plain rotation, even one reversed
 * every other round, lets some side follow another more often than the rest: in the upload bench's
 * old order GraphQL never ran right after the bare server (whose 200 MB the kernel has just written
 * back) while REST and the checked baseline did 3 times in 8 rounds, and REST never followed the
 * checked baseline. Here, over the 12 rounds run as one stream (each round's first side follows the
 * previous round's last, and the first round follows the last one, which a warm-up stands in for),
 * each side takes every place 3 times and follows every other side exactly 4 times, so what one
 * side leaves behind (writeback, a busy disk, a warm cache) falls on each of the others alike.
 * Found by a backtracking search; test/balanced-order.test.ts checks both properties.
 */

/** Twelve rounds of the sides 0 to 3, in the order each round runs them (see the module comment). */
export const BALANCED_ROUNDS: readonly (readonly number[])[] = [
  [0, 1, 2, 3],
  [2, 3, 0, 1],
  [3, 0, 2, 1],
  [0, 1, 3, 2],
  [3, 0, 2, 1],
  [3, 2, 1, 0],
  [2, 3, 1, 0],
  [2, 1, 3, 0],
  [1, 2, 0, 3],
  [1, 2, 0, 3],
  [1, 0, 3, 2],
  [0, 3, 1, 2],
];

/** The order of round `round` (from 0): the table's rows in turn, so any multiple of 12 rounds is balanced. */
export function balancedOrder(round: number): readonly number[] {
  return BALANCED_ROUNDS[round % BALANCED_ROUNDS.length]!;
}
