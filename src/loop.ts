import type { Logger } from "#src/log.js";

export interface Loop {
  /** Runs the next pass now instead of at the next interval. */
  kick(): void;
  /** Stops scheduling and waits for a pass in progress to finish. */
  stop(): Promise<void>;
}

export interface LoopOptions {
  readonly name: string;
  readonly log: Logger;
  /** Pause between passes when the last pass found nothing to do. */
  readonly idleMs: number;
  /** Pause after a pass that failed; doubles on each failure up to `maxBackoffMs`. */
  readonly maxBackoffMs?: number;
  /** One pass. Returns true when it did work, so the next pass follows at once. */
  readonly pass: () => Promise<boolean>;
}

/**
 * A background worker: runs `pass` again and again, never two at a time,
 * sleeping when idle and backing off when failing. Errors are logged, never
 * thrown; a failing pass never stops the loop.
 */
export function startLoop(options: LoopOptions): Loop {
  const maxBackoff = options.maxBackoffMs ?? 30_000;
  let stopped = false;
  let running: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let kicked = false;
  let failures = 0;

  const schedule = (ms: number) => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(run, ms);
    timer.unref();
  };

  function run(): void {
    timer = null;
    if (stopped || running) return;
    kicked = false;
    running = (async () => {
      let busy = false;
      try {
        busy = await options.pass();
        failures = 0;
      } catch (error) {
        failures++;
        options.log.error(
          { err: error, loop: options.name, failures },
          `${options.name} pass failed`,
        );
      } finally {
        running = null;
      }
      if (failures > 0) schedule(Math.min(options.idleMs * 2 ** failures, maxBackoff));
      else schedule(busy || kicked ? 0 : options.idleMs);
    })();
  }

  schedule(0);
  return {
    kick() {
      if (stopped) return;
      if (running) kicked = true;
      else schedule(0);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
