/**
 * `kontext generate`: sends a reference image and an instruction to a running service, shows a
 * progress bar per image, and saves the images as `<out>/<task_id>_<index>.<ext>` at the end.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { checkGenerateParams, DEFAULTS, LIMITS } from '../tasks/generate-params.js';
import { apiKeyOf, authorizationHeader, cliConfig } from './environment.js';
import { parseCommandLine, type Command } from './command.js';
import { createProgressDisplay } from './generate-progress.js';
import { createTransport, type FinishedTask, type GenerateTransport } from './generate-transport.js';
import { CommandError, EXIT, UsageError } from './output.js';
import { errorDetail, fetchService, serviceUrl } from './service.js';

const USAGE = `Usage: kontext generate --image <file> --prompt <text> --out <dir> [options]

Sends a reference image and an edit instruction to a running Kontext Gateway (through its
GraphQL API: upload, then live progress over a WebSocket), shows a progress bar per image (plain
lines when stdout is not a terminal), and saves the images as <out>/<task_id>_<index>.png when
the task is done. Ctrl-C cancels the task.

Options:
  -i, --image <file>     reference image (PNG, JPEG or WebP)                 required
  -p, --prompt <text>    what to change, e.g. "make it night, keep the car"  required
  -o, --out <dir>        folder for the images (created when missing)        required
  -n, --count <n>        images to make, ${LIMITS.count.min}-${LIMITS.count.max}                        (default ${DEFAULTS.count})
      --size <WxH>       output size, or "auto" for the reference's aspect   (default ${DEFAULTS.size})
      --steps <n>        sampler steps, ${LIMITS.steps.min}-${LIMITS.steps.max}                          (default ${DEFAULTS.steps})
      --guidance <x>     guidance, ${LIMITS.guidance.min}-${LIMITS.guidance.max}                               (default ${DEFAULTS.guidance})
      --seed <n>         base seed; image i uses seed+i                      (default random)
      --url <url>        the service                           (default http://127.0.0.1:$PORT)
      --api-key <key>    the API key, once the service has keys              (default $KONTEXT_API_KEY)
  -h, --help             show this help

Exit codes: 0 all images saved, 1 the task failed or was cancelled (finished images are still
saved) or the service refused the request, 2 usage error, 3 the service is not reachable.`;

/** `kontext generate`. */
export const generateCommand: Command = {
  name: 'generate',
  usage: USAGE,
  run,
};

