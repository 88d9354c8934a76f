/**
 * `kontext cleanup`: deletes finished tasks older than N days with their images and unshared
 * uploads, as the service's hourly timer does (the same `deleteOldTasks`), but now.
 */
import { deleteOldTasks } from '../tasks/cleanup.js';
import { intOption, parseCommandLine, type Command } from './command.js';
import { cliConfig, openDataDir, openStorage, withDb, withStore } from './environment.js';
import { EXIT } from './output.js';

const USAGE = `Usage: kontext cleanup [--days <n>]

Deletes finished tasks (completed, failed, cancelled) that finished more than <n> days ago, with
their image files and the uploads no other task uses, from DATA_DIR (or STORAGE_URL). Pending and processing tasks
are never touched. Safe while the service runs.

Options:
      --days <n>   age in days; 0 deletes every finished task (default TASK_CLEANUP_DAYS, 7)
  -h, --help       show this help

Exit codes: 0 done (also when nothing was old enough), 1 failure (or no database in DATA_DIR),
2 usage error.`;

/** `kontext cleanup`. */
export const cleanupCommand: Command = {
  name: 'cleanup',
  usage: USAGE,
  async run(argv) {
    const { values } = parseCommandLine(argv, { options: { days: { type: 'string' } } });
    const flag = intOption('days', values.days, 0, 36_500);
    const config = cliConfig();
    // For the service TASK_CLEANUP_DAYS=0 means "keep everything": never read it as "delete everything".
    if (flag === undefined && config.taskCleanupDays === 0) {
      console.log('TASK_CLEANUP_DAYS is 0 (finished tasks are kept); nothing deleted. Pass --days <n> to delete anyway');
      return EXIT.OK;
    }
    const days = flag ?? config.taskCleanupDays;
    return withDb(await openDataDir(config), async (db) => {
      const deleted = await withStore(await openStorage(config), (store) => deleteOldTasks({ db, store, days }));
      const age = days === 0 ? '' : ` finished more than ${days} day${days === 1 ? '' : 's'} ago`;
      console.log(`deleted ${deleted} task${deleted === 1 ? '' : 's'}${age}`);
      return EXIT.OK;
    });
  },
};
