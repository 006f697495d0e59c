import type { EndpointUsage } from "#src/store/usage.js";
import { code, person } from "#src/tickets/escape.js";
import type { Notice, Usage } from "#src/tickets/notices.js";

/**
 * The Action CI jobs use, as the `granted` comment shows it. A placeholder:
 * the operator publishes the companion Action (`action/`) under their own
 * name and replaces this reference. The snippet also assumes the Action's
 * inputs `url`, `resource` and `ticket` and its output `token`; keep them in
 * step with `action/action.yml` once it exists.
 */
export const ACTION_REF = "hallpass/hallpass/action@v1";

/** How to use the grant: the Action in CI, the CLI for the requester. */
export function usageInstructions(n: Extract<Notice, { kind: "granted" }>): string[] {
  const issue = n.ticketKind === "issue";
  const number = /#(\d+)$/.exec(n.ticketRef)?.[1];
  const workflow = [
    `on: ${issue ? "workflow_dispatch" : "pull_request"}`,
    "permissions:",
    "  id-token: write",
    "  contents: read",
    "jobs:",
    "  with-access:",
    "    runs-on: ubuntu-latest",
    "    steps:",
    "      - id: hallpass",
    `        uses: ${ACTION_REF}`,
    "        with:",
    `          url: ${yamlScalar(n.serverUrl)}`,
    `          resource: ${yamlScalar(n.terms.resource)}`,
    ...(issue && number ? [`          ticket: ${number}`] : []),
    "      - run: ./your-script.sh",
    "        env:",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression
    "          TOKEN: ${{ steps.hallpass.outputs.token }}",
  ];
  const where = issue
    ? `run by ${person(n.requester)} with \`workflow_dispatch\` on the default branch`
    : "run by this pull request's `pull_request` event on the approved commit";
  return [
    "#### Use it",
    `**In CI**, in a workflow ${where}:\n\n\`\`\`yaml\n${workflow.join("\n")}\n\`\`\``,
    `**From a terminal**, as ${person(n.requester)}:\n\n\`\`\`sh\nhallpass token ${shellWord(n.ticketRef)} -- <command>\n\`\`\``,
  ];
}

/** Tokens by channel, subject and run; proxy requests by endpoint and status class. */
export function usageSummary(usage: Usage): string[] {
  const requestsTotal = usage.requestsTotal ?? 0;
  if (usage.tokens.length === 0 && requestsTotal === 0) {
    return ["#### Usage", "No tokens were minted."];
  }
  const tokens = [
    "| Channel | Subject | Actor | Run | Tokens |",
    "| --- | --- | --- | --- | ---: |",
    ...usage.tokens.map(
      (t) =>
        `| ${t.channel === "actions" ? "CI" : "CLI"} | ${code(t.subject, 200)} | ${t.actor ? person(t.actor) : "—"} | ${t.runId ?? "—"} | ${t.count} |`,
    ),
  ];
  const out = ["#### Usage", tokens.join("\n")];
  if (requestsTotal === 0) {
    out.push("No requests went through the hallpass proxy.");
    return out;
  }
  const requests = [
    "| Proxy endpoint | Requests | 2xx | 3xx | 4xx | 5xx | Refused by hallpass |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...usage.requests.map(
      (r) =>
        `| ${endpoint(r)} | ${r.total} | ${r.byClass["2xx"]} | ${r.byClass["3xx"]} | ${r.byClass["4xx"]} | ${r.byClass["5xx"]} | ${r.refused} |`,
    ),
  ];
  out.push(requests.join("\n"));
  const listed = usage.requests.reduce((n, r) => n + r.total, 0);
  if (requestsTotal > listed) {
    out.push(`…and ${requestsTotal - listed} more requests on other endpoints.`);
  }
  return out;
}

/** `GET /v1/**` (the method asked and the pattern that let it through), or why none did. */
function endpoint(r: EndpointUsage): string {
  if (r.scope === null)
    return `${code(r.method, 20)} not let through: ${code(r.reason ?? "unknown", 60)}`;
  const path = r.scope.slice(r.scope.indexOf(" ") + 1);
  return code(`${r.method} ${path}`, 300);
}

/** A YAML scalar on one line of a fenced block: bare when plain, else double-quoted. */
function yamlScalar(text: string): string {
  const line = text
    .replace(/[^\x21-\x7e]+/g, " ")
    .replace(/`/g, "'")
    .trim();
  return /^[A-Za-z0-9][A-Za-z0-9._/:-]*$/.test(line) ? line : JSON.stringify(line);
}

function shellWord(text: string): string {
  return /^[A-Za-z0-9._/-]+#\d+$/.test(text) ? text : "owner/repo#N";
}
