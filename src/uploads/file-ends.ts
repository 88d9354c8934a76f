/**
 * The first and last bytes of an upload, kept as its chunks stream past, so the checks after the
 * last byte (format signature, intact end, WebP's RIFF size) read memory instead of waiting for the
 * file system: under load every file read queues behind the other uploads' writes and fsyncs.
 */
import type { ReadBytes } from './image-format.js';

export class FileEnds {
  /** The first bytes, up to the `headBytes` given to the constructor. */
  head = Buffer.alloc(0);
  /** Bytes seen so far. */
  size = 0;
  // The latest chunks, by reference (they are the very buffers written to the file): the oldest is
  // dropped once the others hold `tailBytes` without it.
  private readonly chunks: Buffer[] = [];
  private chunkBytes = 0;

  /** Keeps `headBytes` first and at least `tailBytes` last bytes. */
  constructor(
    private readonly headBytes: number,
    private readonly tailBytes: number,
  ) {}

  /** Takes the next chunk of the stream. */
  push(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.head.length < this.headBytes) this.head = Buffer.concat([this.head, chunk.subarray(0, this.headBytes - this.head.length)]);
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
    while (this.chunkBytes - this.chunks[0]!.length >= this.tailBytes) this.chunkBytes -= this.chunks.shift()!.length;
  }

  /** Reads from the kept bytes where they hold the range, else through `fallback` (the file). */
  reader(fallback: ReadBytes): ReadBytes {
    const tail = Buffer.concat(this.chunks, this.chunkBytes);
    const tailStart = this.size - tail.length;
    return async (position, length) => {
      const end = Math.min(position + length, this.size);
      if (end <= this.head.length) return this.head.subarray(position, end);
      if (position >= tailStart) return tail.subarray(position - tailStart, end - tailStart);
      return fallback(position, length);
    };
  }
}
