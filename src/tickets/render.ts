import { createHmac, type KeyObject } from "node:crypto";
import { block, code, inline, isGitHubLogin, person, plain } from "#src/tickets/escape.js";
import type { Notice, SideEffect, Terms } from "#src/tickets/notices.js";
import { usageInstructions, usageSummary } from "#src/tickets/render-usage.js";

/** The chain position of the audit event a comment reports. */
export interface AuditRef {
  readonly seq: number;
  readonly hash: string;
}

/**
 * The hidden first line of every comment hallpass posts: how the outbox
 * recognises its own comment after a crash. Only what a dedupe key is made
 * of survives in it, so nothing can end the HTML comment early.
 */
export function markerComment(marker: string): string {
  const safe = marker.replace(/[^A-Za-z0-9._:/@+=-]/g, "_").replace(/-{2,}/g, "-");
  return `<!-- hallpass:${safe} -->`;
}

/**
 * The marker of a side effect: an HMAC of its dedupe key under a server
 * key, so that nobody without the key can write it into a comment of their
 * own before hallpass posts (dedupe keys themselves can be guessed).
 * Markers before this were the dedupe key itself.
 */
export function markerOf(key: KeyObject, dedupeKey: string): string {
  return `v2.${createHmac("sha256", key).update(dedupeKey, "utf8").digest("hex").slice(0, 40)}`;
}

/** Whether a comment body is the one posted with this marker (it is always the first line). */
export function hasMarker(body: string, marker: string): boolean {
  const first = markerComment(marker);
  return body.startsWith(first) && /^(\r?\n|$)/.test(body.slice(first.length));
}

/**
 * The Markdown of a notice: hidden marker, heading, terms, what happens next
 * and a footer with the audit event's chain position, so a reader can find
 * the event in `hallpass audit export`. Person-supplied text is escaped; only
 * the requester of an expiry warning is mentioned.
 */
export function renderNotice(notice: Notice, audit: AuditRef | null, marker: string): string {
  return [markerComment(marker), ...sections(notice), footer(audit)].join("\n\n");
}

/** The `hallpass` check run's title (plain text) and summary (Markdown, escaped). */
export function renderCheck(
  effect: Extract<SideEffect, { kind: "check_run" }>,
  audit: AuditRef | null,
): { title: string; summary: string } {
  const title = plain(effect.title, 200) || "hallpass";
  const summary = inline(effect.summary || effect.title, 2000);
  return { title, summary: `${summary}\n\n${footer(audit)}` };
}

