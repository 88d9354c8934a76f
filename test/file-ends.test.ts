/**
 * FileEnds keeps an upload's first and last bytes as they stream past, so the structure checks read
 * memory; anything between comes from the file (the fallback), byte for byte the same.
 */
import { describe, expect, it } from 'vitest';
import { FileEnds } from '../src/uploads/file-ends.js';

/** `bytes` pushed in chunks of `size`, and a fallback over the same bytes that records its reads. */
function streamed(bytes: Buffer, size: number, head = 12, tail = 100) {
  const ends = new FileEnds(head, tail);
  for (let i = 0; i < bytes.length; i += size) ends.push(bytes.subarray(i, i + size));
  const fallbackReads: number[] = [];
  const read = ends.reader(async (position, length) => {
    fallbackReads.push(position);
    return bytes.subarray(position, position + length);
  });
  return { ends, read, fallbackReads };
}

const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

describe('FileEnds', () => {
  it('counts the bytes and keeps the head whatever the chunk sizes', () => {
    for (const size of [1, 5, 64, 1000]) {
      const { ends } = streamed(bytes, size);
      expect(ends.size).toBe(1000);
      expect(ends.head).toEqual(bytes.subarray(0, 12));
    }
  });

  it('answers reads of the head and of the last bytes from memory', async () => {
    for (const size of [1, 7, 64, 1000]) {
      const { read, fallbackReads } = streamed(bytes, size);
      expect(await read(4, 4)).toEqual(bytes.subarray(4, 8));
      expect(await read(900, 100)).toEqual(bytes.subarray(900, 1000));
      expect(await read(988, 12)).toEqual(bytes.subarray(988, 1000));
      // Past the end: what is there, as a file read gives.
      expect(await read(995, 10)).toEqual(bytes.subarray(995, 1000));
      expect(fallbackReads).toEqual([]);
    }
  });

  it('reads anything between from the fallback', async () => {
    const { read, fallbackReads } = streamed(bytes, 10);
    expect(await read(500, 20)).toEqual(bytes.subarray(500, 520));
    // Straddling the start of the kept tail: the fallback, not half of it.
    expect(await read(890, 20)).toEqual(bytes.subarray(890, 910));
    expect(fallbackReads).toEqual([500, 890]);
  });

  it('keeps the whole of a file shorter than the tail', async () => {
    const { read, fallbackReads } = streamed(bytes.subarray(0, 50), 3);
    expect(await read(0, 50)).toEqual(bytes.subarray(0, 50));
    expect(fallbackReads).toEqual([]);
  });
});
