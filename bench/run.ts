/**
 * `npm run bench -- [name...]`: runs the named benchmarks (all but the
 * soak by default: it takes minutes) and prints one table each. Figures are medians of several runs, with a
 * baseline measured in the same run where one makes sense.
 */
import { benchAudit } from "./audit.js";
import { benchCodeowners } from "./codeowners.js";
import { benchProxy } from "./proxy.js";
import { benchRules } from "./rules.js";
import { benchSoak } from "./soak.js";
import { printTable, type Row } from "./support.js";
import { benchExchange, benchTokens } from "./tokens.js";
import { benchWebhooks } from "./webhooks.js";

const benches: Record<string, { title: string; run: () => Promise<Row[]> }> = {
  audit: { title: "audit log: appends per second (median of 5 runs)", run: benchAudit },
  proxy: { title: "access proxy (medians; see bench/proxy.ts)", run: benchProxy },
  rules: {
    title: "rules engine",
    run: async () => [...(await benchCodeowners()), ...(await benchRules())],
  },
  tokens: {
    title: "token service",
    run: async () => [...(await benchTokens()), ...(await benchExchange())],
  },
  webhooks: { title: "webhooks", run: benchWebhooks },
  soak: {
    title: "soak: whole ticket lifecycles on two replicas (see bench/soak.ts)",
    run: benchSoak,
  },
};
const LONG = new Set(["soak"]);

const names = process.argv.slice(2);
for (const name of names.length > 0 ? names : Object.keys(benches).filter((n) => !LONG.has(n))) {
  const bench = benches[name];
  if (!bench) {
    console.error(
      `unknown benchmark ${JSON.stringify(name)}; known: ${Object.keys(benches).join(", ")}`,
    );
    process.exit(2);
  }
  printTable(bench.title, await bench.run());
}