function sections(n: Notice): string[] {
  switch (n.kind) {
    case "request_received":
      return [
        `### 📝 ${n.edited ? "Access request updated" : "Access requested"}`,
        table([...termRows(n.terms, null), ["Requester", person(n.requester)]]),
        `**Next:** ${approvalsLine(n.approvalsNeeded, n.approvers)}${
          n.edited ? " Approvals given to the earlier version no longer count." : ""
        }`,
      ];
    case "request_invalid":
      return [
        "### ⚠️ Access request not valid",
        `Nothing is granted until it is fixed:\n${list(n.problems)}`,
        "**Next:** edit the request on this ticket (the issue form's `### Resource`, `### Scopes`, `### Duration` and `### Reason` fields, or a `hallpass` fenced block); hallpass reads it again on every edit.",
      ];
    case "granted":
      return granted(n);
    case "denied":
      return [
        "### ⛔ Access request denied",
        table([
          ["Denied by", actor(n.by)],
          ["Reason", inline(n.reason, 1000)],
        ]),
        "**Next:** nothing was granted. To ask again, change the request and edit, reopen or relabel this ticket, or open a new one.",
      ];
    case "expiry_warning":
      return [
        "### ⏳ Access ends soon",
        `${isGitHubLogin(n.requester) ? `@${n.requester}` : person(n.requester)}, access through this ticket ends at **${utc(n.endsAt)}**.`,
        "**Need longer?** Comment `/extend 30m` (or another duration); it may need a code owner's approval again. Finished early? Comment `/done`.",
      ];
    case "extended":
      return [
        "### ➕ Access extended",
        table([
          ["Now ends", utc(n.endsAt)],
          ["Ended before", utc(n.previousEndsAt)],
          ["Approved by", people(n.by)],
        ]),
        "**Next:** comment `/extend <duration>` to ask for more, or `/done` to end it now.",
      ];
    case "extension_requested":
      return [
        "### ⏳ Extension requested",
        table([
          ["Requested by", person(n.requester)],
          ["Extend by", duration(n.extendBySeconds)],
        ]),
        `**Next:** ${approvalsLine(1, n.approvers)} Until then, access ends as planned.`,
      ];
    case "ended":
      return ended(n);
    case "terms_kept":
      return [
        "### 📌 Approved terms kept",
        "The ticket was edited while access is active. The grant keeps the terms that were approved:",
        table(termRows(n.terms, null)),
        "**Next:** to change them, end this grant with `/done` and request again; for more time, comment `/extend <duration>`.",
      ];
    case "command_refused":
      return [
        `### 🙅 ${code(n.command, 40)} not carried out`,
        table([
          ["Asked by", person(n.actor)],
          ["Why", inline(n.why, 1000)],
        ]),
      ];
    case "status":
      return [`### ℹ️ Status: ${code(n.state, 40)}`, list(n.trace)];
    case "review_overdue":
      return [
        "### 🚩 Break-glass access not reviewed in time",
        `A code owner was to approve this break-glass grant by ${utc(n.reviewBy)}. It is flagged in the audit log for follow-up.`,
      ];
    case "tamper":
      return [
        `### 🕵️ An audit comment was ${n.action}`,
        `${person(n.by)} ${n.action} one of hallpass's comments on this ticket. The change is recorded in the audit log; this is the original, as hallpass posted it:`,
        block(n.originalBody, 50_000),
      ];
    default:
      return unreachable(n);
  }
}

const DECISIONS = {
  approvals: "✅ Access granted",
  auto: "✅ Access granted (auto-approved)",
  break_glass: "🚨 Break-glass access granted",
} as const;

function granted(n: Extract<Notice, { kind: "granted" }>): string[] {
  const approved =
    n.decision === "approvals"
      ? people(n.approvers)
      : n.decision === "auto"
        ? `auto-approval rule ${n.rule ?? "?"} of the policy`
        : "break-glass (no approval yet)";
  const out = [
    `### ${DECISIONS[n.decision]}`,
    table([
      ...termRows(n.terms, { startsAt: n.startsAt, endsAt: n.endsAt }),
      ["Requester", person(n.requester)],
      ["Approved by", approved],
    ]),
  ];
  if (n.decision === "break_glass" && n.reviewBy) {
    out.push(
      `**Review:** a code owner must approve by ${utc(n.reviewBy)}, or this grant is flagged.`,
    );
  }
  out.push(...usageInstructions(n));
  out.push(
    `**Next:** access ends at ${utc(n.endsAt)}, or earlier when the ticket is closed, its label removed, or \`/done\` or \`/revoke\` commented. Need longer? Comment \`/extend 30m\`.`,
  );
  return out;
}

const ENDINGS = {
  revoked: "🔒 Access revoked",
  expired: "⌛ Access expired",
  cancelled: "🚫 Access request cancelled",
} as const;

function ended(n: Extract<Notice, { kind: "ended" }>): string[] {
  return [
    `### ${ENDINGS[n.state]}`,
    table([
      ["Ended", n.state],
      ["By", actor(n.by)],
      ["Reason", inline(n.reason, 1000)],
    ]),
    ...(n.usage ? usageSummary(n.usage) : []),
    "**Next:** to get access again, request it anew: edit, reopen or relabel this ticket, or open a new one.",
  ];
}

// --- pieces -------------------------------------------------------------------

