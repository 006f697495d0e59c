import type { GitHubSimulator } from "../support/github/simulator.js";

export const POLICY = `label: hallpass
resources:
  payments-api:
    path: services/payments/
    scopes:
      read: ["GET /v1/**"]
      refund: ["POST /v1/refunds", "GET /v1/charges/*"]
    default_ttl: 1h
    max_ttl: 4h
    approvals: 1
    token_ttl: 15m
    request_ttl: 24h
    auto_approve:
      - scopes: [read]
        max_ttl: 30m
        requesters: ["@acme/sre"]
        quota: 2/7d
    break_glass:
      requesters: ["@acme/oncall"]
      max_ttl: 30m
      review_within: 24h
`;

export const CODEOWNERS = `# owners
* @acme/platform
/services/payments/ @bob @acme/payments-owners
`;

export const operatorYaml = ({
  repoId,
  ownerId,
}: {
  repoId: number;
  ownerId: number;
}) => `resources:
  payments-api:
    repository: { id: ${repoId}, owner_id: ${ownerId}, name: acme/payments }
    max_ttl: 8h
    scopes: ["GET /v1/**", "POST /v1/refunds", "GET /v1/charges/*"]
`;

/** acme/payments with its policy; alice requests, bob and carol (team) own, mallory does not. */
export function seedAcme(sim: GitHubSimulator): { repoId: number; ownerId: number } {
  const org = sim.addOrg("acme", {
    members: ["alice", "bob", "carol", "dave", "mallory", "olga", "sam"],
  });
  sim.addTeam("acme", "payments-owners", { members: ["carol"] });
  sim.addTeam("acme", "platform", { members: ["pat"] });
  sim.addTeam("acme", "sre", { members: ["sam"] });
  sim.addTeam("acme", "oncall", { members: ["olga"] });
  const repo = sim.addRepo("acme/payments", {
    files: {
      ".github/hallpass.yml": POLICY,
      CODEOWNERS,
      "services/payments/api.ts": "export {};\n",
    },
  });
  for (const login of ["alice", "bob", "carol", "dave", "mallory", "olga", "sam"])
    sim.setPermission("acme/payments", login, "write");
  sim.addInstallation("acme");
  return { repoId: repo.id, ownerId: org.user.id };
}

export const requestBody = (
  fields: { scopes?: string; duration?: string; reason?: string; resource?: string } = {},
) =>
  [
    "I need to look at refunds.",
    "",
    "```hallpass",
    `resource: ${fields.resource ?? "payments-api"}`,
    `scopes: [${fields.scopes ?? "read"}]`,
    `duration: ${fields.duration ?? "2h"}`,
    `reason: ${fields.reason ?? "Investigate refund failures for INC-42"}`,
    "```",
  ].join("\n");
