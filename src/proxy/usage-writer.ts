import type { Logger } from "#src/log.js";
import type { Db } from "#src/store/db.js";
import {
  completeProxyRequests,
  insertProxyRequest,
  insertProxyRequests,
  type ProxyCompletion,
  type ProxyRequestRow,
} from "#src/store/usage.js";

export interface UsageWriterOptions {
  /** Rows waiting (and reads admitted but not finished) at most; past it, reads are refused. Default 20 000. */
  readonly capacity?: number;
  /** Rows per statement. Default 1 000. */
  readonly batchSize?: number;
  /** Longest a row waits before a flush. Default 200 ms. */
  readonly flushMs?: number;
  /** How long `stop()` keeps trying to write what is left. Default 10 s. */
  readonly stopTimeoutMs?: number;
}

/** Counters of the writer, for metrics and the benchmark. */
export interface UsageCounters {
  flushes: number;
  flushFailures: number;
  rowsWritten: number;
  /** Refusals with no room left to record them (the request was refused anyway). */
  dropped: number;
  /** Reads refused because the backlog was full. */
  shed: number;
  /** Rows written one at a time before forwarding (mutating requests). */
  durableWrites: number;
}

/**
 * Records proxied requests in `proxy_requests`:
 *
 * - Mutating requests: `writeNow` inserts the row before the request is
 *   forwarded; the caller refuses the request when it throws. The row's end
 *   (`complete`) is written in the next batch.
 * - Reads and refusals: `add` queues the row; batches are written with one
 *   multi-row statement, at most `batchSize` rows, at least every `flushMs`,
 *   one batch at a time, off the request path.
 *
 * Bounded: a read is admitted only when `reserve` finds room for its row
 * (`capacity` counts queued rows and admitted reads). When the database is
 * slow or down the backlog grows, failed batches are retried with backoff,
 * nothing queued is dropped, and new reads are refused instead. `stop`
 * writes what is left.
 */
export class UsageWriter {
  readonly #db: Db;
  readonly #log: Logger;
  readonly #capacity: number;
  readonly #batchSize: number;
  readonly #flushMs: number;
  readonly #stopTimeoutMs: number;
  #rows: ProxyRequestRow[] = [];
  #completions: ProxyCompletion[] = [];
  #reserved = 0;
  #flushing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #failures = 0;
  #stopped = false;
  readonly counters: UsageCounters = {
    flushes: 0,
    flushFailures: 0,
    rowsWritten: 0,
    dropped: 0,
    shed: 0,
    durableWrites: 0,
  };

