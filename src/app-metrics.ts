import { Counter, type Registry } from "prom-client";
import type { ErrorCode } from "#src/errors.js";
import { COMMAND_NAMES, type Command } from "#src/rules/command.js";

/** Why an approval was not recorded: a fixed set, never a login or a path. */
export type ApprovalRefusal =
  | "pull_request_comment"
  | "no_pending_request"
  | "unreadable_request"
  | "own_request"
  | "bot"
  | "not_code_owner"
  | "no_write_access"
  | "commit_author"
  | "commit_unidentified"
  | "already_granted"
  | "stale";

export type CommandName = Command["name"];

/** `actions`: `POST /v1/exchange`; `cli`: a person's `POST /v1/token`. */
export type TokenChannel = "actions" | "cli";

/** minted; refused (a caller error, by its code); rate_limited; failed (the server's fault). */
export type TokenOutcome = "minted" | "refused" | "rate_limited" | "failed";

/** done; retry (failed, tried again later); failed (given up). */
export type DeliveryOutcome = "done" | "retry" | "failed";

/** done; rate_limited (GitHub refused, the installation waits); retry; dead (given up); lease_lost. */
export type OutboxResult = "done" | "rate_limited" | "retry" | "dead" | "lease_lost";
export type OutboxKind = "comment" | "check_run" | "close_issue";

const TOKEN_OUTCOMES: readonly TokenOutcome[] = ["minted", "refused", "rate_limited", "failed"];
const DELIVERY_OUTCOMES: readonly DeliveryOutcome[] = ["done", "retry", "failed"];
const OUTBOX_RESULTS: readonly OutboxResult[] = [
  "done",
  "rate_limited",
  "retry",
  "dead",
  "lease_lost",
];
const OUTBOX_KINDS: readonly OutboxKind[] = ["comment", "check_run", "close_issue"];

interface Child {
  inc(value?: number): void;
}

/**
 * The counters of what the App and the token service decide, in this
 * process, on the server's registry (prefixed `hallpass_`). Each is counted
 * where its event is decided, once what it decided is committed. Labels come
 * from fixed sets (outcomes, commands, error codes), never from logins,
 * repositories or ids; each series is bound once, and those of the fixed
 * sets are there from the start, at 0, so that `rate()` and `increase()`
 * see the first event. What the database holds (open grants, backlogs) is
 * read at scrape time instead: see `stateMetrics`.
 */
export class AppMetrics {
  readonly #approvals: Map<string, Child>;
  readonly #approvalRefusals: Counter<"reason">;
  readonly #commands: Map<string, Child>;
  readonly #tokens: Map<string, Child>;
  readonly #tokenRefusals: Counter<"channel" | "reason">;
  readonly #deliveries: Map<string, Child>;
  readonly #outbox: Map<string, Child>;
  readonly #bound = new Map<string, Child>();

  constructor(registry: Registry) {
    const registers = [registry];
    const approvals = new Counter({
      name: "hallpass_approvals_recorded_total",
      help: "Approvals recorded (approving reviews, /approve comments), by channel (review, comment)",
      labelNames: ["channel"],
      registers,
    });
    this.#approvals = bindAll(approvals, ["review", "comment"], (channel) => ({ channel }));
    this.#approvalRefusals = new Counter({
      name: "hallpass_approvals_refused_total",
      help: "Approvals refused, by reason (own_request, not_code_owner, no_pending_request, ...)",
      labelNames: ["reason"],
      registers,
    });
    const commands = new Counter({
      name: "hallpass_commands_total",
      help: "Commands in new comments of tickets, by command and outcome (done, refused)",
      labelNames: ["command", "outcome"],
      registers,
    });
    this.#commands = bindPairs(commands, ["command", "outcome"], COMMAND_NAMES, [
      "done",
      "refused",
    ]);
    const tokens = new Counter({
      name: "hallpass_tokens_total",
      help: "Token requests, by channel (actions: ID token exchanges; cli: people's tokens) and outcome (minted, refused, rate_limited, failed)",
      labelNames: ["channel", "outcome"],
      registers,
    });
    this.#tokens = bindPairs(tokens, ["channel", "outcome"], ["actions", "cli"], TOKEN_OUTCOMES);
    this.#tokenRefusals = new Counter({
      name: "hallpass_token_refusals_total",
      help: "Token requests refused, by channel and reason (the error code the caller got)",
      labelNames: ["channel", "reason"],
      registers,
    });
    const deliveries = new Counter({
      name: "hallpass_webhook_deliveries_total",
      help: "Webhook deliveries handled by this process, by outcome (done, retry, failed: given up)",
      labelNames: ["outcome"],
      registers,
    });
    this.#deliveries = bindAll(deliveries, DELIVERY_OUTCOMES, (outcome) => ({ outcome }));
    const outbox = new Counter({
      name: "hallpass_outbox_writes_total",
      help: "Outbox side effects tried on GitHub by this process, by kind and result (done, rate_limited, retry, dead, lease_lost)",
      labelNames: ["kind", "result"],
      registers,
    });
    this.#outbox = bindPairs(outbox, ["kind", "result"], OUTBOX_KINDS, OUTBOX_RESULTS);
  }

  approvalRecorded(channel: "review" | "comment"): void {
    this.#approvals.get(channel)?.inc();
  }

  approvalRefused(reason: ApprovalRefusal): void {
    this.#child(this.#approvalRefusals, `approval ${reason}`, { reason }).inc();
  }

  command(command: CommandName, outcome: "done" | "refused"): void {
    this.#commands.get(`${command} ${outcome}`)?.inc();
  }

  /** One token request's end; `reason` is the refusal's code. */
  token(channel: TokenChannel, outcome: TokenOutcome, reason?: ErrorCode): void {
    this.#tokens.get(`${channel} ${outcome}`)?.inc();
    if (outcome === "refused" && reason) {
      this.#child(this.#tokenRefusals, `token ${channel} ${reason}`, { channel, reason }).inc();
    }
  }

  delivery(outcome: DeliveryOutcome): void {
    this.#deliveries.get(outcome)?.inc();
  }

  outboxWrite(kind: OutboxKind, result: OutboxResult): void {
    this.#outbox.get(`${kind} ${result}`)?.inc();
  }

  /** The series of a label set from a fixed but large set (reasons), bound on first use. */
  #child<T extends string>(counter: Counter<T>, key: string, labels: Record<T, string>): Child {
    let child = this.#bound.get(key);
    if (!child) {
      child = counter.labels(labels);
      this.#bound.set(key, child);
    }
    return child;
  }
}

function bindAll<T extends string>(
  counter: Counter<T>,
  keys: readonly string[],
  labels: (key: string) => Record<T, string>,
): Map<string, Child> {
  return new Map(
    keys.map((key) => {
      const child = counter.labels(labels(key));
      child.inc(0);
      return [key, child];
    }),
  );
}

/** `bindAll` over every pair of two labels' values, keyed `"<a> <b>"`. */
function bindPairs<T extends string>(
  counter: Counter<T>,
  [first, second]: readonly [T, T],
  firsts: readonly string[],
  seconds: readonly string[],
): Map<string, Child> {
  return bindAll(
    counter,
    firsts.flatMap((a) => seconds.map((b) => `${a} ${b}`)),
    (key) => {
      const [a, b] = key.split(" ") as [string, string];
      return { [first]: a, [second]: b } as Record<T, string>;
    },
  );
}
