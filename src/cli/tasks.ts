/**
 * `kontext tasks list|show|cancel`. list and show read the database in DATA_DIR directly, so they
 * work with the service stopped. cancel asks the running service (only it can stop ComfyUI
 * prompts); with the service down, a pending task is cancelled in the database instead.
 */
import { join } from 'node:path';
import { findApiKeys } from '../db/api-keys.js';
import type { Db } from '../db/database.js';
import { imagesOfTask, imagesOfTasks } from '../db/images.js';
import { findTask, listTasks, queuePosition } from '../db/tasks.js';
import { TASK_STATUSES, type ImageRow, type TaskRow, type TaskStatus } from '../db/types.js';
import { isFinal } from '../tasks/progress-frame.js';
import { publicResultPaths } from '../tasks/public-result-paths.js';
import { cancelPendingTask } from '../tasks/transitions/cancel-pending-task.js';
import { WebhookRecorder } from '../webhooks/recorder.js';
import { intOption, parseCommandLine, type Command } from './command.js';
import type { Config } from '../config.js';
import { openStore } from '../storage/open-store.js';
import { apiKeyOf, authorizationHeader, cliConfig, dataDirOf, openDataDir, withDb } from './environment.js';
import { clip, CommandError, escapeControl, EXIT, printJson, printTable, UsageError } from './output.js';
import { errorDetail, fetchService, serviceUrl, ServiceUnreachableError } from './service.js';

const LIST_USAGE = `Usage: kontext tasks list [--status <status>] [--limit <n>] [--json]

Lists tasks, newest first, from the database in DATA_DIR (works with the service stopped), with
the name of the API key that made each ('open' for tasks made while the service had no keys).

Options:
      --status <status>  only tasks in this status: ${TASK_STATUSES.join(', ')}
      --limit <n>        at most this many, 1-1000 (default 20)
      --json             a JSON array instead of a table
  -h, --help             show this help

Exit codes: 0 listed (also when there are none), 1 no database in DATA_DIR, 2 usage error.`;

const SHOW_USAGE = `Usage: kontext tasks show <task_id> [--json]

Shows one task with its parameters, claim and images, from the database in DATA_DIR (works with
the service stopped).

Options:
      --json      JSON instead of text
  -h, --help      show this help

Exit codes: 0 shown, 1 no such task (or no database in DATA_DIR), 2 usage error.`;

const CANCEL_USAGE = `Usage: kontext tasks cancel <task_id> [--url <url>] [--api-key <key>]

Cancels a task through the running service, which also stops its prompts on ComfyUI (finished
images are kept). When the service is not running, a pending task is cancelled in the database
in DATA_DIR; a processing task is left alone (its prompts may still be running on ComfyUI):
start the service and cancel again, or run 'kontext repair'.

Options:
      --url <url>        the service (default http://127.0.0.1:$PORT)
      --api-key <key>    the API key, once the service has keys: the task's own key (generate
                         scope) or an admin key (default $KONTEXT_API_KEY)
  -h, --help             show this help

Exit codes: 0 cancelled (or already finished: nothing to cancel), 1 no such task or the cancel
failed, 2 usage error, 3 the service is not reachable and the task is processing.`;

/** `kontext tasks list`. */
export const tasksListCommand: Command = {
  name: 'tasks list',
  usage: LIST_USAGE,
  async run(argv) {
    const { values } = parseCommandLine(argv, {
      options: { status: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
    });
    const status = values.status;
    if (status !== undefined && !isStatus(status)) throw new UsageError(`--status must be one of ${TASK_STATUSES.join(', ')}, not '${status}'`);
    const limit = intOption('limit', values.limit, 1, 1000) ?? 20;
    const config = cliConfig();
    return withDb(await openDataDir(config), async (db) => {
      const tasks = await listTasks(db, { limit, ...(status ? { status } : {}) });
      const images = groupByTask(await imagesOfTasks(db, tasks.map((t) => t.id)));
      const owners = await ownerNames(db, tasks);
      if (values.json) {
        const locate = fileLocator(config);
        printJson(tasks.map((t) => taskJson(t, images.get(t.id) ?? [], dataDirOf(config), locate, owners)));
        return EXIT.OK;
      }
      if (tasks.length === 0) {
        console.log(status ? `no ${status} tasks` : 'no tasks');
        return EXIT.OK;
      }
      printTable(
        ['ID', 'STATUS', 'PROGRESS', 'IMAGES', 'CREATED', 'OWNER', 'DESCRIPTION'],
        tasks.map((t) => {
          const own = images.get(t.id) ?? [];
          const done = own.filter((i) => i.status === 'completed').length;
          return [t.id, t.status, `${t.progress}%`, own.length ? `${done}/${t.count}` : '-', shortTime(t.created_at), ownerCell(t, owners), clip(t.description, 60)];
        }),
      );
      return EXIT.OK;
    });
  },
};

/** `kontext tasks show <id>`. */
export const tasksShowCommand: Command = {
  name: 'tasks show',
  usage: SHOW_USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandLine(argv, { options: { json: { type: 'boolean' } }, allowPositionals: true });
    const id = onePositional(positionals);
    const config = cliConfig();
    return withDb(await openDataDir(config), async (db) => {
      const task = await findTask(db, id);
      if (!task) throw new CommandError(`task ${id} not found in ${join(dataDirOf(config), 'kontext.db')}`);
      const images = await imagesOfTask(db, id);
      const ahead = await queuePosition(db, task, config.queuePolicy);
      const locate = fileLocator(config);
      const json = { ...taskJson(task, images, dataDirOf(config), locate, await ownerNames(db, [task])), queue_position: ahead === undefined ? null : ahead + 1 };
      if (values.json) printJson(json);
      else printTask(json, images, locate);
      return EXIT.OK;
    });
  },
};

