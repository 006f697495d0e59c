// Bundles the companion Action (action/src) and everything it imports into
// one committed file, action/dist/index.js, with its source map. The runner
// runs it with its own Node.js and no node_modules, hence one file.
//
// ESM because @actions/core v3 is ESM only; the repository's package.json
// ("type": "module") makes Node.js read it as such. Bundled CommonJS
// dependencies (tunnel, undici) call require() for Node.js built-ins, which
// an ES module lacks: the banner gives them one.
//
// The output depends only on the sources and the locked esbuild: no
// timestamps, paths relative to the output, so CI can rebuild and compare.
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

await build({
  absWorkingDir: fileURLToPath(new URL("..", import.meta.url)),
  entryPoints: ["action/src/index.ts"],
  outfile: "action/dist/index.js",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: true,
  legalComments: "eof",
  banner: {
    js: 'import { createRequire as __hallpassCreateRequire } from "node:module";\nconst require = __hallpassCreateRequire(import.meta.url);',
  },
  logLevel: "warning",
});
