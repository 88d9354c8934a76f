/** `Task` and `TaskStatus`, with `Query.task` and `Query.tasks`. */
import { createContextCache } from '@pothos/core';
import DataLoader from 'dataloader';
import { GraphQLError } from 'graphql';
import { ValidationError } from '../../tasks/generate-params.js';
import type { ImageRow, TaskRow } from '../../db/types.js';
import type { TaskView } from '../../tasks/task-service.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { requireScope, withScope } from '../scopes.js';
import { selectsPath } from '../selects-path.js';
import { Image, imageFromRow, type ImageShape } from './image.js';

/**
 * A task row; `queuePosition` is set when it was read together with the row (a `TaskView`), and
 * `loadedImages` when its images were (a view, or a page whose query asks for them).
 */
export type TaskShape = TaskRow & { queuePosition?: number | null; loadedImages?: ImageShape[] };

/** A `TaskView` as a `Task`: its queue position and images were read with it, so they match its status. */
export function taskFromView(view: TaskView): TaskShape {
  return { ...view.task, queuePosition: view.queuePosition, loadedImages: finishedImages(view.images) };
}

/** The finished images among a task's rows, by index. */
function finishedImages(rows: readonly ImageRow[]): ImageShape[] {
  return rows.flatMap((row) => imageFromRow(row) ?? []);
}

/** Images of the tasks of one request not read with their task, in one query whatever their number. */
const imagesLoader = createContextCache(
  (ctx: GraphQLContext) =>
    new DataLoader<string, ImageShape[]>(async (ids) => {
      const byTask = await ctx.service.imagesByTask(ids);
      return ids.map((id) => finishedImages(byTask.get(id) ?? []));
    }),
);

/** `TaskStatus`: the database's lowercase statuses as UPPERCASE enum values. */
export const TaskStatus = builder.enumType('TaskStatus', {
  values: {
    PENDING: { value: 'pending', description: 'Waiting in the queue.' },
    PROCESSING: { value: 'processing', description: 'Its images are being generated.' },
    COMPLETED: { value: 'completed', description: 'Every image is ready.' },
    FAILED: { value: 'failed', description: 'Stopped by an error (see `error`); finished images are kept.' },
    CANCELLED: { value: 'cancelled', description: 'Cancelled by a client; finished images are kept.' },
  } as const,
});

/** Positions of the pending tasks of one request, in one query whatever their number. */
const queuePositionLoader = createContextCache(
  (ctx: GraphQLContext) =>
    new DataLoader<string, number | null>(async (ids) => {
      const positions = await ctx.service.queuePositions(ids);
      return ids.map((id) => positions.get(id) ?? null);
    }),
);

/** The `Task` type; `images` and `queuePosition` are batched per request. */
export const Task = builder.objectRef<TaskShape>('Task').implement({
  description: 'A generation request: 1 to 4 images from a reference image and a description.',
  fields: (t) => ({
    id: t.exposeID('id'),
    description: t.exposeString('description'),
    status: t.expose('status', { type: TaskStatus }),
    progress: t.exposeInt('progress', { description: '0-100; never goes back.' }),
    count: t.exposeInt('count', { description: 'Images asked for.' }),
    size: t.exposeString('size', { description: '`WxH` or `auto`.' }),
    steps: t.exposeInt('steps'),
    guidance: t.exposeFloat('guidance'),
    seed: t.field({ type: 'Seed', description: 'The base seed; image i uses seed + i.', resolve: (task) => task.base_seed }),
    images: t.field({
      type: [Image],
      description: 'The finished images, by index (all of them once COMPLETED).',
      // Read with the task or its page when possible (no promise per task); else one query for every task in the request.
      resolve: (task, _args, ctx) => task.loadedImages ?? imagesLoader(ctx).load(task.id),
    }),
    error: t.exposeString('error_message', { nullable: true, description: 'Why it failed.' }),
    queuePosition: t.int({
      nullable: true,
      description: '1 = next to start; only while PENDING.',
      resolve: (task, _args, ctx) => {
        if (task.queuePosition !== undefined) return task.queuePosition;
        return task.status === 'pending' ? queuePositionLoader(ctx).load(task.id) : null;
      },
    }),
    createdAt: t.field({ type: 'DateTime', resolve: (task) => task.created_at }),
    updatedAt: t.field({ type: 'DateTime', resolve: (task) => task.updated_at }),
    startedAt: t.field({ type: 'DateTime', nullable: true, description: 'When processing began.', resolve: (task) => task.started_at }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, description: 'When it reached a final status.', resolve: (task) => task.finished_at }),
  }),
});

const TaskConnection = builder.connectionObject({ type: Task, name: 'TaskConnection' }, { name: 'TaskEdge' });

/** Page size of `tasks`: default and largest. */
export const TASKS_PAGE = { default: 20, max: 100 } as const;

builder.queryFields((t) => ({
  task: t.field({
    type: Task,
    nullable: true,
    description: "A task by id; null when there is none (or it is another key's). Needs the `read` scope.",
    args: { id: t.arg.id({ required: true }) },
    resolve: withScope('read', async (_root, { id }, ctx) => {
      const view = await ctx.service.getTask(id, ctx.caller);
      return view ? taskFromView(view) : null;
    }),
  }),
  tasks: t.field({
    type: TaskConnection,
    description: "Tasks, newest first: the key's own (every task for an admin key). The cursor is the task id. Needs the `read` scope.",
    args: {
      first: t.arg.int({ description: `Page size, ${TASKS_PAGE.default} by default, at most ${TASKS_PAGE.max}.` }),
      after: t.arg.string({ description: 'The `endCursor` of the previous page.' }),
      status: t.arg({ type: TaskStatus, description: 'Only tasks in this status.' }),
    },
    // requireScope, not withScope: this resolver needs `info` too.
    resolve: async (_root, args, ctx, info) => {
      requireScope(ctx, 'read');
      const first = args.first ?? TASKS_PAGE.default;
      if (!Number.isInteger(first) || first < 0 || first > TASKS_PAGE.max) {
        throw new GraphQLError(`first must be a whole number from 0 to ${TASKS_PAGE.max}`, { extensions: { code: 'BAD_USER_INPUT' } });
      }
      let page;
      try {
        page = await ctx.service.listTasks({
          caller: ctx.caller,
          first,
          ...(args.after ? { after: args.after } : {}),
          ...(args.status ? { status: args.status } : {}),
        });
      } catch (err) {
        if (err instanceof ValidationError) throw new GraphQLError(err.message, { extensions: { code: 'BAD_USER_INPUT', field: err.field } });
        throw err;
      }
      const { tasks, hasNextPage } = page;
      const nodes: TaskShape[] = tasks;
      // The page's images in one query now, so each task's `images` resolves at once: profiled, a
      // promise, a DataLoader call and promiseForObject per task were ~7% of a tasks(first: 50) request.
      if (nodes.length && selectsPath(info, ['edges', 'node', 'images'])) {
        const byTask = await ctx.service.imagesByTask(nodes.map((t) => t.id));
        for (const node of nodes) node.loadedImages = finishedImages(byTask.get(node.id) ?? []);
      }
      const edges = nodes.map((row) => ({ cursor: row.id, node: row }));
      return {
        edges,
        pageInfo: {
          hasNextPage,
          // With a cursor, the cursor's own task lies before this page.
          hasPreviousPage: Boolean(args.after),
          startCursor: edges[0]?.cursor ?? null,
          endCursor: edges.at(-1)?.cursor ?? null,
        },
      };
    },
  }),
}));
