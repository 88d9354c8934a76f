/**
 * `kontext repair`: reconciles tasks a stopped or crashed service left `processing` with ComfyUI,
 * now, by running the engine's own crash recovery (the service does the same at its next start).
 * Replaces the old `fix_existing_tasks.py` and `manual_fix.py`.
 *
 * The engine runs under its own instance name and never claims pending tasks, so a service started
 * meanwhile neither loses its queue nor runs an image this command is following.
 */
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { loadWorkflow, WorkflowError, type Workflow } from '../comfyui/workflow.js';
import type { Db } from '../db/database.js';
import { imagesOfTasks } from '../db/images.js';
import { findTask, listTasks, releaseClaim } from '../db/tasks.js';
import type { TaskRow } from '../db/types.js';
import { createLogger, silentLogger } from '../log.js';
import type { TaskEngine } from '../tasks/engine.js';
import { loadSigningSecret, UrlSigner } from '../auth/url-signer.js';
import { createEngineStack } from '../tasks/engine-stack.js';
import { WebhookRecorder } from '../webhooks/recorder.js';
import { subscribe, type EngineEventBus } from '../tasks/events.js';
import { intOption, parseCommandLine, type Command } from './command.js';
import { cliConfig, dataDirOf, openDataDir, openStorage, withDb } from './environment.js';
import { CommandError, EXIT } from './output.js';
import { fetchService, serviceUrl } from './service.js';

const USAGE = `Usage: kontext repair [--timeout <seconds>] [--url <url>] [--verbose]

Reconciles the tasks a stopped or crashed service left 'processing' with ComfyUI, now: prompts
that finished are adopted, queued or running ones followed to their end, vanished ones
resubmitted under the same prompt id (no image runs twice). Waits until each of those tasks is
completed or failed, then prints what happened to each. Pending tasks are left for the service.

Refuses while the service is running, which reconciles by itself: that is when a processing
task's claim has not expired and the service at --url answers for it, or the claim belongs to a
service on another machine (wait until its claim expires, shown by 'kontext tasks show').

Options:
      --timeout <s>  give up after this many seconds, 1-86400 (default 600); tasks not settled
                     by then are left for the service's next start
      --url <url>    where a running service would answer (default http://127.0.0.1:$PORT)
      --verbose      the engine's log on stderr
  -h, --help         show this help

Uses COMFYUI_URL, COMFYUI_TIMEOUT, WORKFLOW, DATA_DIR and STORAGE_URL like the service.

Exit codes: 0 every task settled (completed or failed; nothing to do counts too), 1 refused, or
not all settled within the timeout, 2 usage error or invalid configuration, 130 interrupted.`;

