/**
 * `kontext webhooks list|redeliver|secret`: the webhook outbox in the service's database (SQLite in
 * DATA_DIR or DATABASE_URL), while the service runs or not.
 */
import { findWebhook, listWebhooks, redeliverWebhook } from '../db/webhooks.js';
import type { WebhookRow } from '../db/types.js';
import { loadWebhookSecret } from '../webhooks/signing.js';
import { intOption, parseCommandLine, type Command } from './command.js';
import { cliConfig, openDataDir, withDb } from './environment.js';
import { clip, CommandError, EXIT, printJson, printTable, UsageError } from './output.js';

const DATABASE = `The database is the service's: SQLite in DATA_DIR, or PostgreSQL at DATABASE_URL (the
same variables and .env as the service).`;

const LIST_USAGE = `Usage: kontext webhooks list [--task <id>] [--failed] [--limit <n>] [--json]

Lists webhook events, newest first: id (the webhook-id receivers see, the same on every attempt),
task, type, target, status (pending, delivered, failed), attempts, the last answer or error, and
when it is tried next or was finished.

${DATABASE}

Options:
      --task <id>     only this task's events
      --failed        only events whose last attempt failed: given up, stopped by a 410, or still retrying
      --limit <n>     at most this many, 1-10000 (default 100)
      --json          a JSON array instead of a table
  -h, --help          show this help

Exit codes: 0 listed (also when there are none), 1 no database in DATA_DIR, 2 usage error.`;

const REDELIVER_USAGE = `Usage: kontext webhooks redeliver <id>

Sends a webhook event again (delivered, given up or still retrying): it becomes due now, with the
same webhook-id and body and a new retry window of WEBHOOK_RETRY_HOURS. A running service sends it
within a second or two; later events of its task to the same target wait until it is delivered.

${DATABASE}

Options:
  -h, --help      show this help

Exit codes: 0 queued, 1 no such event (or no database in DATA_DIR), 2 usage error.`;

const SECRET_USAGE = `Usage: kontext webhooks secret

Prints the secret webhooks are signed with (whsec_...), for receivers to verify them with a
Standard Webhooks library: WEBHOOK_SECRET when set, otherwise the one stored in the database, which
every replica shares (made now and stored when there is none yet).

${DATABASE}

Options:
  -h, --help      show this help

Exit codes: 0 printed, 1 the database cannot be opened or written, 2 usage error.`;

/** A row as `--json` shows it. */
function rowJson(r: WebhookRow): Record<string, unknown> {
  return {
    id: r.id,
    taskId: r.task_id,
    type: r.type,
    url: r.url,
    source: r.source,
    status: r.status,
    attempts: r.attempts,
    lastStatus: r.last_status,
    lastError: r.last_error,
    nextAttemptAt: r.status === 'pending' ? r.next_attempt_at : null,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

/** `kontext webhooks list`. */
export const webhooksListCommand: Command = {
  name: 'webhooks list',
  usage: LIST_USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandLine(argv, {
      options: { task: { type: 'string' }, failed: { type: 'boolean' }, limit: { type: 'string' }, json: { type: 'boolean' } },
      allowPositionals: true,
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const limit = intOption('limit', values.limit, 1, 10_000) ?? 100;
    return withDb(await openDataDir(cliConfig()), async (db) => {
      const rows = await listWebhooks(db, { limit, failed: values.failed ?? false, ...(values.task !== undefined ? { taskId: values.task } : {}) });
      if (values.json) {
        printJson(rows.map(rowJson));
        return EXIT.OK;
      }
      if (rows.length === 0) {
        console.log(values.failed ? 'no failed webhook events' : 'no webhook events');
        return EXIT.OK;
      }
      printTable(
        ['ID', 'TASK', 'TYPE', 'STATUS', 'ATTEMPTS', 'NEXT/FINISHED', 'URL', 'LAST'],
        rows.map((r) => [
          r.id,
          r.task_id,
          r.type,
          r.status,
          String(r.attempts),
          (r.status === 'pending' ? r.next_attempt_at : (r.finished_at ?? '')).slice(0, 19),
          clip(r.url, 60),
          clip(r.last_error ?? (r.last_status !== null ? `HTTP ${r.last_status}` : ''), 80),
        ]),
      );
      return EXIT.OK;
    });
  },
};

/** `kontext webhooks redeliver`. */
export const webhooksRedeliverCommand: Command = {
  name: 'webhooks redeliver',
  usage: REDELIVER_USAGE,
  async run(argv) {
    const { positionals } = parseCommandLine(argv, { options: {}, allowPositionals: true });
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'name the event to send again (its id, msg_...)' : 'name one event');
    const id = positionals[0]!;
    return withDb(await openDataDir(cliConfig()), async (db) => {
      if (!(await findWebhook(db, id))) throw new CommandError(`no webhook event ${clip(id, 80)}; 'kontext webhooks list' shows them`);
      const row = (await redeliverWebhook(db, id, new Date().toISOString()))!;
      console.log(`webhook event ${row.id} (${row.type} of task ${row.task_id}) is due again; a running service sends it to ${clip(row.url, 80)}`);
      return EXIT.OK;
    });
  },
};

/** `kontext webhooks secret`. */
export const webhooksSecretCommand: Command = {
  name: 'webhooks secret',
  usage: SECRET_USAGE,
  async run(argv) {
    const { positionals } = parseCommandLine(argv, { options: {}, allowPositionals: true });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const config = cliConfig();
    if (config.webhookSecret) {
      console.log(config.webhookSecret);
      return EXIT.OK;
    }
    return withDb(await openDataDir(config, { create: true }), async (db) => {
      console.log(await loadWebhookSecret(db, undefined));
      return EXIT.OK;
    });
  },
};
