/**
 * How busy each ComfyUI server was over the last minute: sampled once a second (whether it held a
 * prompt of ours), so the ratio a scrape reads does not depend on when it comes.
 */

/** Something with servers that may hold prompts of ours (the worker pool). */
export interface BusySource {
  members: readonly { url: string; busy: number }[];
}

/** Samples a BusySource; see the module comment. */
export class BusyTracker {
  private readonly samples = new Map<string, boolean[]>();
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param windowSamples samples kept per server. @default 60
   * @param intervalMs time between samples. @default 1000
   */
  constructor(
    private readonly source: BusySource,
    private readonly windowSamples = 60,
    private readonly intervalMs = 1000,
  ) {}

  /** Starts sampling (the timer never keeps the process alive). */
  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Fraction of the kept samples in which `url` was busy; 0 before the first sample. */
  ratio(url: string): number {
    const kept = this.samples.get(url);
    if (!kept?.length) return 0;
    return kept.filter(Boolean).length / kept.length;
  }

  /** Takes one sample of every server now. */
  sample(): void {
    for (const m of this.source.members) {
      const kept = this.samples.get(m.url) ?? [];
      kept.push(m.busy > 0);
      if (kept.length > this.windowSamples) kept.shift();
      this.samples.set(m.url, kept);
    }
  }
}