  constructor(db: Db, log: Logger, options: UsageWriterOptions = {}) {
    this.#db = db;
    this.#log = log;
    this.#capacity = options.capacity ?? 20_000;
    this.#batchSize = options.batchSize ?? 1_000;
    this.#flushMs = options.flushMs ?? 200;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  }

  /** Rows waiting to be written, completions included. */
  get backlog(): number {
    return this.#rows.length + this.#completions.length;
  }

  /** Room for one more read's row: true reserves it (release it with `add`). */
  reserve(): boolean {
    if (this.#stopped || this.#rows.length + this.#reserved >= this.#capacity) {
      this.counters.shed++;
      return false;
    }
    this.#reserved++;
    return true;
  }

  /**
   * Queues a row: a reserved read's (`reserved` true), or a refusal's, which
   * is kept only if there is room (the request was refused either way).
   */
  add(row: ProxyRequestRow, reserved: boolean): void {
    if (reserved) {
      this.#reserved--;
    } else if (this.#rows.length + this.#reserved >= this.#capacity) {
      this.counters.dropped++;
      return;
    }
    this.#rows.push(row);
    this.#schedule();
  }

  /** Writes a row at once, before its request is forwarded; rejects when it cannot. */
  async writeNow(row: ProxyRequestRow): Promise<number> {
    if (this.#stopped) throw new Error("the usage writer is stopped");
    const id = await insertProxyRequest(this.#db, row);
    this.counters.durableWrites++;
    return id;
  }

  /** Queues the end of a request written with `writeNow`; always kept. */
  complete(completion: ProxyCompletion): void {
    this.#completions.push(completion);
    this.#schedule();
  }

  /** Writes everything queued now, batch after batch; rejects when a batch fails (it stays queued). */
  async flush(): Promise<void> {
    for (;;) {
      while (this.#flushing) await this.#flushing;
      if (this.backlog === 0) return;
      this.#flushing = this.#write().finally(() => {
        this.#flushing = null;
      });
      await this.#flushing;
    }
  }

  /** Refuses new reads, then writes what is left (trying until `stopTimeoutMs`). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const deadline = Date.now() + this.#stopTimeoutMs;
    while (this.backlog > 0 && Date.now() < deadline) {
      await this.flush().catch(() => {});
      if (this.backlog > 0) await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
    }
    if (this.backlog > 0) {
      this.#log.error(
        { rows: this.backlog },
        "proxy usage: the database did not take the last rows before shutdown; they are lost",
      );
    }
  }

  /** Writes rows one at a time, giving up those the database refuses; returns how many it wrote. */
  async #oneByOne(rows: ProxyRequestRow[], completions: ProxyCompletion[]): Promise<number> {
    let written = 0;
    for (const [i, row] of rows.entries()) {
      try {
        await insertProxyRequests(this.#db, [row]);
        written++;
      } catch (error) {
        if (!isDataError(error)) {
          this.#rows.unshift(...rows.slice(i));
          this.#completions.unshift(...completions);
          throw error;
        }
        this.counters.dropped++;
        this.#log.error(
          { err: error, requestId: row.requestId, grantId: row.grantId },
          "proxy usage: the database refused a row; it is given up",
        );
      }
    }
    return written;
  }

  #schedule(): void {
    if (this.#stopped || this.#flushing) return;
    if (this.backlog >= this.#batchSize) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
      void this.#run();
    } else if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        void this.#run();
      }, this.#flushMs);
      this.#timer.unref();
    }
  }

  async #run(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = this.#write()
      .then(() => {
        this.#failures = 0;
      })
      .catch((error) => {
        this.#failures++;
        this.counters.flushFailures++;
        this.#log.warn(
          { err: error, backlog: this.backlog, failures: this.#failures },
          "proxy usage: writing a batch failed; it is kept and retried",
        );
      })
      .finally(() => {
        this.#flushing = null;
      });
    await this.#flushing;
    if (this.backlog === 0 || this.#stopped) return;
    const delay = this.#failures === 0 ? 0 : Math.min(this.#flushMs * 2 ** this.#failures, 5_000);
    if (delay === 0 && this.backlog >= this.#batchSize) return void this.#run();
    this.#timer ??= setTimeout(() => {
      this.#timer = null;
      void this.#run();
    }, delay || this.#flushMs);
    this.#timer.unref();
  }

  /**
   * One batch of rows and one of completions; on failure they go back to the
   * front. A batch the database refuses for what is in it (a data or
   * integrity error, which retrying cannot mend) is written row by row, and
   * only the rows refused are given up, so one bad row never blocks the rest.
   */
  async #write(): Promise<void> {
    const rows = this.#rows.splice(0, this.#batchSize);
    const completions = this.#completions.splice(0, this.#batchSize);
    let written = rows.length;
    try {
      await insertProxyRequests(this.#db, rows);
    } catch (error) {
      if (rows.length > 0 && isDataError(error)) {
        written = await this.#oneByOne(rows, completions);
      } else {
        this.#rows.unshift(...rows);
        this.#completions.unshift(...completions);
        throw error;
      }
    }
    this.counters.flushes++;
    this.counters.rowsWritten += written;
    try {
      await completeProxyRequests(this.#db, completions);
    } catch (error) {
      this.#completions.unshift(...completions);
      throw error;
    }
  }
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation). */
function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^2[23]/.test(code);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
