/**
 * A long prompt put straight into the simulator holds it while the fan-out subscribers connect: the
 * measured task waits behind it in ComfyUI's queue, and starts when the blocker is cancelled.
 */
import { randomUUID } from 'node:crypto';
import { ComfyWorker } from '../src/comfyui/worker.js';
import { bindWorkflow, loadWorkflow } from '../src/comfyui/workflow.js';

/** A worker of its own on the simulator, for blocker prompts. */
export interface Blocker {
  /** Queues a blocker prompt (`seed` varies its output) and waits until it runs; the returned function cancels it and waits for its end. */
  hold(seed: number): Promise<() => Promise<void>>;
  /** Closes the worker. */
  stop(): Promise<void>;
}

/** Connects a blocker to the ComfyUI (simulator) at `comfyuiUrl`, with `reference` uploaded for its prompts. */
export async function startBlocker(comfyuiUrl: string, reference: Buffer): Promise<Blocker> {
  const worker = new ComfyWorker(comfyuiUrl);
  const workflow = await loadWorkflow();
  await worker.start();
  try {
    const uploaded = await worker.uploadImage(reference, 'bench-blocker.png', { overwrite: true });
    return {
      async hold(seed) {
        const prompt = randomUUID();
        let running!: () => void;
        const started = new Promise<void>((resolve) => (running = resolve));
        const blocked = worker.run(
          prompt,
          bindWorkflow(workflow, { description: 'blocker', seed, steps: 10_000, guidance: 2.5, size: { width: 256, height: 256 }, referenceImage: uploaded.name, filenamePrefix: 'bench/blocker' }),
          { outputNode: workflow.binding.outputNode, onEvent: (e) => e.type === 'progress' && running() },
        );
        await Promise.race([started, blocked]); // a rejected blocker ends the wait with its error
        return async () => {
          await worker.cancel(prompt);
          await blocked.catch(() => undefined); // ComfyInterruptedError
        };
      },
      stop: () => worker.stop(),
    };
  } catch (err) {
    await worker.stop();
    throw err;
  }
}
