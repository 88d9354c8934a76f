/**
 * `npm start` / `npm run demo`: runs the service. With `--demo` it first starts the built-in ComfyUI
 * simulator and points the service at it, so no GPU or ComfyUI install is needed.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
// The simulator is a separate product (simulator/): only --demo loads it, so `npm start` never does.
import type { Simulator } from '../simulator/server.js';
import { WorkflowError } from './comfyui/workflow.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './log.js';
import { startApp } from './app.js';

const USAGE = `Usage: npm start            run the service against COMFYUI_URL
       npm run demo         run it with the built-in ComfyUI simulator

Options:
  --demo                    start the ComfyUI simulator in-process and use it
  --demo-step-ms <ms>       simulated time per sampler step (default 100)
  -h, --help                show this help

Configuration comes from environment variables (and .env); see README.md.`;

async function main(): Promise<number> {
  // Since the process started: Node, the TypeScript loader and every module (read before anything runs).
  const loadedMs = performance.now();
  let args;
  try {
    args = parseArgs({
      options: { demo: { type: 'boolean' }, 'demo-step-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const log = createLogger({ debug: config.debug });

  let simulator: Simulator | undefined;
  if (args.demo) {
    const stepMs = Number(args['demo-step-ms'] ?? 100);
    if (!Number.isFinite(stepMs) || stepMs < 0) {
      console.error(`--demo-step-ms must be a number of milliseconds, not ${args['demo-step-ms']}`);
      return 2;
    }
    const { startSimulator } = await import('../simulator/server.js');
    simulator = await startSimulator({ port: 0, stepMs, previewMethod: 'auto', baseDir: resolve(config.dataDir, 'simulator') });
    config = { ...config, comfyuiUrls: [simulator.url] };
    log.info('ComfyUI simulator started', { url: simulator.url, step_ms: stepMs });
  }

  let app;
  const starting = performance.now();
  try {
    app = await startApp(config, { log });
  } catch (err) {
    if (err instanceof WorkflowError) {
      log.error('the workflow cannot be used', { source: err.source, problems: err.problems });
    } else {
      log.error('the service could not start', { error: (err as Error).message });
    }
    await simulator?.close();
    return 1;
  }
  // How long a start took: loading the code, then the service's own start (migrations, recovery, checks).
  const timing = { loaded_ms: Math.round(loadedMs), start_ms: Math.round(performance.now() - starting) };
  log.info('Kontext Gateway listening', { url: app.url, comfyui: config.comfyuiUrls, data_dir: config.dataDir, ...timing });

  await new Promise<void>((done) => {
    const stop = (signal: string) => {
      log.info('shutting down', { signal });
      // Work in flight stays on ComfyUI and is adopted at the next start; never hang on the way out.
      setTimeout(() => {
        log.error('shutdown took longer than 10 s; exiting anyway');
        process.exit(1);
      }, 10_000).unref();
      process.once(signal, () => process.exit(1)); // a second Ctrl-C: now
      done();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await app.close();
  log.info('stopped');
  await simulator?.close();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
