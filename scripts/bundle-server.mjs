// The server and CLI as one file, `<outdir>/main.js` (dependencies stay in
// node_modules), with the SQL migrations copied next to it: what `npm start`
// runs, and what the end-to-end tests run.
import { cp } from "node:fs/promises";
import path from "node:path";
import { build } from "esbuild";

export async function bundleServer(outdir, { root = process.cwd() } = {}) {
  await build({
    absWorkingDir: root,
    entryPoints: ["src/main.ts"],
    outfile: path.join(outdir, "main.js"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    sourcemap: true,
    logLevel: "warning",
  });
  await cp(path.join(root, "src/store/migrations"), path.join(outdir, "migrations"), {
    recursive: true,
  });
  return path.join(outdir, "main.js");
}
