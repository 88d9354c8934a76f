/**
 * The simulator's SIGSTOP/SIGCONT: a switch that freezes time and I/O. While paused, the kernel
 * still accepts connections, but nothing is read from any socket, nothing is sent, and the
 * executor's timers stand still (each keeps the time it had left and continues on resume).
 */
import type { Socket } from 'node:net';

interface Sleeper {
  /** Time left in ms when the timer is stopped; the timer runs while `timer` is set. */
  left: number;
  startedAt: number;
  timer: NodeJS.Timeout | undefined;
  done: () => void;
}

/** Pause state of one simulator: its raw sockets, its sleeps and whoever waits for a resume. */
export class PauseGate {
  private paused = false;
  /** Set by `release()` (the simulator closes): no more waiting, no more pausing. */
  private released = false;
  private readonly sockets = new Set<Socket>();
  /** Sockets paused by us (not by someone else's backpressure), resumed by `resume()`. */
  private readonly pausedByUs = new Set<Socket>();
  /** Idle timeouts (keep-alive) suspended by the pause: a stopped process closes nothing. */
  private readonly idleTimeouts = new Map<Socket, number>();
  private readonly sleepers = new Set<Sleeper>();
  private waiters: Array<() => void> = [];
  private readonly resumeListeners: Array<() => void> = [];

  /** True between `pause()` and `resume()`. */
  get isPaused(): boolean {
    return this.paused;
  }

  /** Follows a raw connection (HTTP or upgraded): paused at once if the gate is paused. */
  track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.pausedByUs.delete(socket);
      this.idleTimeouts.delete(socket);
    });
    if (this.paused) this.stopReading(socket);
  }

  /** Calls `listener` after every resume (e.g. to send what was held back). */
  onResume(listener: () => void): void {
    this.resumeListeners.push(listener);
  }

  /** Stops reading every socket and every running timer. */
  pause(): void {
    if (this.paused || this.released) return;
    this.paused = true;
    for (const socket of this.sockets) this.stopReading(socket);
    const now = performance.now();
    for (const s of this.sleepers) {
      if (s.timer === undefined) continue;
      clearTimeout(s.timer);
      s.timer = undefined;
      s.left = Math.max(0, s.left - (now - s.startedAt));
    }
  }

  /** Continues everything where it stood. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    for (const socket of this.pausedByUs) socket.resume();
    this.pausedByUs.clear();
    for (const [socket, ms] of this.idleTimeouts) socket.setTimeout(ms);
    this.idleTimeouts.clear();
    for (const s of this.sleepers) this.run(s);
    this.waiters.splice(0).forEach((w) => w());
    for (const listener of this.resumeListeners) listener();
  }

  /** Resolves now when running, else on the next resume (or release). */
  whenRunning(): Promise<void> {
    if (!this.paused) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * A timer of `ms` that does not advance while paused; resolves with how many ms late it fired
   * (a busy event loop; paused time does not count), or with 0 at once after `release()`.
   */
  sleep(ms: number): Promise<number> {
    return new Promise((resolve) => {
      if (this.released) return resolve(0);
      const s: Sleeper = {
        left: Math.max(0, ms),
        startedAt: 0,
        timer: undefined,
        done: () => {
          clearTimeout(s.timer);
          this.sleepers.delete(s);
          resolve(this.released ? 0 : Math.max(0, performance.now() - s.startedAt - s.left));
        },
      };
      this.sleepers.add(s);
      // A zero step still yields to the event loop so requests (an interrupt) get in.
      if (!this.paused) this.run(s);
    });
  }

  /** The simulator closes: every sleep and waiter resolves now, and the gate never pauses again. */
  release(): void {
    this.released = true;
    this.paused = false;
    for (const s of [...this.sleepers]) s.done();
    this.waiters.splice(0).forEach((w) => w());
  }

  /** Every raw socket still open (for close()). */
  openSockets(): Socket[] {
    return [...this.sockets];
  }

  private run(s: Sleeper): void {
    s.startedAt = performance.now();
    s.timer = setTimeout(s.done, s.left);
  }

  private stopReading(socket: Socket): void {
    if (socket.timeout) {
      this.idleTimeouts.set(socket, socket.timeout);
      socket.setTimeout(0);
    }
    // A socket already paused (backpressure) is someone else's to resume.
    if (socket.isPaused()) return;
    socket.pause();
    this.pausedByUs.add(socket);
  }
}
