// Bundles the server and CLI into dist/main.js (dependencies stay in
// node_modules) and copies the SQL migrations next to it.
import { cp, rm } from "node:fs/promises";
import { build } from "esbuild";

await rm("dist", { recursive: true, force: true });
await build({
  entryPoints: ["src/main.ts"],
  outfile: "dist/main.js",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: true,
  logLevel: "warning",
});
await cp("src/store/migrations", "dist/migrations", { recursive: true });
