/**
 * The process bench/progress-stamps.ts forks: a simulator that stamps when it sends each `progress`
 * message of the measured prompt, driven over IPC. In a process of its own, as ComfyUI is: the
 * bench process that holds the subscribers does not also run the GPU's side.
 */
import { join } from 'node:path';
import { startSimulator } from '../simulator/server.js';
import type { StampsReply, StampsRequest } from './progress-stamps.js';
import { clockNow } from './ws-frame-delays.js';

const [dir, stepMs] = [process.argv[2]!, Number(process.argv[3])];
let measured = '';
let sentAt = new Map<number, number>();
const sim = await startSimulator({
  port: 0,
  stepMs,
  baseDir: join(dir, 'comfyui'),
  onMessageSent: (text) => {
    if (!text.startsWith('{"type": "progress"')) return;
    const at = clockNow();
    const { data } = JSON.parse(text) as { data: { value: number; prompt_id: string } };
    if (data.prompt_id === measured && !sentAt.has(data.value)) sentAt.set(data.value, at);
  },
});
const reply = (message: StampsReply) => process.send!(message);
process.on('message', (request: StampsRequest) => {
  if (request.type === 'measure') {
    measured = request.promptId;
    sentAt = new Map();
    reply({ type: 'measuring' });
  } else if (request.type === 'stamps') {
    reply({ type: 'stamps', stamps: [...sentAt] });
  } else {
    void sim.close().then(() => process.exit(0));
  }
});
// The bench process gone (killed, crashed): no simulator outlives it.
process.on('disconnect', () => void sim.close().then(() => process.exit(0)));
reply({ type: 'listening', url: sim.url });
