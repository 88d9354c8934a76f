/**
 * The simulator and the service as real child processes, for tests that kill them (SIGKILL is
 * the one crash an in-process test cannot fake).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Child {
  url: string;
  process: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** Sends the signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Node's flags for the service, as `npm start` and `npm run demo` pass them (package.json; a test in
 * service-bundle.test.ts checks they agree). --initial-old-space-size=128: V8's old generation starts
 * with a 128 MB allocation limit, which stays its floor. Under uploads (each 64 KiB socket chunk is
 * memory outside the JS heap) a service whose limit V8 had set low, at ~60-75 MB for ~36 MB live,
 * ran 80-97 full collections over the upload bench's rounds against 0-2 and used ~1.7x the CPU
 * (bench/uploads.ts); with the floor, no process fell into that. It costs nothing until garbage
 * reaches it: the upload rows' peak RSS growth went down (~80 to ~63 MB).
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];

/** Runs an entry point of this repository (TypeScript under tsx, or a built .js) with `nodeFlags` (@default none) and waits until it prints a URL matching `ready`. */
async function startChild(entry: string, args: string[], env: Record<string, string>, ready: RegExp, nodeFlags: readonly string[] = [], timeoutMs = 30_000): Promise<Child> {
  const loader = entry.endsWith('.ts') ? ['--import', 'tsx'] : ['--enable-source-maps'];
  const child = spawn(process.execPath, [...loader, ...nodeFlags, entry, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${entry} did not start within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = ready.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${entry} exited with ${code} before it was ready:\n${out}`));
    });
  });
  return {
    url,
    process: child,
    output: () => out,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** A ComfyUI simulator process (`npm run simulator`). */
export function startSimulatorProcess(args: string[]): Promise<Child> {
  return startChild('simulator/cli.ts', args, {}, /listening on (http:\/\/\S+)/);
}

/** The service's log line once it accepts connections, with its URL. */
const SERVICE_LISTENING = /"msg":"Kontext Gateway listening","url":"(http:\/\/[^"]+)"/;

/** The service process from its TypeScript sources under tsx (what `npm start` bundles), configured through its environment; `args` go to src/main.ts (default none). */
export function startServiceProcess(env: Record<string, string>, args: string[] = []): Promise<Child> {
  return startChild('src/main.ts', args, { HOST: '127.0.0.1', PORT: '0', ...env }, SERVICE_LISTENING, SERVICE_NODE_FLAGS);
}

/** The service from a bundle `scripts/build-service.mjs` wrote (as `npm start` runs it), configured through its environment. */
export function startBuiltServiceProcess(bundle: string, env: Record<string, string>, args: string[] = []): Promise<Child> {
  return startChild(bundle, args, { HOST: '127.0.0.1', PORT: '0', ...env }, SERVICE_LISTENING, SERVICE_NODE_FLAGS);
}

/** Runs the service until it exits by itself (a start that must fail); returns its exit code and output. */
export function runServiceToExit(env: Record<string, string>, timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the service did not exit within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}