async function run(argv: string[]): Promise<number> {
  const { values } = parseCommandLine(argv, {
    options: {
      image: { type: 'string', short: 'i' },
      prompt: { type: 'string', short: 'p' },
      out: { type: 'string', short: 'o' },
      count: { type: 'string', short: 'n' },
      size: { type: 'string' },
      steps: { type: 'string' },
      guidance: { type: 'string' },
      seed: { type: 'string' },
      url: { type: 'string' },
      'api-key': { type: 'string' },
    },
  });
  const apiKey = apiKeyOf(values['api-key']);
  for (const name of ['image', 'prompt', 'out'] as const) if (values[name] === undefined) throw new UsageError(`--${name} is required`);
  // The service's own rules, checked here first: a typo costs no upload.
  const checked = checkGenerateParams({
    description: values.prompt,
    count: numberOf(values.count),
    size: values.size,
    steps: numberOf(values.steps),
    guidance: numberOf(values.guidance),
    seed: numberOf(values.seed),
  });
  if ('errors' in checked) throw new UsageError(checked.errors.map((e) => `--${flagOf(e.field)}: ${e.message}`).join('; '));
  const params = checked.params;
  const imagePath = values.image!;
  const out = values.out!;
  let referenceImage: Buffer;
  try {
    referenceImage = await readFile(imagePath);
  } catch (err) {
    throw new UsageError(`cannot read --image ${imagePath} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    await mkdir(out, { recursive: true });
  } catch (err) {
    throw new CommandError(`cannot create --out ${out} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const url = serviceUrl(values.url, cliConfig);

  const transport = createTransport({ url, ...(apiKey === undefined ? {} : { apiKey }) });
  try {
    const taskId = await transport.submit({
      referenceImage,
      fileName: basename(imagePath),
      description: params.description,
      count: params.count,
      size: params.size,
      steps: params.steps,
      guidance: params.guidance,
      seed: params.seed,
    });
    console.log(`task ${taskId} submitted to ${url} (${params.count} image${params.count === 1 ? '' : 's'}, ${params.size}, ${params.steps} steps)`);
    const finished = await follow(transport, taskId, params.count);
    const saved = await saveImages(url, finished, taskId, out, apiKey);
    for (const file of saved) console.log(`saved ${file}`);
    if (finished.status === 'completed') {
      console.log(`task ${taskId} completed: ${saved.length} image${saved.length === 1 ? '' : 's'} in ${out}`);
      return EXIT.OK;
    }
    console.error(`kontext generate: task ${taskId} ${finished.status}${finished.error ? `: ${finished.error}` : ''}`);
    return EXIT.FAILURE;
  } finally {
    await transport.close();
  }
}

/** Shows the task's progress until it ends; Ctrl-C cancels it (the GPU should not keep working for nobody). */
async function follow(transport: GenerateTransport, taskId: string, count: number): Promise<FinishedTask> {
  const display = createProgressDisplay({ taskId, count, perImageSteps: transport.perImageSteps });
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130); // a second Ctrl-C: don't wait for the cancel
    interrupted = true;
    display.stop();
    console.error(`${process.stdout.isTTY ? '\n' : ''}cancelling task ${taskId} (Ctrl-C again to quit without waiting)`);
    transport.cancel(taskId).catch((err: unknown) => console.error(`kontext generate: ${(err as Error).message}`));
  };
  process.on('SIGINT', onSigint);
  try {
    for await (const update of transport.watch(taskId)) {
      if (!interrupted) display.update(update);
    }
  } finally {
    display.stop();
    process.off('SIGINT', onSigint);
  }
  return transport.result(taskId);
}

/** Downloads the finished images (URLs may be relative to the service) into `out`. */
async function saveImages(url: string, finished: FinishedTask, taskId: string, out: string, apiKey: string | undefined): Promise<string[]> {
  const saved: string[] = [];
  for (const image of [...finished.images].sort((a, b) => a.index - b.index)) {
    // The URLs are signed; the key goes along only to the service itself (a PUBLIC_URL elsewhere gets none).
    const sameOrigin = new URL(image.url, `${url}/`).origin === new URL(url).origin;
    const res = await fetchService(url, image.url, { timeoutMs: 120_000, headers: sameOrigin ? authorizationHeader(apiKey) : {} });
    if (res.status !== 200) throw new CommandError(`downloading image ${image.index} of task ${taskId} failed (${res.status}): ${await errorDetail(res)}`);
    const data = Buffer.from(await res.arrayBuffer());
    const file = join(out, `${taskId}_${image.index}${extensionOf(res.headers.get('content-type'), image.url)}`);
    // Written aside, then renamed: an interrupted download never leaves a truncated image under the final name.
    await writeFile(`${file}.part`, data);
    await rename(`${file}.part`, file);
    saved.push(file);
  }
  return saved;
}

function extensionOf(contentType: string | null, url: string): string {
  if (contentType?.includes('jpeg')) return '.jpg';
  if (contentType?.includes('webp')) return '.webp';
  if (contentType?.includes('png')) return '.png';
  const fromUrl = extname(new URL(url, 'http://service/').pathname);
  return fromUrl || '.png';
}

/** Numbers as numbers (so the shared rules report ranges), anything else as given (so they report the type). */
function numberOf(raw: string | undefined): unknown {
  if (raw === undefined) return undefined;
  return /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
}

/** The flag a request field comes from. */
function flagOf(field: string): string {
  return field === 'description' ? 'prompt' : field;
}