/** `kontext tasks cancel <id>`. */
export const tasksCancelCommand: Command = {
  name: 'tasks cancel',
  usage: CANCEL_USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandLine(argv, { options: { url: { type: 'string' }, 'api-key': { type: 'string' } }, allowPositionals: true });
    const id = onePositional(positionals);
    const apiKey = apiKeyOf(values['api-key']);
    const url = serviceUrl(values.url, cliConfig);
    let res: Response;
    try {
      res = await fetchService(url, `api/task/${encodeURIComponent(id)}/cancel`, { method: 'POST', headers: authorizationHeader(apiKey) });
    } catch (err) {
      // Only "nothing listens there" proves the service is down; a timeout may be a busy service.
      if (err instanceof ServiceUnreachableError && err.noConnection) return cancelOffline(id, err);
      throw err;
    }
    // Another key's task is a 404 too: the service does not say it exists.
    if (res.status === 404) throw new CommandError(`task ${id} not found (asked the service at ${url}${apiKey === undefined ? '' : ' with the key given'})`);
    if (res.status === 401 || res.status === 403) {
      const hint = res.status === 401 ? 'pass --api-key or set KONTEXT_API_KEY' : 'use a key with the generate scope';
      throw new CommandError(`the service at ${url} refused the cancel (${res.status}): ${escapeControl(await errorDetail(res))} (${hint})`);
    }
    if (res.status !== 200) throw new CommandError(`cancelling task ${id} failed (${res.status}): ${escapeControl(await errorDetail(res))}`);
    const body = (await res.json()) as { status: TaskStatus; images?: string[] };
    if (body.status === 'cancelled') {
      const kept = body.images?.length ?? 0;
      console.log(`task ${escapeControl(id)} cancelled${kept ? ` (${kept} finished image${kept === 1 ? '' : 's'} kept)` : ''}`);
      return EXIT.OK;
    }
    if (isFinal(body.status)) {
      console.log(escapeControl(`task ${id} is already ${body.status}; nothing to cancel`));
      return EXIT.OK;
    }
    throw new CommandError(`task ${id} is still ${body.status} after the cancel; see the service's log`);
  },
};

/** The service is down: a pending task can be cancelled in the database; a processing one cannot. */
async function cancelOffline(id: string, unreachable: ServiceUnreachableError): Promise<number> {
  const config = cliConfig();
  return withDb(await openDataDir(config), async (db) => {
    const task = await findTask(db, id);
    if (!task) throw new CommandError(`task ${id} not found in ${join(dataDirOf(config), 'kontext.db')} (the service at ${unreachable.url} is not running)`);
    if (isFinal(task.status)) {
      console.log(escapeControl(`task ${id} is already ${task.status}; nothing to cancel`));
      return EXIT.OK;
    }
    if (task.status === 'processing') {
      throw new CommandError(
        `task ${id} is processing and the service at ${unreachable.url} is not reachable: only the service can stop its prompts on ComfyUI. ` +
          `Start the service and cancel again, or run 'kontext repair' to finish the task`,
        EXIT.UNREACHABLE,
      );
    }
    // The same transition as the engine's: the task only if still pending, with its images.
    // The service is not running: the events it would send (WEBHOOK_URL too) go into the outbox for it.
    const frame = await cancelPendingTask(db, id, new WebhookRecorder({ globalUrl: config.webhookUrl, baseUrl: config.publicUrl ?? '', dataDir: dataDirOf(config) }));
    if (!frame) {
      const now = await findTask(db, id);
      throw new CommandError(`task ${id} is now ${now?.status ?? 'gone'}: a service picked it up meanwhile; cancel it through that service (--url)`);
    }
    console.log(escapeControl(`task ${id} cancelled in the database (the service at ${unreachable.url} is not running)`));
    return EXIT.OK;
  });
}

