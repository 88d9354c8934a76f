/** `TaskProgress` and `Subscription.taskProgress`: a task's live progress. */
import { GraphQLError } from 'graphql';
import type { ProgressFrame } from '../../tasks/progress-frame.js';
import { builder } from '../builder.js';
import { requireScope } from '../scopes.js';
import { Image } from './image.js';
import { TaskStatus } from './task.js';

/** The `TaskProgress` type: a ProgressFrame as clients see it. */
export const TaskProgress = builder.objectRef<ProgressFrame>('TaskProgress').implement({
  description: "The absolute state of a task at one moment; `seq` grows by one per frame of that task.",
  fields: (t) => ({
    taskId: t.exposeID('taskId'),
    seq: t.exposeInt('seq', {
      description: 'Frame number within the task, one more per frame. A subscriber that falls far behind may skip some; frames are absolute, so the next one is still right.',
    }),
    status: t.expose('status', { type: TaskStatus }),
    progress: t.exposeInt('progress', { description: '0-100; never goes back.' }),
    imageIndex: t.exposeInt('imageIndex', { nullable: true, description: 'The image the step, node and preview belong to.' }),
    step: t.exposeInt('step', { nullable: true, description: 'Sampler step of that image.' }),
    totalSteps: t.exposeInt('totalSteps', { nullable: true }),
    node: t.exposeString('node', { nullable: true, description: 'The ComfyUI node executing.' }),
    queuePosition: t.exposeInt('queuePosition', { nullable: true, description: '1 = next to start; only while PENDING.' }),
    etaSeconds: t.exposeFloat('etaSeconds', { nullable: true, description: 'Estimated seconds until every image is ready.' }),
    preview: t.exposeString('preview', { nullable: true, description: 'A `data:` URL of the latest preview, when previews are on (live frames only).' }),
    image: t.field({
      type: Image,
      nullable: true,
      description: 'Set on the frame in which that image became available.',
      resolve: (frame) => (frame.image ? { ...frame.image, taskId: frame.taskId } : null),
    }),
    error: t.exposeString('error', { nullable: true, description: 'Why the task failed.' }),
  }),
});

builder.subscriptionFields((t) => ({
  taskProgress: t.field({
    type: TaskProgress,
    description:
      "First the current state, then every later frame in `seq` order; completes after the final frame (COMPLETED, FAILED or CANCELLED). An unknown task id (or another key's task) is an error, NOT_FOUND. Needs the `read` scope.",
    args: { taskId: t.arg.id({ required: true }) },
    // subscribe before resolve, so Pothos infers the frame type.
    subscribe: async (_root, { taskId }, ctx) => {
      requireScope(ctx, 'read');
      const frames = await ctx.service.watch(taskId, ctx.caller);
      if (!frames) throw new GraphQLError(`Task ${taskId} not found`, { extensions: { code: 'NOT_FOUND' } });
      return frames;
    },
    resolve: (frame) => frame,
  }),
}));