/** `kontext repair`. */
export const repairCommand: Command = {
  name: 'repair',
  usage: USAGE,
  async run(argv) {
    const { values } = parseCommandLine(argv, {
      options: { timeout: { type: 'string' }, url: { type: 'string' }, verbose: { type: 'boolean' } },
    });
    const timeoutS = intOption('timeout', values.timeout, 1, 86_400) ?? 600;
    const config = cliConfig();
    const url = serviceUrl(values.url, () => config);
    return withDb(await openDataDir(config), async (db) => {
      const stuck = await listTasks(db, { status: 'processing', limit: 100_000 });
      if (stuck.length === 0) {
        console.log('nothing to repair: no task is processing');
        return EXIT.OK;
      }
      await takeOver(db, stuck, url, config.instanceId ?? hostname());
      let workflow: Workflow;
      try {
        workflow = await loadWorkflow(config.workflow);
      } catch (err) {
        if (err instanceof WorkflowError) throw new CommandError(err.message, EXIT.USAGE);
        throw err;
      }
      const log = values.verbose ? createLogger({ json: false, debug: config.debug, write: (l) => process.stderr.write(`${l}\n`) }) : silentLogger;
      const instance = `${config.instanceId ?? hostname()}/kontext-repair/${process.pid}`;
      const store = await openStorage(config);
      // Its own temp folder: the service sweeps its folder at start, maybe while this runs.
      const tmpDir = join(dataDirOf(config), 'tmp', `kontext-repair-${process.pid}`);
      let stack;
      try {
        stack = await createEngineStack({
          db,
          workflow,
          config,
          dataDir: dataDirOf(config),
          store,
          tmpDir,
          instance,
          log,
          // Never claims a pending task: the queue is the service's. Deleting old tasks is `kontext cleanup`'s business.
          engine: { maxConcurrentTasks: 0, cleanupDays: 0, tickMs: 250 },
          // The events the service would send for the tasks settled here, WEBHOOK_URL's included.
          webhooks: new WebhookRecorder({
            globalUrl: config.webhookUrl,
            baseUrl: config.publicUrl ?? '',
            dataDir: dataDirOf(config),
            signer: new UrlSigner(await loadSigningSecret(db, config.urlSigningSecret), config.imageUrlTtlS),
          }),
        });
      } catch (err) {
        store.close();
        throw err;
      }
      const { pool, engine } = stack;
      const notes = new RepairNotes(engine.events);
      console.log(`repairing ${stuck.length} processing task${stuck.length === 1 ? '' : 's'} with ComfyUI at ${config.comfyuiUrls.join(', ')}`);
      await pool.start();
      const down = pool.members.filter((m) => !m.healthy);
      if (down.length === pool.members.length) {
        console.log(`no ComfyUI server answers yet (${down.map((m) => `${m.url}: ${m.lastError ?? 'down'}`).join('; ')}); waiting up to ${timeoutS} s`);
      }
      let interrupted = false;
      const onSigint = () => {
        interrupted = true;
      };
      process.on('SIGINT', onSigint);
      try {
        await engine.start();
        await waitForSettled(db, engine, stuck, timeoutS * 1000, () => interrupted);
      } finally {
        process.off('SIGINT', onSigint);
        await engine.stop();
        await pool.stop();
        await stack.close();
        await engine.idle();
        store.close();
        await rm(tmpDir, { recursive: true, force: true });
      }
      const unsettled: string[] = [];
      for (const before of stuck) {
        const after = await findTask(db, before.id);
        if (after?.status === 'processing') {
          unsettled.push(before.id);
          // Handed back at once, so the service's next start takes it over without waiting for the lease.
          if (after.claimed_by === instance) await releaseClaim(db, after.id, { claimedBy: instance, leaseExpiresAt: after.lease_expires_at });
        }
      }
      await report(db, stuck, notes);
      if (interrupted) {
        console.log(`interrupted: ${unsettled.length} task${unsettled.length === 1 ? '' : 's'} left processing for the service's next start or another repair`);
        return 130;
      }
      if (unsettled.length) {
        console.log(`${unsettled.length} task${unsettled.length === 1 ? '' : 's'} not settled within ${timeoutS} s; left processing for the service's next start or another repair`);
        return EXIT.FAILURE;
      }
      console.log(`all ${stuck.length} task${stuck.length === 1 ? '' : 's'} settled`);
      return EXIT.OK;
    });
  },
};

/**
 * Takes over the processing tasks, or refuses. A claim that has expired, or has no holder, is free.
 * A live claim of this machine's service is only taken when that service does not answer at `url`
 * (killed or crashed before its lease ran out); a live claim of another machine (another INSTANCE_ID)
 * is never taken. `here` is this machine's service instance: INSTANCE_ID or the host name.
 */
async function takeOver(db: Db, stuck: TaskRow[], url: string, here: string): Promise<void> {
  const now = new Date().toISOString();
  const held = stuck.filter((t) => t.claimed_by !== null && t.lease_expires_at !== null && t.lease_expires_at > now);
  const first = held[0];
  if (!first) return;
  if (await serviceAnswersFor(url, first.id)) {
    throw new CommandError(
      `the service at ${url} is running and looks after ${held.length === 1 ? `task ${first.id}` : `${held.length} processing tasks`} itself; ` +
        `repair is for a stopped service (stop it first, or let it finish)`,
    );
  }
  for (const t of held) {
    const repairPid = new RegExp(`^${escapeRegExp(here)}/kontext-repair/(\\d+)$`).exec(t.claimed_by!)?.[1];
    if (repairPid !== undefined) {
      if (isAlive(Number(repairPid))) throw new CommandError(`another kontext repair (process ${repairPid}) is working on task ${t.id}`);
    } else if (t.claimed_by !== here) {
      throw new CommandError(
        `task ${t.id} is held by the service on ${t.claimed_by} until ${t.lease_expires_at}; that service reconciles it by itself. ` +
          `If it is stopped, run repair again after that time`,
      );
    }
    if (await releaseClaim(db, t.id, { claimedBy: t.claimed_by, leaseExpiresAt: t.lease_expires_at })) {
      console.log(`task ${t.id}: taking over from ${t.claimed_by}, which does not answer at ${url}`);
    }
  }
}

