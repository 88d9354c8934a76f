/**
 * `kontext`: the command line of Kontext Gateway. Finds the command, prints help, and turns
 * errors into one line and an exit code scripts can trust. Commands are loaded on demand, so
 * `--help` and the database commands start fast.
 */
import { VERSION } from '../version.js';
import type { Command } from './command.js';
import { CommandError, escapeControlKeepingLines, EXIT, UsageError } from './output.js';

interface Entry {
  name: string;
  summary: string;
  load: () => Promise<Command>;
}

const COMMANDS: Entry[] = [
  { name: 'generate', summary: 'make images with a running service, with a progress bar per image', load: async () => (await import('./generate.js')).generateCommand },
  { name: 'tasks list', summary: 'list tasks from the database in DATA_DIR', load: async () => (await import('./tasks.js')).tasksListCommand },
  { name: 'tasks show', summary: 'show one task with its images', load: async () => (await import('./tasks.js')).tasksShowCommand },
  { name: 'tasks cancel', summary: 'cancel a task (through the service; pending tasks also without it)', load: async () => (await import('./tasks.js')).tasksCancelCommand },
  { name: 'repair', summary: "reconcile tasks a stopped service left processing with ComfyUI, now", load: async () => (await import('./repair.js')).repairCommand },
  { name: 'images check', summary: 'check that every recorded image file exists, is readable and intact', load: async () => (await import('./images-check.js')).imagesCheckCommand },
  { name: 'cleanup', summary: 'delete finished tasks older than TASK_CLEANUP_DAYS (or --days)', load: async () => (await import('./cleanup.js')).cleanupCommand },
  { name: 'keys create', summary: 'create an API key (printed once) with its scopes and limits', load: async () => (await import('./keys.js')).keysCreateCommand },
  { name: 'keys list', summary: 'list the API keys (never the keys themselves)', load: async () => (await import('./keys.js')).keysListCommand },
  { name: 'keys revoke', summary: 'revoke an API key by its id', load: async () => (await import('./keys.js')).keysRevokeCommand },
  { name: 'webhooks list', summary: 'list webhook events and their deliveries (--task, --failed)', load: async () => (await import('./webhooks.js')).webhooksListCommand },
  { name: 'webhooks redeliver', summary: 'send a webhook event again (same webhook-id)', load: async () => (await import('./webhooks.js')).webhooksRedeliverCommand },
  { name: 'webhooks secret', summary: 'print the secret webhooks are signed with (whsec_...)', load: async () => (await import('./webhooks.js')).webhooksSecretCommand },
  { name: 'db copy', summary: 'copy the SQLite database of DATA_DIR into an empty PostgreSQL database', load: async () => (await import('./db-copy.js')).dbCopyCommand },
];

const EXIT_CODES = `Exit codes: 0 ok, 1 failure or problems found, 2 usage error or invalid configuration,
3 the service is not reachable (generate, tasks cancel).`;

const USAGE = `Usage: kontext <command> [options]

The command line of Kontext Gateway: make images with a running service, and inspect and repair
the service's data. Configuration comes from the same environment variables (and .env) as the
service: DATA_DIR, PORT, COMFYUI_URL, ...

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(14)} ${c.summary}`).join('\n')}

Options:
  -h, --help      show help (also: kontext <command> --help)
  -V, --version   show the version

${EXIT_CODES}`;

function groupUsage(group: string): string {
  const members = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  return `Usage: kontext ${group} <${members.map((c) => c.name.slice(group.length + 1)).join('|')}> [options]

Commands:
${members.map((c) => `  ${c.name.padEnd(14)} ${c.summary}`).join('\n')}

Run 'kontext ${group} <command> --help' for the options of each.`;
}

const isHelp = (arg: string | undefined) => arg === '--help' || arg === '-h';

/** Runs the command line; resolves with the exit code. */
async function main(argv: string[]): Promise<number> {
  const [first, second] = argv;
  if (first === undefined) {
    console.error(USAGE);
    return EXIT.USAGE;
  }
  if (isHelp(first) || first === 'help') {
    if (first === 'help' && second !== undefined) return main([...argv.slice(1), '--help']);
    console.log(USAGE);
    return EXIT.OK;
  }
  if (first === '--version' || first === '-V') {
    console.log(VERSION);
    return EXIT.OK;
  }
  const entry = COMMANDS.find((c) => c.name === `${first} ${second}`) ?? COMMANDS.find((c) => c.name === first);
  if (!entry) {
    const isGroup = COMMANDS.some((c) => c.name.startsWith(`${first} `));
    if (isGroup && (isHelp(second) || second === undefined)) {
      if (second === undefined) {
        console.error(groupUsage(first));
        return EXIT.USAGE;
      }
      console.log(groupUsage(first));
      return EXIT.OK;
    }
    const what = isGroup ? `unknown ${first} command '${second}'` : first.startsWith('-') ? `unknown option '${first}'` : `unknown command '${first}'`;
    console.error(`kontext: ${what}. Run 'kontext ${isGroup ? `${first} ` : ''}--help' for usage.`);
    return EXIT.USAGE;
  }
  const rest = argv.slice(entry.name.split(' ').length);
  const command = await entry.load();
  // Help wins over everything else on the line, as long as it comes before `--`.
  const end = rest.indexOf('--');
  if ((end === -1 ? rest : rest.slice(0, end)).some(isHelp)) {
    console.log(command.usage);
    return EXIT.OK;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`kontext ${entry.name}: ${err.message.replace(/\.$/, '')}. Run 'kontext ${entry.name} --help' for usage.`);
      return EXIT.USAGE;
    }
    if (err instanceof CommandError) {
      console.error(`kontext ${entry.name}: ${err.message}`);
      return err.exitCode;
    }
    throw err;
  }
}

/** Exits once stdout and stderr are flushed (pipes may be asynchronous), so no output is cut off. */
function exit(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(exit, (err: unknown) => {
  console.error(`kontext: unexpected error: ${escapeControlKeepingLines(err instanceof Error ? (err.stack ?? err.message) : String(err))}`);
  exit(EXIT.FAILURE);
});
