import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { closedPort } from './helpers/ports.js';
import { runServiceToExit, startServiceProcess, startSimulatorProcess } from './helpers/processes.js';
import { processScope } from './helpers/process-scope.js';
import { postGenerate, taskStatus, until, waitForStatus } from './helpers/stack.js';

const scope = processScope('kontext-proc-');
const { track } = scope;

describe('starting the service', () => {
  it('stops with one line per invalid variable, naming it, its value and what is allowed', async () => {
    const { code, output } = await runServiceToExit({ PORT: 'abc', DEBUG: 'maybe', COMFYUI_URL: 'ftp://gpu', DATA_DIR: join(scope.dir, 'data') });
    expect(code).toBe(2);
    expect(output).toContain('PORT="abc": must be a whole number from 0 to 65535');
    expect(output).toContain('DEBUG="maybe": must be true or false');
    expect(output).toContain(`COMFYUI_URL="ftp://gpu": 'ftp://gpu' must be an http:// or https:// URL`);
    expect(output).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('a port in use gives a clear message, not a stack', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const { code, output } = await runServiceToExit({ PORT: String(port), DATA_DIR: join(scope.dir, 'data'), COMFYUI_URL: 'http://127.0.0.1:9' });
      expect(code).toBe(1);
      expect(output).toContain(`port ${port} on 127.0.0.1 is already in use; set PORT to another port`);
      expect(output).not.toMatch(/\n\s+at /);
    } finally {
      blocker.close();
    }
  });

  it('an unwritable DATA_DIR gives a clear message', async () => {
    await writeFile(join(scope.dir, 'file'), 'not a folder');
    const { code, output } = await runServiceToExit({ PORT: '0', DATA_DIR: join(scope.dir, 'file', 'data'), COMFYUI_URL: 'http://127.0.0.1:9' });
    expect(code).toBe(1);
    expect(output).toMatch(/the data folder .* is not writable \(ENOTDIR\); set DATA_DIR to a writable folder/);
  });

  it('starts while ComfyUI is down, reports degraded, and processes the queue once a worker answers', async () => {
    const port = await closedPort();
    const comfyUrl = `http://127.0.0.1:${port}`;
    const service = await track(startServiceProcess({ DATA_DIR: join(scope.dir, 'data'), COMFYUI_URL: comfyUrl }));
    const health = (await (await fetch(`${service.url}/health`)).json()) as { status: string };
    expect(health.status).toBe('degraded');
    expect((await fetch(`${service.url}/ready`)).status).toBe(503);
    const id = ((await (await postGenerate(service.url, { description: 'waiting', steps: '3', size: '256x256' })).json()) as { task_id: string }).task_id;
    await track(startSimulatorProcess(['--port', String(port), '--step-ms', '10', '--base-dir', join(scope.dir, 'comfyui')]));
    const done = await waitForStatus(service.url, id, ['completed', 'failed'], 30_000);
    expect(done.status).toBe('completed');
  });
});

describe('stopping the service', () => {
  it('SIGTERM exits cleanly mid-task; the next start finishes the task', async () => {
    const sim = await track(startSimulatorProcess(['--port', '0', '--step-ms', '40', '--base-dir', join(scope.dir, 'comfyui')]));
    const env = { DATA_DIR: join(scope.dir, 'data'), COMFYUI_URL: sim.url };
    const first = await track(startServiceProcess(env));
    const id = ((await (await postGenerate(first.url, { description: 'graceful', count: '3', steps: '10', size: '256x256' })).json()) as { task_id: string }).task_id;
    await until('the task to start', async () => (await taskStatus(first.url, id)).status === 'processing');
    const exited = new Promise<number | null>((r) => first.process.once('exit', (code) => r(code)));
    first.process.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(first.output()).toContain('"msg":"shutting down","signal":"SIGTERM"');
    const second = await track(startServiceProcess(env));
    const done = await waitForStatus(second.url, id, ['completed', 'failed'], 30_000);
    expect(done.status).toBe('completed');
    expect(done.images).toHaveLength(3);
  });
});