/** True when a service answers at `url` and knows the task: it runs on this very database. */
async function serviceAnswersFor(url: string, taskId: string): Promise<boolean> {
  try {
    const res = await fetchService(url, `api/task-status/${encodeURIComponent(taskId)}`, { timeoutMs: 5000 });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Waits until the engine looks after none of the tasks any more, showing how far it is. */
async function waitForSettled(db: Db, engine: TaskEngine, stuck: TaskRow[], timeoutMs: number, interrupted: () => boolean): Promise<void> {
  const started = Date.now();
  const tty = process.stdout.isTTY === true;
  const ids = stuck.map((t) => t.id);
  const total = stuck.reduce((n, t) => n + t.count, 0);
  let lastLine = '';
  let lastPrinted = 0;
  for (;;) {
    const active = engine.activeTaskIds().length;
    const done = (await imagesOfTasks(db, ids)).filter((i) => i.status === 'completed').length;
    const elapsed = Math.round((Date.now() - started) / 1000);
    const line = `${stuck.length - active} of ${stuck.length} task${stuck.length === 1 ? '' : 's'} settled, ${done} of ${total} images done`;
    if (tty) process.stdout.write(`\r${line}, ${elapsed} s`);
    else if (line !== lastLine || Date.now() - lastPrinted > 10_000) {
      console.log(`${line} (${elapsed} s)`);
      lastPrinted = Date.now();
    }
    lastLine = line;
    if (active === 0 || interrupted() || Date.now() - started > timeoutMs) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (tty) process.stdout.write('\n');
}

/** Prints, per task, where it ended and what the engine had to do for it. */
async function report(db: Db, stuck: TaskRow[], notes: RepairNotes): Promise<void> {
  const images = await imagesOfTasks(db, stuck.map((t) => t.id));
  for (const before of stuck) {
    const after = await findTask(db, before.id);
    const own = images.filter((i) => i.task_id === before.id);
    const done = own.filter((i) => i.status === 'completed').length;
    const status = after?.status ?? 'deleted';
    console.log(`${before.id}  processing -> ${status}  ${done}/${before.count} images${after?.error_message ? `  error: ${after.error_message}` : ''}`);
    for (const note of notes.of(before.id)) console.log(`    ${note}`);
  }
}

/** What the engine had to do for each task (images found in flight, resubmitted, failed, ready), from its events. */
class RepairNotes {
  private readonly byTask = new Map<string, string[]>();

  constructor(events: EngineEventBus) {
    subscribe(events, 'task.recovered', ({ taskId, inFlight }) =>
      this.add(taskId, `${inFlight} image${inFlight === 1 ? ' was' : 's were'} in flight on ComfyUI`),
    );
    subscribe(events, 'image.resubmitted', ({ taskId, index, reason }) => this.add(taskId, `image ${index} resubmitted: ${reason}`));
    subscribe(events, 'image.failed', ({ taskId, index, error }) => this.add(taskId, `image ${index} failed: ${error}`));
    subscribe(events, 'image.ready', ({ taskId, index, cached }) => this.add(taskId, `image ${index} ready${cached ? ' (ComfyUI had it cached)' : ''}`));
  }

  of(taskId: string): string[] {
    return this.byTask.get(taskId) ?? [];
  }

  private add(taskId: string, note: string): void {
    this.byTask.set(taskId, [...(this.byTask.get(taskId) ?? []), note]);
  }
}