function termRows(
  terms: Terms,
  window: { startsAt: string; endsAt: string } | null,
): [string, string][] {
  const shown = terms.permissions.slice(0, 20).map((p) => code(p, 200));
  if (terms.permissions.length > shown.length)
    shown.push(`and ${terms.permissions.length - shown.length} more`);
  return [
    ["Resource", code(terms.resource, 100)],
    ["Scopes", terms.scopes.map((s) => code(s, 100)).join(", ") || "—"],
    ["Allows", shown.join("<br>") || "—"],
    ["Window", window ? span(window.startsAt, window.endsAt) : requestedWindow(terms)],
    ["Reason", inline(terms.reason, 1000) || "—"],
  ];
}

function requestedWindow(terms: Terms): string {
  if (!terms.start) return `${duration(terms.durationSeconds)} from approval`;
  const end = new Date(Date.parse(terms.start) + terms.durationSeconds * 1000).toISOString();
  return span(terms.start, end);
}

function span(start: string, end: string): string {
  const seconds = (Date.parse(end) - Date.parse(start)) / 1000;
  return `${utc(start)} → ${utc(end)} (${Number.isFinite(seconds) ? duration(seconds) : "?"})`;
}

function approvalsLine(needed: number, approvers: readonly string[]): string {
  if (approvers.length === 0) {
    return "CODEOWNERS names nobody who can approve this resource; ask the repository's maintainers.";
  }
  const count = needed === 1 ? "1 approval" : `${needed} approvals`;
  return `needs ${count} from a code owner (${people(approvers)}): an approving review on a pull request, or a \`/approve\` comment on an issue. The requester's own approval never counts.`;
}

/** A vertical table; the first row is its header. */
function table(rows: readonly (readonly [string, string])[]): string {
  const [head, ...rest] = rows;
  if (!head) return "";
  return [
    `| ${head[0]} | ${head[1]} |`,
    "| --- | --- |",
    ...rest.map(([k, v]) => `| ${k} | ${v} |`),
  ].join("\n");
}

function list(items: readonly string[]): string {
  const shown = items.slice(0, 30).map((item) => `- ${inline(item, 500)}`);
  if (items.length > shown.length) shown.push(`- and ${items.length - shown.length} more`);
  return shown.join("\n") || "- (none)";
}

function people(logins: readonly string[]): string {
  const shown = logins.slice(0, 20).map(person);
  if (logins.length > shown.length) shown.push(`and ${logins.length - shown.length} more`);
  return shown.join(", ") || "—";
}

/** Who ended or denied: a login, `operator` or `hallpass`. */
function actor(by: string): string {
  if (by === "hallpass") return "hallpass (policy)";
  if (by === "operator") return "the operator";
  return person(by);
}

/** `YYYY-MM-DD HH:MM UTC`. */
function utc(iso: string): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return inline(iso, 40);
  return `${at.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** `45m`, `1h 30m`, `2d 4h`. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const parts: [number, string][] = [
    [Math.floor(s / 86_400), "d"],
    [Math.floor((s % 86_400) / 3_600), "h"],
    [Math.floor((s % 3_600) / 60), "m"],
    [s % 60, "s"],
  ];
  return (
    parts
      .filter(([n]) => n > 0)
      .map(([n, unit]) => `${n}${unit}`)
      .join(" ") || "0s"
  );
}

function footer(audit: AuditRef | null): string {
  if (!audit) return "<sub>hallpass</sub>";
  const hash = /^[0-9a-f]{64}$/.test(audit.hash) ? audit.hash : "(malformed)";
  // `#` is broken with a zero-width space: `#42` would link (and notify) issue 42.
  return `<sub>hallpass · audit event #&#8203;${Math.trunc(audit.seq)} · sha256 <code>${hash.slice(0, 12)}</code>… · full: <code>${hash}</code></sub>`;
}

function unreachable(n: never): never {
  throw new Error(`unknown notice ${(n as { kind: string }).kind}`);
}
