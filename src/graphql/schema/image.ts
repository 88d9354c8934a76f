/** `Image`: one finished image of a task, served by the REST image route. */
import type { ImageRow } from '../../db/types.js';
import { imageUrl } from '../../tasks/image-url.js';
import type { FrameImage } from '../../tasks/progress-frame.js';
import { builder } from '../builder.js';

/** What an `Image` resolves from: a finished image row, or the image of a progress frame. */
export interface ImageShape extends FrameImage {
  taskId: string;
}

/** The `Image` type. */
export const Image = builder.objectRef<ImageShape>('Image').implement({
  description: 'A finished image. Fetch its bytes from `url`.',
  fields: (t) => ({
    index: t.exposeInt('index', { description: 'Position in the task, from 0.' }),
    url: t.string({
      description:
        'The REST image route: absolute when PUBLIC_URL is set, else relative to this server. Once API keys exist it is signed (`exp` and `sig`) and works without a key until it expires, e.g. in `<img>`.',
      // Open mode keeps the old unsigned URLs; a key's caller gets URLs an `<img>` can fetch.
      resolve: (image, _args, ctx) => imageUrl(ctx.publicUrl ?? '', image.taskId, image.index, ctx.caller.keyId !== null ? ctx.signer : undefined),
    }),
    width: t.exposeInt('width'),
    height: t.exposeInt('height'),
    seed: t.expose('seed', { type: 'Seed', description: 'The seed this image was sampled with.' }),
    contentType: t.exposeString('contentType', { description: 'e.g. `image/png`.' }),
    bytes: t.exposeInt('bytes', { description: 'Size of the file.' }),
  }),
});

/** A finished image row as an `Image`; undefined while the image is not finished. */
export function imageFromRow(row: ImageRow): ImageShape | undefined {
  if (row.status !== 'completed' || row.width === null || row.height === null || row.bytes === null || row.content_type === null) return undefined;
  return { taskId: row.task_id, index: row.idx, width: row.width, height: row.height, seed: row.seed, contentType: row.content_type, bytes: row.bytes };
}
