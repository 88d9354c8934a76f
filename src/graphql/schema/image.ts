/** `Image`: one finished image of a task, served by the REST image route (also as variants: format, width, quality). */
import { GraphQLError } from 'graphql';
import type { ImageRow } from '../../db/types.js';
import type { OutputFormat } from '../../images/output-formats.js';
import { checkVariantArgs, THUMBNAIL, VARIANT_LIMITS, variantQuery, type VariantRequest } from '../../images/variant-query.js';
import { imageUrl } from '../../tasks/image-url.js';
import type { FrameImage } from '../../tasks/progress-frame.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';

/** What an `Image` resolves from: a finished image row, or the image of a progress frame. */
export interface ImageShape extends FrameImage {
  taskId: string;
}

/** `ImageFormat`: what `Image.url` can render an image in. */
export const ImageFormatEnum = builder.enumType('ImageFormat', {
  description: 'A format `Image.url` can render an image in.',
  values: {
    PNG: { value: 'png' },
    JPEG: { value: 'jpeg' },
    WEBP: { value: 'webp' },
    AVIF: { value: 'avif' },
  } as const satisfies Record<string, { value: OutputFormat }>,
});

/** The URL of `image` rendered as `request`, signed like the original's for a caller with a key. */
function urlOf(image: ImageShape, request: VariantRequest, ctx: GraphQLContext): string {
  // Open mode keeps the old unsigned URLs; a key's caller gets URLs an `<img>` can fetch.
  const url = imageUrl(ctx.publicUrl ?? '', image.taskId, image.index, ctx.caller.keyId !== null ? ctx.signer : undefined);
  const query = variantQuery(request);
  // The signature covers the task and index only: the rendering parameters can simply follow it.
  return query ? `${url}&${query}` : url;
}

/** The `Image` type. */
export const Image = builder.objectRef<ImageShape>('Image').implement({
  description: 'A finished image. Fetch its bytes from `url`.',
  fields: (t) => ({
    index: t.exposeInt('index', { description: 'Position in the task, from 0.' }),
    url: t.string({
      description:
        'The REST image route: absolute when PUBLIC_URL is set, else relative to this server. Once API keys exist it is signed (`exp` and `sig`) and works without a key until it expires, e.g. in `<img>`. ' +
        'Without arguments: the stored original. With any: a variant made once and kept, in `format` (default: the original\'s), ' +
        `at most \`width\` pixels wide (${VARIANT_LIMITS.width.min}-${VARIANT_LIMITS.width.max}; never enlarged, the aspect ratio kept) and at \`quality\` (${VARIANT_LIMITS.quality.min}-${VARIANT_LIMITS.quality.max}; default per format: JPEG 80, WebP 80, AVIF 50).`,
      args: {
        format: t.arg({ type: ImageFormatEnum, required: false }),
        width: t.arg.int({ required: false }),
        quality: t.arg.int({ required: false }),
      },
      resolve: (image, args, ctx) => {
        const request: VariantRequest = {
          ...(args.format != null ? { format: args.format } : {}),
          ...(args.width != null ? { width: args.width } : {}),
          ...(args.quality != null ? { quality: args.quality } : {}),
        };
        const problem = checkVariantArgs(request);
        if (problem) throw new GraphQLError(problem.msg, { extensions: { code: 'BAD_USER_INPUT', field: problem.param } });
        return urlOf(image, request, ctx);
      },
    }),
    thumbnailUrl: t.string({
      description: `A WebP ${THUMBNAIL.width} pixels wide (or the original's width when smaller), the aspect ratio kept: \`url(format: WEBP, width: ${THUMBNAIL.width})\`.`,
      resolve: (image, _args, ctx) => urlOf(image, THUMBNAIL, ctx),
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
