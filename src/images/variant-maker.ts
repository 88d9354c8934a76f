/**
 * Variants of stored images (another format, a smaller width, another quality), made with sharp
 * the first time one is asked for and stored beside the original in the same BlobStore, so every
 * later request (on any replica) streams the stored bytes like an original's.
 *
 * Concurrent first requests for one variant make it once: they share one promise per variant key
 * in this process. Replicas may each make it once; their puts store the same bytes atomically, so
 * that is harmless. Renders run a few at a time (one Limiter per process), each decode is capped at
 * MAX_INPUT_PIXELS: a burst of requests for new variants waits instead of filling memory.
 */
import { buffer } from 'node:stream/consumers';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import type { BlobStore } from '../storage/blob-store.js';
import { Limiter } from './limiter.js';
import { encodeAs, FORMAT_INFO, MAX_INPUT_PIXELS } from './output-formats.js';
import type { Rendering } from './variant-spec.js';

/** Renders at once in this process, whichever store they are for. */
const RENDERS = new Limiter(2);

/** Options of {@link VariantMaker}. */
export interface VariantMakerOptions {
  /** Bounds the renders running at once. @default the process's limiter of 2 */
  limiter?: Limiter;
  /** Most pixels decoded from an original. @default MAX_INPUT_PIXELS (4096 x 4096) */
  maxInputPixels?: number;
}

/** Makes and stores variants of one store's images; see the module comment. */
export class VariantMaker {
  /** Variants this maker rendered and stored (not those it found stored), for tests and logs. */
  made = 0;
  private readonly inFlight = new Map<string, Promise<{ size: number } | undefined>>();
  private readonly limiter: Limiter;
  private readonly maxInputPixels: number;

  constructor(
    private readonly store: BlobStore,
    options: VariantMakerOptions = {},
  ) {
    this.limiter = options.limiter ?? RENDERS;
    this.maxInputPixels = options.maxInputPixels ?? MAX_INPUT_PIXELS;
  }

  /**
   * The size of the variant stored under `key`, first rendering it from the original under
   * `originalKey` when it is not stored yet; undefined when the original is missing.
   */
  async ensure(originalKey: string, key: string, rendering: Rendering): Promise<{ size: number } | undefined> {
    const stored = await this.store.stat(key);
    if (stored) return stored;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.make(originalKey, key, rendering).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private make(originalKey: string, key: string, rendering: Rendering): Promise<{ size: number } | undefined> {
    return this.limiter.run(async () => {
      // A request whose stat missed just before another's make finished arrives here after it.
      const stored = await this.store.stat(key);
      if (stored) return stored;
      const bytes = await this.render(originalKey, rendering);
      if (!bytes) return undefined;
      const put = await this.store.put(key, Readable.from([bytes]), { contentType: FORMAT_INFO[rendering.format].contentType });
      this.made++;
      return put;
    });
  }

  /** The encoded variant; undefined when the original is not stored. */
  private async render(originalKey: string, rendering: Rendering): Promise<Buffer | undefined> {
    if (!(await this.store.stat(originalKey))) return undefined;
    // A folder store's file is read by libvips itself; any other store's object is read whole first.
    const local = this.store.localPath?.(originalKey);
    let input: string | Buffer;
    if (local) input = local;
    else {
      const body = await this.store.get(originalKey);
      if (!body) return undefined;
      input = await buffer(body);
    }
    let pipeline = sharp(input, { limitInputPixels: this.maxInputPixels });
    if (rendering.width !== undefined) pipeline = pipeline.resize({ width: rendering.width, withoutEnlargement: true });
    try {
      return await encodeAs(pipeline, rendering.format, rendering.quality).toBuffer();
    } catch (err) {
      // Deleted (by cleanup) while it was read: as missing as if it had been gone before.
      if (!(await this.store.stat(originalKey))) return undefined;
      throw err;
    }
  }
}

const makers = new WeakMap<BlobStore, VariantMaker>();

/** The one VariantMaker of `store` in this process (so its requests share their renders). */
export function variantMakerFor(store: BlobStore): VariantMaker {
  let maker = makers.get(store);
  if (!maker) {
    maker = new VariantMaker(store);
    makers.set(store, maker);
  }
  return maker;
}
