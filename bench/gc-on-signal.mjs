/**
 * Preload for the fan-out benches' server processes (the service and the bare ws server):
 * `NODE_OPTIONS="--import ./bench/gc-on-signal.mjs" GC_ACK_FILE=<file>`. On SIGUSR2 it runs a full
 * garbage collection and then writes how many it has run into GC_ACK_FILE, so the bench reads RSS
 * after the collection (bench/collect-garbage.ts). Without GC_ACK_FILE it does nothing.
 */
import { writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const ack = process.env.GC_ACK_FILE;
if (ack) {
  // NODE_OPTIONS refuses --expose-gc; set after start-up, the flag gives a new context its gc().
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc');
  let runs = 0;
  process.on('SIGUSR2', () => {
    // Twice: the first pass may only find what the second one frees (weak references, finalizers).
    gc();
    gc();
    // V8 hands freed pages back to the system on helper threads after the collection: RSS read at
    // once still held some of them (growths came out negative). Acknowledge once that has settled.
    setTimeout(() => {
      gc();
      writeFileSync(ack, String(++runs));
    }, 300);
  });
}