/** A task as `--json` shows it: the database's fields, result paths parsed (relative to DATA_DIR, as REST shows them), image files absolute. */
function taskJson(task: TaskRow, images: ImageRow[], dataDir: string, locate: (key: string) => string, owners: ReadonlyMap<string, string>): Record<string, unknown> {
  return {
    id: task.id,
    status: task.status,
    owner: task.owner_key_id === null ? null : (owners.get(task.owner_key_id) ?? null),
    owner_key_id: task.owner_key_id,
    progress: task.progress,
    description: task.description,
    count: task.count,
    size: task.size,
    steps: task.steps,
    guidance: task.guidance,
    seed: task.base_seed,
    workflow: task.workflow,
    error_message: task.error_message,
    result_path: publicResultPaths(task.result_path, dataDir),
    created_at: task.created_at,
    started_at: task.started_at,
    finished_at: task.finished_at,
    updated_at: task.updated_at,
    claimed_by: task.claimed_by,
    lease_expires_at: task.lease_expires_at,
    images: images.map((i) => ({
      index: i.idx,
      status: i.status,
      seed: i.seed,
      prompt_id: i.prompt_id,
      worker: i.worker,
      file: i.file_path ? locate(i.file_path) : null,
      bytes: i.bytes,
      width: i.width,
      height: i.height,
      content_type: i.content_type,
      attempts: i.attempts,
      error: i.error,
    })),
  };
}

function printTask(t: ReturnType<typeof taskJson> & { queue_position: number | null }, images: ImageRow[], locate: (key: string) => string): void {
  const lines: [string, unknown][] = [
    ['task', t.id],
    ['status', t.status + (t.queue_position ? ` (queue position ${t.queue_position})` : '')],
    ['progress', `${String(t.progress)}%`],
    ['description', t.description],
    ['parameters', `count ${String(t.count)}, size ${String(t.size)}, steps ${String(t.steps)}, guidance ${String(t.guidance)}, seed ${String(t.seed)}`],
    ['owner', t.owner_key_id === null ? 'open (made while the service had no API keys)' : `${String(t.owner ?? '?')} (${String(t.owner_key_id)})`],
    ['workflow', t.workflow],
    ['created', t.created_at],
    ['started', t.started_at],
    ['finished', t.finished_at],
    ['updated', t.updated_at],
    ['claimed by', t.claimed_by ? `${String(t.claimed_by)} until ${String(t.lease_expires_at)}` : null],
    ['error', t.error_message],
  ];
  // Task text (description, errors, claims) is the service's or its callers': printed escaped.
  for (const [k, v] of lines) if (v !== null && v !== undefined) console.log(`${k.padEnd(12)} ${escapeControl(String(v))}`);
  const legacy = t.result_path as string[];
  if (images.length === 0) {
    if (legacy.length) for (const p of legacy) console.log(`${'result'.padEnd(12)} ${escapeControl(p)}`);
    return;
  }
  console.log('');
  printTable(
    ['INDEX', 'STATUS', 'SEED', 'SIZE', 'BYTES', 'ATTEMPTS', 'FILE / ERROR'],
    images.map((i) => [
      String(i.idx),
      i.status,
      String(i.seed),
      i.width && i.height ? `${i.width}x${i.height}` : '-',
      i.bytes === null ? '-' : String(i.bytes),
      String(i.attempts),
      i.error ?? (i.file_path ? locate(i.file_path) : (i.worker ?? '')),
    ]),
  );
}

/** The names of the keys that own `tasks`, by key id. */
async function ownerNames(db: Db, tasks: readonly TaskRow[]): Promise<Map<string, string>> {
  const ids = [...new Set(tasks.map((t) => t.owner_key_id).filter((id): id is string => id !== null))];
  return new Map((await findApiKeys(db, ids)).map((k) => [k.id, k.name]));
}

/** A task's owner in a table: its key's name, `open` for tasks made before any key existed, the id when the key is unknown. */
function ownerCell(task: TaskRow, owners: ReadonlyMap<string, string>): string {
  if (task.owner_key_id === null) return 'open';
  return clip(owners.get(task.owner_key_id) ?? task.owner_key_id, 24);
}

function groupByTask(images: ImageRow[]): Map<string, ImageRow[]> {
  const by = new Map<string, ImageRow[]>();
  for (const i of images) by.set(i.task_id, [...(by.get(i.task_id) ?? []), i]);
  return by;
}

/** `2025-01-02T03:04:05.678Z` as `2025-01-02 03:04:05` (UTC, as stored). */
function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '');
}

function isStatus(s: string): s is TaskStatus {
  return (TASK_STATUSES as readonly string[]).includes(s);
}

function onePositional(positionals: string[]): string {
  if (positionals.length === 0) throw new UsageError('a task id is required');
  if (positionals.length > 1) throw new UsageError(`one task id, please (got ${positionals.length})`);
  return positionals[0]!;
}

/** Where a stored file is, for an operator: its local path, or its object URL in STORAGE_URL's store (not contacted). */
function fileLocator(config: Config): (key: string) => string {
  const store = openStore(config.storageUrl, dataDirOf(config));
  store.close(); // only its names are used
  return (key) => store.localPath?.(key) ?? `${store.location}/${key}`;
}
