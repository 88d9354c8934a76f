/**
 * The one builder of image URLs, and the REST body that uses it (GraphQL's `Image.url` is checked
 * over HTTP in graphql.test.ts, the REST one in rest.test.ts).
 */
import { describe, expect, it } from 'vitest';
import type { ImageRow, TaskRow } from '../src/db/types.js';
import { taskStatusBody } from '../src/rest/task-status.js';
import { imageUrl } from '../src/tasks/image-url.js';

describe('imageUrl', () => {
  it('is a path relative to the serving host without a base', () => {
    expect(imageUrl('', 'k3f9', 0)).toBe('/api/image/k3f9?index=0');
  });

  it('is absolute under a base, path prefix included', () => {
    expect(imageUrl('https://img.example/kontext', 'k3f9', 3)).toBe('https://img.example/kontext/api/image/k3f9?index=3');
  });

  it('escapes a task id that would otherwise change the path or the query', () => {
    // Ids of the old service's rows are whatever it stored.
    expect(imageUrl('', 'a/b?index=9#x y', 1)).toBe('/api/image/a%2Fb%3Findex%3D9%23x%20y?index=1');
  });
});

describe('the REST task body', () => {
  it('lists the finished images only, with the same URLs', () => {
    const task = { id: 'a/b', status: 'processing', progress: 40 } as TaskRow;
    const image = (idx: number, status: ImageRow['status']) => ({ task_id: 'a/b', idx, status }) as ImageRow;
    const body = taskStatusBody({ task, images: [image(0, 'completed'), image(1, 'running'), image(2, 'completed')], queuePosition: null, resultPaths: [] }, 'http://h:1');
    expect(body['images']).toEqual([imageUrl('http://h:1', 'a/b', 0), imageUrl('http://h:1', 'a/b', 2)]);
    expect(body['images']).toEqual(['http://h:1/api/image/a%2Fb?index=0', 'http://h:1/api/image/a%2Fb?index=2']);
  });
});
