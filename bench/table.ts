/** One benchmark row: the figure, its baseline measured in the same run, and their ratio. */
export interface BenchRow {
  name: string;
  figure: string;
  baseline: string;
  ratio: number;
  /** What the ratio means, e.g. "utilization" or "x slower". */
  ratioLabel: string;
  /** What limits it. */
  note: string;
}

/** A Markdown table, as the README shows it. */
export function formatTable(rows: BenchRow[]): string {
  const lines = ['| benchmark | figure | baseline | ratio | what limits it |', '|---|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.name} | ${r.figure} | ${r.baseline} | ${Number.isFinite(r.ratio) ? `${r.ratio.toFixed(3)} ${r.ratioLabel}` : '-'} | ${r.note} |`);
  return lines.join('\n');
}
