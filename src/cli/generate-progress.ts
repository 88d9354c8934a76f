/**
 * `kontext generate`'s progress display: one bar per image (cli-progress MultiBar) on a terminal,
 * plain lines otherwise (logs, CI, pipes), from the transport's task updates.
 */
import cliProgress from 'cli-progress';
import type { TaskUpdate } from './generate-transport.js';

/** Shows a task's progress. */
export interface ProgressDisplay {
  update(update: TaskUpdate): void;
  /** Ends the display (bars stay on screen); call before printing anything else. */
  stop(): void;
}

/** Options of `createProgressDisplay`. */
export interface ProgressDisplayOptions {
  taskId: string;
  count: number;
  /** Updates carry each image's steps; otherwise each image's share is estimated from the task's progress. */
  perImageSteps: boolean;
  /** Bars when true, lines when false. @default process.stdout.isTTY */
  tty?: boolean;
  /** @default process.stdout */
  stream?: NodeJS.WriteStream;
}

/** Per image: how far it is (0-1) and a word on its state. */
interface ImageState {
  fraction: number;
  label: string;
}

/** Bars on a terminal, lines elsewhere. */
export function createProgressDisplay(options: ProgressDisplayOptions): ProgressDisplay {
  const stream = options.stream ?? process.stdout;
  const tracker = new ImageTracker(options.count, options.perImageSteps);
  return (options.tty ?? stream.isTTY === true) ? barDisplay(tracker, stream, options.count) : lineDisplay(tracker, stream, options.taskId);
}

/** Turns absolute task updates into per-image states; an image's fraction never goes back. */
class ImageTracker {
  readonly images: ImageState[];

  constructor(
    count: number,
    private readonly perImageSteps: boolean,
  ) {
    this.images = Array.from({ length: count }, () => ({ fraction: 0, label: 'waiting' }));
  }

  apply(u: TaskUpdate): void {
    const done = new Set(u.done);
    const waiting = u.status === 'pending' ? (u.queuePosition ? `queued, position ${u.queuePosition}` : 'queued') : undefined;
    // Without per-image steps, the task's progress is shared evenly by the unfinished images.
    const left = this.images.length - done.size;
    const estimate = left > 0 ? Math.min(0.99, Math.max(0, (u.progress * this.images.length) / 100 - done.size) / left) : 1;
    this.images.forEach((image, index) => {
      if (done.has(index)) {
        image.fraction = 1;
        image.label = 'done';
        return;
      }
      if (waiting) {
        image.label = waiting;
        return;
      }
      if (u.status !== 'processing') {
        image.label = u.status === 'completed' ? 'done' : u.status;
        return;
      }
      if (this.perImageSteps) {
        if (u.imageIndex === index && u.step !== null && u.totalSteps) {
          image.fraction = Math.max(image.fraction, Math.min(0.99, u.step / u.totalSteps));
          image.label = `step ${u.step}/${u.totalSteps}`;
        } else if (image.label.startsWith('queued')) {
          image.label = 'waiting';
        }
      } else {
        image.fraction = Math.max(image.fraction, estimate);
        image.label = image.fraction > 0 ? 'processing' : 'waiting for a worker';
      }
    });
  }
}

function barDisplay(tracker: ImageTracker, stream: NodeJS.WriteStream, count: number): ProgressDisplay {
  const multi = new cliProgress.MultiBar(
    {
      stream,
      format: ' image {index} {bar} {percentage}% | {label}',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = tracker.images.map((image, index) => multi.create(100, 0, { index: `${index + 1}/${count}`, label: image.label }));
  return {
    update(u) {
      tracker.apply(u);
      tracker.images.forEach((image, i) => bars[i]?.update(Math.round(image.fraction * 100), { label: image.label }));
    },
    stop() {
      multi.stop();
    },
  };
}

function lineDisplay(tracker: ImageTracker, stream: NodeJS.WriteStream, taskId: string): ProgressDisplay {
  let lastStatus = '';
  // Per image, the last quarter printed: four lines per image at most, whatever the update rate.
  const quarters = tracker.images.map(() => -1);
  const write = (line: string) => stream.write(`${line}\n`);
  return {
    update(u) {
      tracker.apply(u);
      tracker.images.forEach((image, i) => {
        const quarter = Math.floor(image.fraction * 4);
        if (quarter <= (quarters[i] ?? -1) || (quarter === 0 && image.fraction === 0)) return;
        quarters[i] = quarter;
        write(`image ${i + 1}/${tracker.images.length}: ${image.fraction >= 1 ? 'done' : `${Math.round(image.fraction * 100)}%`}`);
      });
      const status = u.status === 'pending' && u.queuePosition ? `pending, queue position ${u.queuePosition}` : u.status;
      if (status !== lastStatus) {
        lastStatus = status;
        write(`task ${taskId}: ${status}${u.error ? ` (${u.error})` : ''}`);
      }
    },
    stop() {},
  };
}
