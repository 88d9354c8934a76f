/**
 * `npm run simulator -- [flags]`: runs the ComfyUI simulator until SIGINT/SIGTERM and prints one
 * line with its URL. Like ComfyUI, a Ctrl-C exit wipes temp/ and SIGTERM leaves it.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type SimulatorOptions, startSimulator } from './server.js';

const USAGE = `Usage: npm run simulator -- [options]

A ComfyUI 0.3.64 simulator (FLUX.1 Kontext workflow, no GPU).

Options:
  --port <n>                 port to listen on (default 8188; 0 = any free port)
  --host <h>                 interface to listen on (default 127.0.0.1)
  --step-ms <ms>             time per sampler step (default 50)
  --load-ms <ms>             time per non-sampler node (default 0)
  --preview-method <m>       none | auto (default none, like ComfyUI)
  --preview-size <n>         largest side of sampler previews (default 512)
  --fail-on-text <s>         prompts whose text contains <s> fail halfway through sampling
  --base-dir <dir>           folder holding input/, output/, temp/ (default: a temporary folder)
  --max-upload-size <mb>     largest request body in MB (default 100)
  --result-images <m>        derived | photo (default derived; photo: real-size photographic
                             PNGs, 1024x1024 ~1.4-1.6 MB, a few cached pictures per size)
  --link-rtt-ms <ms>         simulated link: round trip added to every request, answer and
                             WebSocket message (default 0; for machines without tc netem)
  --link-mbit <n>            simulated link: bandwidth per direction in Mbit/s (default unlimited)
  -h, --help                 show this help`;

/** Thrown for a bad command line; the message is the one line printed before exiting with 2. */
class UsageError extends Error {}

function nonNegativeInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a non-negative integer, got '${value}'`);
  return Number(value);
}

function positiveNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0)) throw new UsageError(`--${name} must be a positive number, got '${value}'`);
  return n;
}

/** Parses the command line into simulator options (throws UsageError). */
export function parseCli(argv: string[]): { help: true } | { help: false; options: SimulatorOptions } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'step-ms': { type: 'string' },
        'load-ms': { type: 'string' },
        'preview-method': { type: 'string' },
        'preview-size': { type: 'string' },
        'fail-on-text': { type: 'string' },
        'base-dir': { type: 'string' },
        'max-upload-size': { type: 'string' },
        'result-images': { type: 'string' },
        'link-rtt-ms': { type: 'string' },
        'link-mbit': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  const v = parsed.values;
  if (v.help) return { help: true };
  const port = nonNegativeInt('port', v.port);
  if (port !== undefined && port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const method = v['preview-method'];
  if (method !== undefined && method !== 'none' && method !== 'auto') {
    throw new UsageError(`--preview-method must be none or auto, got '${method}'`);
  }
  if (v.host === '') throw new UsageError('--host must not be empty');
  if (v['fail-on-text'] === '') throw new UsageError('--fail-on-text must not be empty');
  const previewSize = nonNegativeInt('preview-size', v['preview-size']);
  if (previewSize === 0) throw new UsageError('--preview-size must be at least 1');
  const uploadMb = positiveNumber('max-upload-size', v['max-upload-size']);
  const results = v['result-images'];
  if (results !== undefined && results !== 'derived' && results !== 'photo') {
    throw new UsageError(`--result-images must be derived or photo, got '${results}'`);
  }
  return {
    help: false,
    options: {
      port,
      host: v.host,
      stepMs: nonNegativeInt('step-ms', v['step-ms']),
      loadMs: nonNegativeInt('load-ms', v['load-ms']),
      previewMethod: method as 'none' | 'auto' | undefined,
      previewSize,
      failOnText: v['fail-on-text'],
      baseDir: v['base-dir'],
      maxUploadSize: uploadMb === undefined ? undefined : Math.floor(uploadMb * 1024 * 1024),
      resultImages: results as 'derived' | 'photo' | undefined,
      linkRttMs: nonNegativeInt('link-rtt-ms', v['link-rtt-ms']),
      linkMbit: positiveNumber('link-mbit', v['link-mbit']),
    },
  };
}

async function main(): Promise<void> {
  let cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`simulator: ${err.message} (see --help)\n`);
    process.exit(2);
  }
  if (cli.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const options = Object.fromEntries(Object.entries(cli.options).filter(([, x]) => x !== undefined)) as SimulatorOptions;
  const sim = await startSimulator(options);
  process.stdout.write(`ComfyUI simulator listening on ${sim.url}\n`);
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await sim.close();
      // A clean Ctrl-C exit empties temp/ (ComfyUI's cleanup_temp); SIGTERM does not.
      if (signal === 'SIGINT' && options.baseDir !== undefined) {
        await fsp.rm(path.join(sim.baseDir, 'temp'), { recursive: true, force: true });
      }
      process.exit(0);
    })();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

void main().catch((err: unknown) => {
  process.stderr.write(`simulator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
