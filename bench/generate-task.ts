/** The fan-out benchmarks' tasks: one 256x256 task generated through the SDK client (GraphQL `generate`). */
import type { KontextClient } from '@kontext-gateway/sdk';

/** Generates a task of `steps` steps from `reference` and returns its id; a refusal throws with its message. */
export async function generateTask(client: KontextClient, reference: Buffer, description: string, steps: number, seed: number): Promise<string> {
  const r = await client.generate({ referenceImage: reference, fileName: 'ref.png', description, size: '256x256', steps, seed });
  if (r.__typename !== 'GenerateSuccess') throw new Error(`generate: ${r.message}`);
  return r.task.id;
}
