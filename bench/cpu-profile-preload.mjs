/**
 * Preload for profiling a child process through NODE_OPTIONS, which refuses --cpu-prof:
 * `NODE_OPTIONS="--import ./bench/cpu-profile-preload.mjs" CPU_PROFILE_DIR=<dir>`. The profile is
 * written at exit (a process stopped with SIGKILL writes none).
 */
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  // The main thread's inspector session answers synchronously, so this works in an exit handler.
  process.once('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(join(dir, `service-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
